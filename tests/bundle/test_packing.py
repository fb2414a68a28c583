"""bundle.packing against hand-built layouts and NumPy means."""

from __future__ import annotations

import numpy as np
import pytest

from bundle.packing import pack, pool


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
