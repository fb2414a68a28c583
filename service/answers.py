"""The answer budget: the numbers in large answers (attentions, token embeddings, Open Inference Protocol tensors)
being computed, built or sent at once. Such an answer is cheap to ask for and dear to hold (a MiniLM attention
answer: ~60 MB of JSON), and the clients that asked may read slowly or not at all; without a bound, memory grew
with the number of connections. A request reserves its answer's numbers before it is queued and gives them back
once its answer is sent or dropped (RequestMetrics, the outermost middleware, runs ``release_held``)."""

from __future__ import annotations

from typing import Any

from prometheus_client import Gauge

from .errors import ApiError

# numbers; an answer up to this is built and serialized on the event loop (respond.json_response) and is not
# counted here; a larger one goes to the worker pool and holds part of the budget
SMALL_ANSWER = 50_000
HELD = "attnserve.answer_values"  # in the request's state: the numbers this request holds


class AnswerBudget:
    def __init__(self, max_values: int, gauge: Gauge | None = None) -> None:
        self.max_values, self.gauge = max_values, gauge
        self.values = 0

    def reserve(self, scope: dict[str, Any], values: int) -> None:
        """Counts ``values`` for this request until ``release_held``; 503 when that would pass the bound (a
        request alone is always admitted)."""
        if values <= SMALL_ANSWER:
            return
        if self.values and self.values + values > self.max_values:
            raise ApiError(503, f"the server is at capacity ({self.values} numbers in answers being computed or "
                                f"sent; this one has {values}; at most {self.max_values}, max_answer_values); "
                                "retry shortly", None, {"Retry-After": "1"})
        state = scope.setdefault("state", {})
        state[HELD] = state.get(HELD, 0) + values
        self._count(values)

    def release_held(self, scope: dict[str, Any]) -> None:
        held = scope.get("state", {}).pop(HELD, 0)
        if held:
            self._count(-held)

    def _count(self, values: int) -> None:
        self.values += values
        if self.gauge is not None:
            self.gauge.set(self.values)
