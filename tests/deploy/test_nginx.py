"""The project's nginx configuration (Debian's nginx, rendered for loopback ports) in front of two real replicas."""

from __future__ import annotations

import signal
import string
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.service.conftest import Server, free_port, running_server

ROOT = Path(__file__).resolve().parents[2]


def render(template: Path, **values: str) -> str:
    """What the nginx image's envsubst does with the template: only the variables it is given ($host stays)."""
    text = string.Template(template.read_text()).safe_substitute(values)
    assert "${" not in text, "a template variable was left unset"
    return text


@pytest.fixture
def replicas(tiny_bundle: Path, tmp_path: Path) -> Iterator[list[Server]]:
    with running_server(tiny_bundle, tmp_path / "a.log") as a, running_server(tiny_bundle, tmp_path / "b.log") as b:
        yield [a, b]


@pytest.fixture
def nginx(replicas: list[Server], tmp_path: Path, system_tool) -> Iterator[str]:
    binary = system_tool("nginx", "nginx-light")
    port = free_port()
    servers = " ".join(f"server 127.0.0.1:{r.port} max_fails=3 fail_timeout=10s;" for r in replicas)
    site = render(ROOT / "deploy" / "nginx" / "attnserve.conf.template",
                  ATTNSERVE_UPSTREAM_SERVERS=servers, NGINX_PORT=f"127.0.0.1:{port}")
    (tmp_path / "attnserve.conf").write_text(site)
    (tmp_path / "nginx.conf").write_text(
        f"worker_processes 1;\nerror_log {tmp_path}/error.log warn;\npid {tmp_path}/nginx.pid;\n"
        "events { worker_connections 1024; }\n"
        f"http {{ access_log off; client_body_temp_path {tmp_path}/body; proxy_temp_path {tmp_path}/proxy;\n"
        f"  include {tmp_path}/attnserve.conf; }}\n"
    )
    proc = subprocess.Popen([binary, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-g", "daemon off;"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.05)
    try:
        yield url
    finally:
        proc.send_signal(signal.SIGQUIT)
        proc.wait(10)


def _encode_count(server: Server) -> float:
    text = httpx.get(f"{server.url}/metrics").text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("attnserve_requests_total{") and 'route="/encode",status="200"}' in line)


def test_load_is_spread_and_survives_a_replica_being_killed(nginx: str, replicas: list[Server]) -> None:
    with httpx.Client(base_url=nginx, timeout=30) as client:
        for i in range(40):
            r = client.post("/encode", json={"tokens": [[1, 2, 3 + i]]})
            assert r.status_code == 200, r.text
        counts = [_encode_count(r) for r in replicas]
        assert sum(counts) == 40 and min(counts) >= 5, counts  # least_conn spreads sequential load too

        replicas[0].proc.kill()  # no goodbye: connections refused from now on
        replicas[0].proc.wait()
        codes = [client.post("/encode", json={"tokens": [[4, 5, i]]}).status_code for i in range(40)]
    assert codes == [200] * 40
    assert _encode_count(replicas[1]) == counts[1] + 40
