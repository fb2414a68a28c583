"""The autoscaler simulation obeys hpa.yaml's rule, and its outcomes move the way the inputs say they must."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from loadtest.autoscale import Replica, Rule, burst, simulate, summary

HPA = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / "base" / "hpa.yaml"


def test_the_rule_is_the_one_in_hpa_yaml() -> None:
    spec = yaml.safe_load(HPA.read_text())["spec"]
    rule = Rule()
    pods = next(m for m in spec["metrics"] if m["type"] == "Pods")["pods"]["target"]["averageValue"]
    assert (rule.min_replicas, rule.max_replicas) == (spec["minReplicas"], spec["maxReplicas"])
    assert rule.target_wait_s == float(pods.removesuffix("m")) / 1000
    up = {p["type"]: p["value"] for p in spec["behavior"]["scaleUp"]["policies"]}
    assert (rule.up_percent, rule.up_pods) == (up["Percent"], up["Pods"])
    assert rule.down_window_s == spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"]


def test_replicas_stay_in_bounds_and_grow_no_faster_than_the_policy() -> None:
    rule = Rule()
    trace = simulate(burst(), rule, Replica())
    assert trace.wanted.min() >= rule.min_replicas and trace.wanted.max() <= rule.max_replicas
    steps = np.diff(trace.wanted[:: rule.period_s])
    before = trace.wanted[:: rule.period_s][:-1]
    assert (steps <= np.maximum(before * rule.up_percent / 100, rule.up_pods)).all()
    assert trace.wanted.max() == rule.max_replicas  # a 10x burst needs 14 and gets there


def test_the_backlog_drains_and_nothing_is_refused_without_a_burst() -> None:
    trace = simulate(burst(), Rule(), Replica())
    assert trace.wait_s[-300:].max() == 0  # long after the burst
    calm = simulate(burst(factor=1.0), Rule(), Replica())
    assert calm.refused.sum() == 0 and calm.wait_s.max() == 0


@pytest.mark.parametrize(("slow", "fast"), [
    (Replica(start_s=60), Replica(start_s=2)),
    (Replica(metric_lag_s=30), Replica(metric_lag_s=0)),
], ids=["pod-start", "metric-lag"])
def test_slower_reactions_refuse_more(slow: Replica, fast: Replica) -> None:
    assert summary(simulate(burst(), Rule(), slow), slow)["refused_503"] > \
        summary(simulate(burst(), Rule(), fast), fast)["refused_503"]
