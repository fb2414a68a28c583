"""The sinusoidal table against the closed form, evaluated with math.sin/cos at chosen (pos, i)."""

from __future__ import annotations

import math

import pytest

from models.positional import LearnedPositionalEncoding, SinusoidalPositionalEncoding, sinusoidal_table


@pytest.mark.parametrize(("pos", "i"), [(0, 0), (1, 0), (5, 3), (17, 10), (255, 31), (511, 0)])
def test_sinusoidal_equals_closed_form(pos: int, i: int) -> None:
    d_model = 64
    table = sinusoidal_table(512, d_model)
    angle = pos / 10000 ** (2 * i / d_model)
    assert table[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
    assert table[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)


def test_odd_model_width_has_one_more_sine() -> None:
    table = sinusoidal_table(4, 5)
    assert table[3, 4].item() == pytest.approx(math.sin(3 / 10000 ** (4 / 5)), abs=1e-6)


def test_modules_slice_to_sequence_length() -> None:
    assert SinusoidalPositionalEncoding(16, 8)(5).shape == (5, 8)
    learned = LearnedPositionalEncoding(16, 8)
    assert learned(5).shape == (5, 8)
    assert learned(5).requires_grad
    assert not any(p.requires_grad for p in SinusoidalPositionalEncoding(16, 8).parameters())
