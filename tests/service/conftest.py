"""Apps built with create_app(settings) and run through their lifespan (TestClient), and real servers."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings


@contextlib.contextmanager
def client_for(bundle: Path, **settings) -> Iterator[TestClient]:
    app = create_app(Settings(model=bundle, **settings))
    with TestClient(app) as client:
        yield client


@pytest.fixture(scope="module")
def tiny_client(tiny_bundle: Path) -> Iterator[TestClient]:
    with client_for(tiny_bundle) as client:
        yield client


@pytest.fixture(scope="module")
def minilm_client(minilm_bundle: Path) -> Iterator[TestClient]:
    with client_for(minilm_bundle) as client:
        yield client


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A real `attnserve serve` process (uvicorn) on 127.0.0.1; ``bundle`` a folder, or a list of --model
    values (several models: "DIR" or "NAME=DIR")."""

    def __init__(self, bundle: Path | list[str], log: Path, **settings: object) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, **{f"ATTNSERVE_{k.upper()}": str(v) for k, v in settings.items()}}
        self.log = log
        self._log_file = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "attnserve", "serve",
             *(a for m in (bundle if isinstance(bundle, list) else [bundle]) for a in ("--model", str(m))),
             "--port", str(self.port)],
            env=env, stdout=self._log_file, stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout_s: float = 60) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return time.monotonic() - started
            time.sleep(0.05)
        raise RuntimeError(f"server not ready after {timeout_s} s: {self.log.read_text()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_file.close()


@contextlib.contextmanager
def running_server(bundle: Path | list[str], log: Path, **settings: object) -> Iterator[Server]:
    server = Server(bundle, log, **settings)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
