"""bundle.packing against hand-built layouts and NumPy means."""

from __future__ import annotations

import numpy as np
import pytest

from bundle.packing import Buckets, pack, pool


def test_pack_lays_tokens_out_one_after_another() -> None:
    a, b, c = np.array([7, 8, 9]), np.array([5]), np.array([1, 2])
    inputs, offsets = pack([a, b, c])
    assert offsets.tolist() == [0, 3, 4, 6]
    assert inputs["input_ids"].tolist() == [7, 8, 9, 5, 1, 2]
    assert inputs["positions"].tolist() == [0, 1, 2, 0, 0, 1]
    assert inputs["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0], [1, 1, 0]]
    assert inputs["keep"].tolist() == [0, 1, 2, 3, 6, 7]  # row-major index in the (3, 3) layout
    slots = inputs["slots"]
    real = inputs["attention_mask"].astype(bool)
    assert slots[real].tolist() == [0, 1, 2, 3, 4, 5]
    # gathering by slots gives the padded batch; gathering that back by keep gives the tokens again
    padded = inputs["input_ids"][slots]
    assert padded[real].tolist() == inputs["input_ids"].tolist()
    assert padded.reshape(-1)[inputs["keep"]].tolist() == inputs["input_ids"].tolist()
    assert all(v.dtype == np.int64 for v in inputs.values())


def test_pool_is_the_mean_or_first_row_of_each_sequence() -> None:
    rng = np.random.default_rng(0)
    hidden = rng.standard_normal((6, 4)).astype(np.float32)
    offsets = np.array([0, 3, 4, 6])
    want_mean = np.stack([hidden[0:3].mean(0), hidden[3], hidden[4:6].mean(0)])
    np.testing.assert_allclose(pool(hidden, offsets, "mean"), want_mean, rtol=1e-6)
    np.testing.assert_array_equal(pool(hidden, offsets, "cls"), hidden[[0, 3, 4]])


@pytest.mark.parametrize("sequences", [[], [np.array([1]), np.array([], dtype=np.int64)]])
def test_pack_refuses_empty_batches_and_sequences(sequences: list[np.ndarray]) -> None:
    with pytest.raises(ValueError, match="at least one"):
        pack(sequences)


def test_buckets_round_the_shapes_up_with_padding_nothing_real_sees() -> None:
    a, b, c = np.array([7, 8, 9]), np.array([5]), np.array([1, 2])
    inputs, offsets = pack([a, b, c], Buckets(rows=2, width=8, tokens=32))
    assert offsets.tolist() == [0, 3, 4, 6]  # the real tokens, as without buckets
    mask, slots, keep = inputs["attention_mask"], inputs["slots"], inputs["keep"]
    assert mask.shape == slots.shape == (4, 8)  # 3 rows rounded to 2 (one all-padding row); width 3 -> 8
    assert mask[:3, :3].tolist() == [[1, 1, 1], [1, 0, 0], [1, 1, 0]] and mask[:, 3:].sum() == 0
    assert mask[3].sum() == 0
    assert len(inputs["input_ids"]) == len(inputs["positions"]) == len(keep) == 32
    assert inputs["input_ids"][:6].tolist() == [7, 8, 9, 5, 1, 2] and inputs["positions"][:6].tolist() == [
        0, 1, 2, 0, 0, 1]
    assert keep[:6].tolist() == [0, 1, 2, 8, 16, 17]  # row-major in the (4, 8) layout
    # no slot gathers the extra tokens, so nothing attends to them; their (dropped) rows read slot 0
    assert slots[mask.astype(bool)].tolist() == [0, 1, 2, 3, 4, 5] and slots.max() < 6
    assert keep[6:].tolist() == [0] * 26
    assert all(v.dtype == np.int64 for v in inputs.values())


def test_buckets_keep_rows_exact_by_default() -> None:
    """No padding row unless rows are rounded: a padding row costs attention its work and bounds nothing."""
    batch = [np.arange(1, n + 1) for n in (3, 1, 2)]
    inputs, _ = pack(batch, Buckets())
    assert inputs["slots"].shape == (3, 8) and len(inputs["keep"]) == 32
    assert inputs["attention_mask"].sum(axis=1).tolist() == [3, 1, 2]


def test_buckets_bound_the_shapes_that_random_batches_make() -> None:
    """What bounds OpenVINO's kernels per shape: exact shapes of random batches are nearly all different; bucketed,
    the attention layouts and token counts come from a small fixed set."""
    rng = np.random.default_rng(0)
    exact, layouts, tokens = set(), set(), set()
    for _ in range(2000):
        batch = [np.ones(n, dtype=np.int64) for n in rng.integers(1, 129, rng.integers(1, 33))]
        feeds, _ = pack(batch)
        exact.add((feeds["slots"].shape, len(feeds["keep"])))
        feeds, _ = pack(batch, Buckets())
        layouts.add(feeds["slots"].shape)
        tokens.add(len(feeds["keep"]))
    assert len(exact) > 1900
    assert len(layouts) <= 32 * 16 and len(tokens) <= 33 * 128 // 32
