"""The answer budget: large answers reserve their numbers before they are queued and give them back once sent."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Gauge

from service.answers import SMALL_ANSWER, AnswerBudget
from service.errors import ApiError
from tests.service.conftest import client_for


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


@pytest.mark.parametrize(("route", "body"), [
    ("/encode", {"tokens": [[2, 7, 3]] * 800}),  # 800 pooled vectors of 64 numbers: 51,200
    ("/encode", {"tokens": [[7] * 100] * 10, "return_token_embeddings": True}),  # 1,000 tokens x 64 + 640
    ("/v1/embeddings", {"model": "tiny", "input": [[2, 7, 3]] * 800}),
])
def test_routes_reserve_their_answers_and_give_them_back(tiny_bundle: Path, route: str, body: dict) -> None:
    with client_for(tiny_bundle, max_answer_values=100_000, max_inputs_per_request=1_000) as client:
        budget = client.app.state.ctx.answers
        other = {}
        budget.reserve(other, 60_000)  # another request's answer, being sent
        r = client.post(route, json=body)
        assert r.status_code == 503 and "max_answer_values" in r.text, r.text
        budget.release_held(other)
        assert client.post(route, json=body).status_code == 200
        assert budget.values == 0  # given back once the answer was sent
