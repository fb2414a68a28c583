"""Clients that ask for large answers and never read them: CLIENTS connections each ask MiniLM for the attentions
of one 254-token input (every layer and head: ~60 MB of JSON) with a 4 KB receive window, and read nothing. Prints
the server's RSS every 2 s and the answers' statuses from /metrics. Settings come from the environment
(ATTNSERVE_SEND_TIMEOUT_S=3 ...).

    PYTHONPATH=. python docs/measurements/2026-11-26-flood/slowread.py build/minilm 8171 [CLIENTS] [SECONDS]
"""

import json
import socket
import sys
import time
import urllib.request
from pathlib import Path

from loadtest.servers import rss_mb, start_server

bundle, port = Path(sys.argv[1]), int(sys.argv[2])
clients = int(sys.argv[3]) if len(sys.argv) > 3 else 20
seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 12
body = json.dumps({"tokens": [[101, *range(1000, 1254), 102]], "return_attentions": True}).encode()
head = (f"POST /encode HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
        "\r\n").encode()

proc, _ = start_server(bundle, port, {}, Path("/tmp/slowread-server.log"))
socks = []
try:
    print("clients", clients, "before:", rss_mb(proc.pid), flush=True)
    for _ in range(clients):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", port))
        sock.sendall(head + body)
        socks.append(sock)
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        time.sleep(2)
        print(f"{time.monotonic() - started:4.0f} s", rss_mb(proc.pid), flush=True)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as r:
        metrics = r.read().decode()
    print([line for line in metrics.splitlines()
           if line.startswith(("attnserve_requests_total{", "attnserve_answer_values "))], flush=True)
finally:
    for sock in socks:
        sock.close()
    proc.kill()
    proc.wait()
