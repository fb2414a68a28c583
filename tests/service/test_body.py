"""The JSON value count that guards the parser, against json's own parse of random documents."""

from __future__ import annotations

import json
import random

import pytest

from service.body import json_values

PIECES = ["a", ",", "[", "{", ":", '"', "\\", "\\\\", '\\"', "é", "😀", " "]


def values_in(value: object) -> int:
    """Every value json.loads builds: containers, keys (as strings) and scalars."""
    if isinstance(value, list):
        return 1 + sum(values_in(v) for v in value)
    if isinstance(value, dict):
        return 1 + sum(1 + values_in(v) for v in value.values())
    return 1


def random_value(rng: random.Random, depth: int = 0) -> object:
    r = rng.random()
    if depth > 3 or r < 0.3:
        return "".join(rng.choices(PIECES, k=rng.randint(0, 8)))
    if r < 0.45:
        return rng.choice([rng.randint(-9, 9), 1.5, None, True])
    if r < 0.75:
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {"".join(rng.choices(PIECES, k=3)): random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}


@pytest.mark.parametrize("ensure_ascii", [True, False])
def test_count_bounds_the_values_from_above_and_tightly(ensure_ascii: bool) -> None:
    rng = random.Random(1)
    for _ in range(2000):
        value = random_value(rng)
        text = json.dumps(value, ensure_ascii=ensure_ascii).encode()
        assert values_in(value) <= json_values(text) <= 2 * values_in(value), text


@pytest.mark.parametrize(("text", "count"), [
    (b'{"texts": ["a,b,[c]{d}:e"]}', 4),       # object, key, list, string: separators in a string do not count
    (b'{"texts": ["a\\"b,c", "d"]}', 5),        # an escaped quote does not end the string
    (b'{"texts": ["a\\\\", "b,c"]}', 5),        # an escaped backslash does not escape the quote after it
    (b'{"tokens": [[1, 2], [3]]}', 8),
    (b'"just a string, with a comma"', 1),
])
def test_known_documents(text: bytes, count: int) -> None:
    assert json_values(text) == count
