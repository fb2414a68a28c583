"""The answer budget: large answers reserve their numbers before they are queued and give them back once sent."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Gauge

from service.answers import SMALL_ANSWER, AnswerBudget
from service.errors import ApiError


def test_large_answers_past_the_budget_get_503_and_a_lone_one_always_runs() -> None:
    budget = AnswerBudget(1_000_000, Gauge("values", "", registry=CollectorRegistry()))
    first, second, third, small = {}, {}, {}, {}
    budget.reserve(small, SMALL_ANSWER)  # small answers are not counted
    budget.reserve(first, 600_000)
    assert budget.values == 600_000 and budget.gauge._value.get() == 600_000  # type: ignore[union-attr]
    with pytest.raises(ApiError) as refused:
        budget.reserve(second, 400_001)
    assert refused.value.status == 503 and refused.value.headers == {"Retry-After": "1"}
    assert "600000 numbers" in refused.value.message and "max_answer_values" in refused.value.message
    budget.reserve(second, 400_000)
    for scope in (first, second, small, third):  # given back once each; a request that held nothing is fine
        budget.release_held(scope)
        budget.release_held(scope)
    assert budget.values == 0 and budget.gauge._value.get() == 0  # type: ignore[union-attr]
    budget.reserve(third, 5_000_000)  # nothing held: one larger than the budget still runs
    assert budget.values == 5_000_000
