"""Service processes for the benchmark, their memory, and the machine they run on."""

from __future__ import annotations

import contextlib
import os
import platform
import re
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

from service.precision import cpu_info


def start_server(bundle: Path, port: int, env: dict[str, str], log: Path) -> tuple[subprocess.Popen, float]:
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "attnserve", "serve", "--model", str(bundle), "--port", str(port),
         "--log-level", "warning"],
        env={**os.environ, **env}, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )
    import urllib.request

    while time.monotonic() - started < 120:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return proc, time.monotonic() - started
        except OSError:
            time.sleep(0.02)
    proc.kill()
    raise RuntimeError("server not ready after 120 s")


def rss_mb(pid: int) -> dict[str, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    get = lambda key: int(re.search(rf"^{key}:\s+(\d+) kB", status, re.M).group(1)) / 1024  # noqa: E731
    return {"rss_mb": get("VmRSS"), "peak_rss_mb": get("VmHWM")}


# ---------------------------------------------------------------- report


def machine() -> dict:
    cpu = cpu_info()[0]
    versions = {}
    for dist in ("attnserve", "onnxruntime-gpu", "onnxruntime", "openvino", "fastapi", "uvicorn", "tokenizers",
                 "numpy"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[dist] = metadata.version(dist)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu, "cores": cores, "cores_on_machine": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "versions": versions}
