"""The in-process ceilings count whole passes over their batches: a budget that ends mid-pass must not leave
the figure to whatever batches came first (length-sorted: the short ones)."""

from __future__ import annotations

import time
from collections import Counter

from loadtest.ceiling import whole_passes_per_s


def test_a_short_budget_still_times_every_batch() -> None:
    batches = [["short"]] * 9 + [["long"]]  # sorted by length: the expensive one last
    seconds = {"short": 0.001, "long": 0.05}
    runs: Counter[str] = Counter()

    def run(batch: list[str]) -> None:
        runs[batch[0]] += 1
        time.sleep(seconds[batch[0]])

    rate = whole_passes_per_s(run, batches, budget_s=0.002)
    assert runs == {"short": 9, "long": 1}  # one whole pass: a second would not fit in the budget
    whole_pass = 9 * seconds["short"] + seconds["long"]
    assert 10 / whole_pass * 0.5 < rate < 10 / whole_pass * 1.05  # the mix's rate, not the short items' ~1,000/s
    runs.clear()
    whole_passes_per_s(run, batches, budget_s=0.2)
    assert runs["long"] >= 2 and runs["short"] == 9 * runs["long"]  # more passes while they fit, whole ones
