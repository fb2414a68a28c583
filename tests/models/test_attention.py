"""MultiHeadAttention against a NumPy implementation of the formula and against torch.nn.MultiheadAttention."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models import MultiHeadAttention

D_MODEL, N_HEADS = 32, 4


def numpy_attention(mha: MultiHeadAttention, xq: np.ndarray, xkv: np.ndarray, keep: np.ndarray | None):
    """softmax(QK^T / sqrt(d_k)) V per head, heads concatenated, then W_o; in float64."""
    p = {k: v.detach().double().numpy() for k, v in mha.state_dict().items()}
    q = xq @ p["w_q.weight"].T + p["w_q.bias"]
    k = xkv @ p["w_k.weight"].T + p["w_k.bias"]
    v = xkv @ p["w_v.weight"].T + p["w_v.bias"]
    b, t_q, _ = xq.shape
    t_k = xkv.shape[1]
    d_k = D_MODEL // N_HEADS
    out = np.zeros((b, t_q, D_MODEL))
    probs = np.zeros((b, N_HEADS, t_q, t_k))
    for bi in range(b):
        for h in range(N_HEADS):
            sl = slice(h * d_k, (h + 1) * d_k)
            scores = q[bi, :, sl] @ k[bi, :, sl].T / np.sqrt(d_k)
            real = np.ones(t_k, bool) if keep is None else keep[bi].astype(bool)
            weights = np.zeros_like(scores)
            if real.any():
                s = scores[:, real]
                e = np.exp(s - s.max(axis=1, keepdims=True))
                weights[:, real] = e / e.sum(axis=1, keepdims=True)
            probs[bi, h] = weights
            out[bi, :, sl] = weights @ v[bi, :, sl]
    return out @ p["w_o.weight"].T + p["w_o.bias"], probs


@pytest.fixture
def mha() -> MultiHeadAttention:
    torch.manual_seed(1)
    return MultiHeadAttention(D_MODEL, N_HEADS).eval()


def _inputs(cross: bool, masked: bool, seed: int = 0):
    rng = np.random.default_rng(seed)
    xq = rng.standard_normal((3, 5, D_MODEL)).astype(np.float32)
    xkv = rng.standard_normal((3, 7, D_MODEL)).astype(np.float32) if cross else xq
    keep = None
    if masked:
        keep = np.ones((3, xkv.shape[1]), np.int64)
        keep[1, 3:] = 0
        keep[2, 1:] = 0
    return xq, xkv, keep


@pytest.mark.parametrize("cross", [False, True], ids=["self", "cross"])
@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
def test_matches_numpy_formula(mha: MultiHeadAttention, cross: bool, masked: bool) -> None:
    xq, xkv, keep = _inputs(cross, masked)
    want_out, want_probs = numpy_attention(mha, xq.astype(np.float64), xkv.astype(np.float64), keep)
    with torch.no_grad():
        out, probs = mha(
            torch.from_numpy(xq),
            torch.from_numpy(xkv) if cross else None,
            key_padding_mask=None if keep is None else torch.from_numpy(keep),
            need_weights=True,
        )
    assert probs is not None and probs.shape == (3, N_HEADS, 5, xkv.shape[1])
    np.testing.assert_allclose(out.numpy(), want_out, atol=1e-5)
    np.testing.assert_allclose(probs.numpy(), want_probs, atol=1e-6)


@pytest.mark.parametrize("cross", [False, True], ids=["self", "cross"])
def test_matches_torch_multihead_attention(mha: MultiHeadAttention, cross: bool) -> None:
    ref = torch.nn.MultiheadAttention(D_MODEL, N_HEADS, batch_first=True).eval()
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([mha.w_q.weight, mha.w_k.weight, mha.w_v.weight]))
        ref.in_proj_bias.copy_(torch.cat([mha.w_q.bias, mha.w_k.bias, mha.w_v.bias]))
        ref.out_proj.weight.copy_(mha.w_o.weight)
        ref.out_proj.bias.copy_(mha.w_o.bias)
    xq, xkv, keep = _inputs(cross, masked=True)
    keep[2, :] = 1  # torch.nn.MultiheadAttention gives NaN for all-masked rows; ours is tested below
    q, kv, m = torch.from_numpy(xq), torch.from_numpy(xkv), torch.from_numpy(keep)
    with torch.no_grad():
        out, probs = mha(q, kv, key_padding_mask=m, need_weights=True)
        want, want_probs = ref(q, kv, kv, key_padding_mask=~m.bool(), need_weights=True,
                               average_attn_weights=False)
    torch.testing.assert_close(out, want, atol=1e-5, rtol=0)
    torch.testing.assert_close(probs, want_probs, atol=1e-6, rtol=0)


def test_rows_sum_to_one_and_padded_keys_get_zero(mha: MultiHeadAttention) -> None:
    xq, _, keep = _inputs(cross=False, masked=True)
    with torch.no_grad():
        _, probs = mha(torch.from_numpy(xq), key_padding_mask=torch.from_numpy(keep), need_weights=True)
    assert probs is not None
    sums = probs.sum(dim=-1)
    torch.testing.assert_close(sums, torch.ones_like(sums), atol=1e-6, rtol=0)
    padded = torch.from_numpy(keep == 0)[:, None, None, :].expand_as(probs)
    assert padded.any()
    assert torch.count_nonzero(probs[padded]) == 0  # exactly zero, not merely small


def test_all_masked_row_gives_zeros_not_nan(mha: MultiHeadAttention) -> None:
    x = torch.randn(2, 4, D_MODEL)
    keep = torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0]])
    with torch.no_grad():
        out, probs = mha(x, key_padding_mask=keep, need_weights=True)
    assert probs is not None
    assert not torch.isnan(out).any() and not torch.isnan(probs).any()
    assert torch.count_nonzero(probs[1]) == 0
    torch.testing.assert_close(out[1], mha.w_o.bias.detach().expand(4, D_MODEL))  # zero context -> W_o bias


def test_additive_mask_form_matches_the_formula(mha: MultiHeadAttention) -> None:
    """The export-only form the optimizer fuses: same numbers wherever a query has a real key."""
    xq, _, keep = _inputs(cross=False, masked=True)
    want_out, want_probs = numpy_attention(mha, xq.astype(np.float64), xq.astype(np.float64), keep)
    mha.additive_mask = True
    with torch.no_grad():
        out, probs = mha(torch.from_numpy(xq), key_padding_mask=torch.from_numpy(keep), need_weights=True)
    assert probs is not None
    np.testing.assert_allclose(out.numpy(), want_out, atol=1e-5)
    np.testing.assert_allclose(probs.numpy(), want_probs, atol=1e-6)
    assert torch.count_nonzero(probs[torch.from_numpy(keep == 0)[:, None, None, :].expand_as(probs)]) == 0


def test_rejects_indivisible_heads() -> None:
    with pytest.raises(ValueError, match="not divisible"):
        MultiHeadAttention(30, 4)
