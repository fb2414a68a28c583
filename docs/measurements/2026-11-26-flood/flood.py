"""Texts that are cheap to send and dear to tokenize: attackers post bodies at the size limit (texts of one
punctuation mark repeated, the slowest text per byte for the BERT tokenizer measured: ~4 s of CPU per 4 MB) and
hang up without reading (MODE hangup) or wait for the answer (MODE wait); meanwhile one legitimate client sends a
short text (tokenized on the loop) and a 3,000-character text (tokenized in the worker pool). Prints the client's
latencies without and with the flood, the server's memory, and its CPU after the attackers stop (work left over
for requests nobody waits for).

    PYTHONPATH=. python docs/measurements/2026-11-26-flood/flood.py build/minilm 8131 [ATTACKERS] [SECONDS] [MODE]
"""

import json
import os
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

import httpx

from loadtest.servers import rss_mb, start_server

bundle, port = Path(sys.argv[1]), int(sys.argv[2])
attackers = int(sys.argv[3]) if len(sys.argv) > 3 else 4
seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 15
mode = sys.argv[5] if len(sys.argv) > 5 else "hangup"
url = f"http://127.0.0.1:{port}"
body = json.dumps({"texts": ["!" * 19_000] * 200, "truncate": True}).encode()
head = (f"POST /encode HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
        "\r\n").encode()


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def legit(duration: float) -> dict[str, float]:
    short, long = {"texts": ["a man is eating food."]}, {"texts": ["a man is eating food. " * 136],
                                                              "truncate": True}
    times: dict[str, list[float]] = {"short": [], "long": []}
    errors = 0
    end = time.monotonic() + duration
    with httpx.Client(base_url=url, timeout=40) as client:
        while time.monotonic() < end:
            for name, payload in (("short", short), ("long", long)):
                started = time.perf_counter()
                try:
                    ok = client.post("/encode", json=payload).status_code == 200
                except httpx.HTTPError:  # no answer within the client's 40 s
                    ok = False
                times[name].append((time.perf_counter() - started) * 1000)
                errors += not ok
            time.sleep(0.05)
    out = {"errors": errors}
    for name, ts in times.items():
        ts.sort()
        out[f"{name}_n"] = len(ts)
        out[f"{name}_p50_ms"] = round(statistics.median(ts), 1)
        out[f"{name}_max_ms"] = round(ts[-1], 1)
    return out


def attack(stop: threading.Event, sent: list[int]) -> None:
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
                s.sendall(head + body)
                if mode == "wait":
                    answer = s.recv(64)
                    sent.append(int(answer[9:12]) if answer[:5] == b"HTTP/" else 0)
                else:
                    sent.append(1)
        except OSError:
            time.sleep(0.01)


proc, _ = start_server(bundle, port, {}, Path("/tmp/flood-server.log"))
try:
    print("body", len(body), "bytes; attackers", attackers, "for", seconds, "s;", mode, flush=True)
    print("quiet:", legit(5), flush=True)
    stop, sent = threading.Event(), []
    threads = [threading.Thread(target=attack, args=(stop, sent)) for _ in range(attackers)]
    cpu0 = cpu_s(proc.pid)
    for t in threads:
        t.start()
    print("flood:", legit(seconds), flush=True)
    stop.set()
    for t in threads:
        t.join()
    cpu1, stopped = cpu_s(proc.pid), time.monotonic()
    answers = {str(k): sent.count(k) for k in sorted(set(sent))} if mode == "wait" else {}
    print(f"bodies sent {len(sent)} {answers}; server CPU during the flood {cpu1 - cpu0:.1f} s;", rss_mb(proc.pid),
          flush=True)
    while time.monotonic() - stopped < 60:
        a = cpu_s(proc.pid)
        time.sleep(1)
        if cpu_s(proc.pid) - a < 0.1:
            break
    print(f"server busy {time.monotonic() - stopped - 1:.1f} s after the flood stopped (60: still busy), "
          f"{cpu_s(proc.pid) - cpu1:.1f} s of CPU", flush=True)
    print("after:", legit(3), flush=True)
finally:
    proc.kill()
    proc.wait()
