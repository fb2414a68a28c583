"""Benchmark: attnserve with batching, without batching (max_batch_size 1), and the in-process ONNX Runtime
ceiling on the same sentences; closed-loop load at several concurrencies. Writes bench.md, bench.json and
bench.png to the output folder and prints the table.

    python -m loadtest.bench --model build/minilm --output results/bench
    python -m loadtest.bench --url http://127.0.0.1:8000 --output results/bench   # an already running service

The pieces: ceiling.py (in process), servers.py (service processes), load.py (closed-loop steps), report.py
(targets, table and plot).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

from loadtest.ceiling import Ceiling
from loadtest.checks import load_corpus
from loadtest.load import http_get, step
from loadtest.report import chosen, plot, targets, write_report
from loadtest.servers import machine, rss_mb, start_server

CONCURRENCY = (1, 4, 16, 64, 256)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("build/minilm"), help="bundle to serve and measure")
    parser.add_argument("--url", help="measure this running service instead (batched mode only)")
    parser.add_argument("--output", type=Path, default=Path("results/bench"))
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per step")
    parser.add_argument("--concurrency", default=",".join(map(str, CONCURRENCY)))
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds the targets are judged on")
    parser.add_argument("--port", type=int, default=8765, help="batched server; unbatched on the next port")
    parser.add_argument("--families", help="also one line per encoder family (comma-separated, or 'all'): "
                        "see loadtest/families.py; needs transformers")
    parser.add_argument("--rerank", action="store_true", help="also the rerank line (pairs/s at 64 clients): a "
                        "cross-encoder of MiniLM's shape, see loadtest/rerank.py; needs transformers")
    parser.add_argument("--precisions", help="also the precision axis, in the same run: comma-separated variants of "
                        "loadtest/precision.py (ort-fp32, openvino-fp32, openvino-bf16, cuda-fp32, cuda-fp16)")
    args = parser.parse_args()
    if args.precisions:  # refused now, not after the sweep has run
        from loadtest.precision import VARIANTS

        chosen(parser, "--precisions", args.precisions, VARIANTS)
    args.output.mkdir(parents=True, exist_ok=True)
    concurrency = tuple(int(c) for c in args.concurrency.split(","))
    texts = load_corpus(paragraphs=False)

    print("in-process ceiling ...", flush=True)
    ceiling = Ceiling(args.model, texts)
    budget = min(args.seconds, 5.0)
    by_graph = {g: {size: ceiling.rate(size, budget, g) for size in (1, 8, 16, 32, 64)} for g in ceiling.paths}
    best_graph, best = max(((g, k) for g, by in by_graph.items() for k in by), key=lambda gk: by_graph[gk[0]][gk[1]])
    by_size = by_graph[best_graph]
    result: dict = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "bundle": args.model.name,
        "seconds": args.seconds, "machine": machine(), "steps": [], "rounds": [], "process": {},
        "ceiling": {"graph": best_graph, "by_graph": by_graph, "by_batch_size": by_size, "best_batch_size": best,
                    "sequences_per_s": by_size[best], "single_p50_ms": ceiling.single_p50_ms()},
    }
    print(f"  {by_size[best]:.0f} sentences/s at batch {best} on {best_graph}", flush=True)
    workers = min(2, os.cpu_count() or 1)
    in_workers = {size: ceiling.rate_in_workers(size, budget, workers) for size in (1, 8, 16)}
    result["ceiling"]["in_workers"] = {"workers": workers, "graph": ceiling.service_graph, "by_batch_size": in_workers}
    print(f"  the service's layout ({workers} x 1 thread): "
          + ", ".join(f"batch {k}: {v:.0f}" for k, v in in_workers.items()), flush=True)

    servers: dict[str, tuple[str, subprocess.Popen | None]] = {}
    modes = {"batched": {}, "unbatched": {"ATTNSERVE_MAX_BATCH_SIZE": "1"}}
    try:
        if args.url:
            servers["batched"] = (args.url.rstrip("/"), None)
        else:
            for i, (mode, env) in enumerate(modes.items()):
                proc, ready_s = start_server(args.model, args.port + i, env, args.output / f"server-{mode}.log")
                servers[mode] = (f"http://127.0.0.1:{args.port + i}", proc)
                result["process"][mode] = {"ready_s": ready_s, "settings": env}
        dims = json.loads(http_get(f"{servers['batched'][0]}/v1/models"))["data"][0]["dimensions"]

        def measure(mode: str, c: int, seconds: float) -> dict:
            url, proc = servers[mode]
            return asdict(step(url, mode, texts, c, seconds, dims, proc.pid if proc else None))

        print("sweep ...", flush=True)
        for mode in servers:
            result["steps"] += [measure(mode, c, args.seconds) for c in concurrency]
        for i in range(args.rounds):
            print(f"round {i + 1} ...", flush=True)
            r = {"ceiling_sequences_per_s": ceiling.rate(best, budget, best_graph),
                 "ceiling_single_p50_ms": ceiling.single_p50_ms()}
            print(f"  ceiling   {r['ceiling_sequences_per_s']:7.1f} seq/s  alone {r['ceiling_single_p50_ms']:.2f} ms")
            for mode in servers:
                r[f"{mode}_64"] = measure(mode, 64, args.seconds)
            r["batched_1"] = measure("batched", 1, min(args.seconds, 5.0))
            result["rounds"].append(r)
        for mode, (_, proc) in servers.items():
            if proc is not None:
                result["process"][mode] |= rss_mb(proc.pid)
    finally:
        for _, proc in servers.values():
            if proc is not None:
                proc.terminate()
                proc.wait(30)
    if args.families:
        from loadtest import families

        names = list(families.FAMILIES) if args.families == "all" else args.families.split(",")
        print("families ...", flush=True)
        result["families"] = families.run(args.output / "families", names, args.seconds, args.port + 10,
                                          families.MINILM)
    if args.rerank:
        from loadtest import rerank

        print("rerank ...", flush=True)
        (args.output / "rerank").mkdir(exist_ok=True)
        result["rerank"] = rerank.run(args.output / "rerank", args.seconds, args.port + 20)
    if args.precisions:
        from loadtest import precision

        print("precision ...", flush=True)
        (args.output / "precision").mkdir(exist_ok=True)
        result["precision"] = precision.run(args.model, args.output / "precision", args.precisions.split(","),
                                            args.seconds, args.port + 30, precision.parse_steps("1,16,64,16x8"))
        where = f"{result['machine']['cpu']}, {result['machine']['cores']} cores"
        precision.plot(args.output / "precision", result["precision"], f"attnserve precision axis, {args.model.name}: "
                       f"{where}, flags {' '.join(result['precision']['cpu_flags']) or 'none'}")
    result["targets"] = targets(result)
    (args.output / "bench.json").write_text(json.dumps(result, indent=2))
    plot(args.output, result)
    report = write_report(args.output, result)
    if args.families:
        report += ("\n## Families (same run; random weights at MiniLM's shape, MiniLM's tokenizer, 256 tokens)\n\n"
                   + families.table(result["families"]) + "\n")
    if args.rerank:
        report += ("\n## Rerank (same run; 1 query + 8 documents per request, 64 clients)\n\n"
                   + rerank.table(result["rerank"]) + "\n")
    if args.precisions:
        report += (f"\n## Precision (same run; CPU flags: {' '.join(result['precision']['cpu_flags']) or 'none'})\n\n"
                   + precision.table(result["precision"]) + "\n")
    if args.families or args.rerank or args.precisions:
        (args.output / "bench.md").write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
