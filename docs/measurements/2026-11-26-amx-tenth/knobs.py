"""bf16 through the service at 16 clients x 8 sentences (and 64 clients x 1) under several batcher settings, rounds
interleaved so that the host's drift falls on every setting alike; a server start per setting and round.

    PYTHONPATH=. .venv/bin/python docs/measurements/2026-11-26-amx-tenth/knobs.py ROUNDS SECONDS 'NAME:ENV=V,ENV=V' ...
    e.g. knobs.py 3 8 'fused:' 'unfused:ATTNSERVE_OPENVINO_BATCH_ATTENTION=unfused'   (knobs-unfused.log's A/B)
"""

import statistics
import sys
from pathlib import Path

from loadtest.checks import load_corpus
from loadtest.load import step
from loadtest.servers import rss_mb, start_server

rounds, seconds = int(sys.argv[1]), float(sys.argv[2])
settings = {}
for arg in sys.argv[3:]:
    name, _, envs = arg.partition(":")
    settings[name] = dict(e.split("=", 1) for e in envs.split(",") if e)
texts = load_corpus(paragraphs=False)
base = {"ATTNSERVE_ENGINE": "openvino", "ATTNSERVE_PRECISION": "bf16", "ATTNSERVE_PROVIDER": "cpu"}
got: dict[str, list[tuple[float, float]]] = {n: [] for n in settings}
for r in range(rounds):
    names = list(settings) if r % 2 == 0 else list(settings)[::-1]
    for name in names:
        proc, _ = start_server(Path("build/minilm"), 8832, base | settings[name], Path("/tmp/knobs-server.log"))
        try:
            url = "http://127.0.0.1:8832"
            s16 = step(url, "encode", texts, 16, seconds, 384, proc.pid, per_request=8)
            s64 = step(url, "encode", texts, 64, seconds, 384, proc.pid)
            rss = rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait()
        got[name].append((s16.sequences_per_s, s64.sequences_per_s))
        # the bound on unfused shapes tried in knobs-unfused-bound.log (not kept) said so in the server's log
        if "new shapes run fused from now on" in Path("/tmp/knobs-server.log").read_text():
            print(f"round {r + 1} {name}: the bound on unfused shapes was reached", flush=True)
        print(f"round {r + 1} {name}: 16x8 {s16.sequences_per_s:.0f} seq/s (p99 {s16.p99_ms:.0f} ms, batch "
              f"{s16.mean_batch_size:.1f}); c=64 {s64.sequences_per_s:.0f} (p99 {s64.p99_ms:.0f}, batch "
              f"{s64.mean_batch_size:.1f}); RSS {rss}", flush=True)
for name, runs in got.items():
    print(f"median {name}: 16x8 {statistics.median(a for a, _ in runs):.0f}, c=64 "
          f"{statistics.median(b for _, b in runs):.0f}")
