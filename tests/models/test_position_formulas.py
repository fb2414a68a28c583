"""The relative and rotary position schemes against their formulas, written here in NumPy."""

from __future__ import annotations

import math

import numpy as np
import torch

from models.attention import MultiHeadAttention, PositionTerms
from models.positional import RelativePositionBias, RotaryEmbedding, apply_rotary, relative_position_bucket


def numpy_bucket(relative: int, num_buckets: int = 32, max_distance: int = 128) -> int:
    """T5/MPNet bidirectional buckets: half for keys before the query, half for keys after; exact below
    num_buckets / 4, then logarithmic up to max_distance, then the last bucket of the half."""
    half = num_buckets // 2
    offset = half if relative > 0 else 0
    n = abs(relative)
    exact = half // 2
    if n < exact:
        return offset + n
    return offset + min(half - 1, exact + int(math.log(n / exact) / math.log(max_distance / exact) * (half - exact)))


def test_relative_buckets_follow_the_formula() -> None:
    distances = np.arange(-400, 401)
    ours = relative_position_bucket(torch.from_numpy(distances)).numpy()
    want = np.array([numpy_bucket(int(d)) for d in distances])
    np.testing.assert_array_equal(ours, want)
    assert ours.min() == 0 and ours.max() == 31
    assert set(ours[distances > 0]) <= set(range(16, 32)) and set(ours[distances <= 0]) <= set(range(16))
    assert (ours[distances >= 128] == 31).all() and (ours[distances <= -128] == 15).all()


def test_relative_bias_reads_the_table_by_bucket() -> None:
    torch.manual_seed(0)
    bias = RelativePositionBias(32, 3, max_len=200)
    table = bias.embedding.weight.detach().numpy()  # (32, h)
    got = bias(150).detach().numpy()[0]  # (h, T, T)
    i, j = np.meshgrid(np.arange(150), np.arange(150), indexing="ij")
    buckets = np.vectorize(numpy_bucket)(j - i)  # key - query
    np.testing.assert_array_equal(got, table[buckets].transpose(2, 0, 1))


def numpy_rotary(x: np.ndarray, position: int, base: float) -> np.ndarray:
    """Turn each pair (x_i, x_{i + d/2}) by the angle position * base^(-2i/d)."""
    d = x.shape[-1]
    out = x.astype(np.float64).copy()
    for i in range(d // 2):
        angle = position * base ** (-2 * i / d)
        a, b = x[i], x[i + d // 2]
        out[i] = a * math.cos(angle) - b * math.sin(angle)
        out[i + d // 2] = a * math.sin(angle) + b * math.cos(angle)
    return out


def test_rotary_turns_each_pair_by_its_angle() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 1, 40, 20)).astype(np.float32)  # (B, h, T, d_k)
    for base in (10000.0, 1000.0, 160000.0):
        cos, sin = RotaryEmbedding(20, base)(40)
        got = apply_rotary(torch.from_numpy(x), cos, sin).numpy()[0, 0]
        want = np.stack([numpy_rotary(x[0, 0, m], m, base) for m in range(40)])
        np.testing.assert_allclose(got, want, atol=1e-4)


def test_rotary_scores_depend_on_distance_only() -> None:
    """q_m . k_n after rotation equals q_{m+s} . k_{n+s}: attention sees relative positions."""
    rng = np.random.default_rng(1)
    q, k = rng.standard_normal(16).astype(np.float32), rng.standard_normal(16).astype(np.float32)
    cos, sin = RotaryEmbedding(16, 10000.0)(64)

    def turned(v: np.ndarray, m: int) -> np.ndarray:
        return apply_rotary(torch.from_numpy(v)[None], cos[m:m + 1], sin[m:m + 1]).numpy()[0]

    base = float(turned(q, 3) @ turned(k, 10))
    for shift in (1, 17, 50):
        assert abs(float(turned(q, 3 + shift) @ turned(k, 10 + shift)) - base) < 1e-3


def test_sliding_window_and_padding_mask_together() -> None:
    """A key outside the window or padded gets exactly zero weight; the rest is softmax over what remains."""
    torch.manual_seed(0)
    attention = MultiHeadAttention(12, 3, dropout=0.0).eval()
    x = torch.randn(2, 10, 12)
    mask = torch.ones(2, 10, dtype=torch.long)
    mask[1, 6:] = 0
    position = torch.arange(10)
    window = (position[None, :] - position[:, None]).abs() <= 2
    with torch.no_grad():
        _, probs = attention(x, key_padding_mask=mask, need_weights=True, terms=PositionTerms(window=2))
        q = attention._split_heads(attention.w_q(x))
        k = attention._split_heads(attention.w_k(x))
    scores = (q @ k.transpose(-1, -2) / math.sqrt(4)).numpy()  # (B, h, T, T)
    seen = window.numpy()[None, None] & mask.bool().numpy()[:, None, None, :]
    e = np.where(seen, np.exp(scores - scores.max(-1, keepdims=True)), 0.0)
    total = e.sum(-1, keepdims=True)
    # a padded query whose whole window is padding (row 1, queries 8 and 9) gets zero weights, never NaN
    want = np.divide(e, total, out=np.zeros_like(e), where=total > 0)
    assert (total[1, :, 8:] == 0).all()
    np.testing.assert_allclose(probs.numpy(), want, atol=1e-6)
