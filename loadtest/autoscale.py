"""The HPA rule of deploy/kubernetes under a bursty load, simulated second by second: how long sequences queue
before new replicas are ready, given a replica's measured capacity and start-up time.

    python -m loadtest.autoscale --output docs            # prints the table, writes docs/autoscale.png

The model: each ready replica serves ``capacity`` sequences/s; what arrives beyond that waits in one queue
(the Service spreads load, so the backlog is shared), up to ``max_queue`` per replica; beyond it the service
answers 503 at once (max_queue_sequences). The metric the HPA reads is prometheus-adapter's
``attnserve_queue_seconds_per_sequence``: the mean wait of the sequences that started in the last minute
(``rate(...[1m])``), seen ``metric_lag_s`` late (scrape interval plus the adapter's cache). Every 15 s the HPA
proposes ceil(replicas x metric / target) (and the CPU fallback ceil(replicas x utilization / 0.75)), takes the
larger, and applies the behaviour of hpa.yaml: up at once by max(100%, 4 pods) per 15 s, down one pod a minute
after 5 minutes. A new pod serves after ``start_s``: scheduling and container start (assumed) plus the
service's own measured ready time.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Rule:
    """hpa.yaml's numbers."""

    target_wait_s: float = 0.050
    cpu_target: float = 0.75
    min_replicas: int = 2
    max_replicas: int = 20
    period_s: int = 15
    up_percent: float = 100.0
    up_pods: int = 4
    down_window_s: int = 300
    down_pods_per_min: int = 1


@dataclass
class Replica:
    """Measured by loadtest/bench.py on 2 AMD EPYC cores (docs/performance.md): ~215 sentences/s at 16 clients
    with p99 140 ms; the service is ready 1.9 s after it starts."""

    capacity: float = 215.0
    start_s: float = 12.0  # 10 s to schedule and start the container (assumed), 1.9 s to be ready (measured)
    metric_lag_s: int = 30
    max_queue: int = 1024  # max_queue_sequences: beyond it the service answers 503 at once


@dataclass
class Trace:
    seconds: np.ndarray
    load: np.ndarray  # sequences/s arriving
    ready: np.ndarray = field(default_factory=lambda: np.zeros(0))
    wanted: np.ndarray = field(default_factory=lambda: np.zeros(0))
    wait_s: np.ndarray = field(default_factory=lambda: np.zeros(0))  # wait of a sequence arriving then
    refused: np.ndarray = field(default_factory=lambda: np.zeros(0))  # sequences/s answered 503 (queue full)


def burst(base: float = 300.0, factor: float = 10.0, before_s: int = 120, ramp_s: int = 60, hold_s: int = 300,
          after_s: int = 600) -> Trace:
    """``base`` sequences/s, rising to ``factor`` x base within ``ramp_s``, held, then back at once."""
    load = np.concatenate([np.full(before_s, base), np.linspace(base, base * factor, ramp_s),
                           np.full(hold_s, base * factor), np.full(after_s, base)])
    return Trace(np.arange(len(load)), load)


def simulate(trace: Trace, rule: Rule, replica: Replica) -> Trace:
    n = len(trace.load)
    ready = np.zeros(n)
    wanted = np.zeros(n)
    wait = np.zeros(n)
    refused = np.zeros(n)
    backlog = 0.0
    replicas = rule.min_replicas  # desired, as the Deployment has it
    starting: list[float] = []  # times at which pods asked for become ready
    live = float(rule.min_replicas)
    started_waits: list[tuple[int, float, float]] = []  # (second, sequences started, their summed wait)
    last_high = 0
    for t in range(n):
        live += sum(1 for s in starting if s <= t)
        starting = [s for s in starting if s > t]
        capacity = live * replica.capacity
        wait[t] = backlog / capacity  # a sequence arriving now waits for the backlog ahead of it
        served = min(capacity, backlog + trace.load[t])
        # the served sequences waited, on average, about the backlog's drain time at the start of this second
        started_waits.append((t, served, served * wait[t]))
        backlog = backlog + trace.load[t] - served
        limit = live * replica.max_queue  # each replica's own queue bound
        refused[t], backlog = max(0.0, backlog - limit), min(backlog, limit)
        if t and t % rule.period_s == 0:
            seen = t - replica.metric_lag_s
            window = [(s, w) for u, s, w in started_waits if seen - 60 < u <= seen]
            started = sum(s for s, _ in window)
            metric = sum(w for _, w in window) / started if started else 0.0
            utilization = min(1.0, (trace.load[max(seen, 0)] / (live * replica.capacity)))
            proposal = max(math.ceil(replicas * metric / rule.target_wait_s),
                           math.ceil(replicas * utilization / rule.cpu_target), rule.min_replicas)
            proposal = min(proposal, rule.max_replicas)
            if proposal > replicas:
                step = max(math.ceil(replicas * rule.up_percent / 100), rule.up_pods)
                new = min(proposal, replicas + step)
                starting += [t + replica.start_s] * (new - replicas)
                replicas, last_high = new, t
            elif proposal < replicas:
                if t - last_high >= rule.down_window_s and t % 60 == 0:
                    replicas -= rule.down_pods_per_min
                    live -= 1
            else:
                last_high = t
        ready[t], wanted[t] = live, replicas
    trace.ready, trace.wanted, trace.wait_s, trace.refused = ready, wanted, wait, refused
    return trace


def summary(trace: Trace, replica: Replica) -> dict[str, float]:
    over = trace.wait_s > 0.150
    return {
        "peak_load": float(trace.load.max()),
        "peak_replicas": float(trace.ready.max()),
        "replicas_needed": float(math.ceil(trace.load.max() / replica.capacity)),
        "worst_wait_s": float(trace.wait_s.max()),
        "refused_503": float(trace.refused.sum()),
        "refused_share": float(trace.refused.sum() / trace.load.sum()),
        "seconds_over_150ms": float(over.sum()),
        "first_second_over": float(np.argmax(over)) if over.any() else float("nan"),
        "last_second_over": float(len(over) - 1 - np.argmax(over[::-1])) if over.any() else float("nan"),
    }


def plot(trace: Trace, replica: Replica, file: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    top.plot(trace.seconds, trace.load, label="arriving (sequences/s)")
    top.plot(trace.seconds, trace.ready * replica.capacity, label="ready capacity (sequences/s)")
    top.set_ylabel("sequences/s")
    twin = top.twinx()
    twin.step(trace.seconds, trace.wanted, color="gray", linestyle=":", label="replicas asked for")
    twin.set_ylabel("replicas")
    top.legend(loc="upper left")
    twin.legend(loc="upper right")
    bottom.plot(trace.seconds, trace.wait_s * 1000, color="tab:red", label="queue wait on arrival (ms)")
    bottom.plot(trace.seconds, trace.refused, color="tab:purple", label="refused with 503 (sequences/s)")
    bottom.legend(loc="upper right")
    bottom.set_yscale("symlog", linthresh=10)
    bottom.set_ylabel("ms, or sequences/s")
    bottom.set_xlabel("seconds")
    top.set_title("HPA on queue time: a 10x burst within one minute")
    fig.tight_layout()
    fig.savefig(file, dpi=100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=Path("docs"))
    parser.add_argument("--base", type=float, default=300.0, help="sequences/s before and after the burst")
    parser.add_argument("--factor", type=float, default=10.0)
    parser.add_argument("--start-s", type=float, default=Replica.start_s, help="pod start to ready, seconds")
    parser.add_argument("--metric-lag-s", type=int, default=Replica.metric_lag_s,
                        help="how late the HPA sees the queue-time metric, seconds")
    args = parser.parse_args(argv)
    replica = Replica(start_s=args.start_s, metric_lag_s=args.metric_lag_s)
    trace = simulate(burst(args.base, args.factor), Rule(), replica)
    args.output.mkdir(parents=True, exist_ok=True)
    plot(trace, replica, args.output / "autoscale.png")
    for key, value in summary(trace, replica).items():
        print(f"{key:>20}: {value:g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
