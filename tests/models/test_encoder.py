"""Encoder behaviour: padding invariance, pooling, dropout only in training, config round-trip."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from models import Encoder, EncoderConfig, tiny_config, tiny_encoder
from models.encoder import Packing, pool

VARIANTS = {
    "sinusoidal-post-ln": {},
    "learned-pre-ln-relu": {"positional": "learned", "norm_first": True, "activation": "relu"},
    "types-embnorm-cls": {"type_vocab_size": 2, "embedding_layer_norm": True, "pooling": "cls"},
    "roberta-offset-last": {"positional": "learned", "position_offset": 2, "type_vocab_size": 1, "pooling": "last"},
    "mpnet-relative-bias": {"positional": "learned", "position_offset": 2, "relative_buckets": 32},
    "nomic-rotary-swiglu": {"positional": "rotary", "gated": True, "activation": "silu", "bias": False},
    "modernbert-window": {"positional": "rotary", "gated": True, "norm_first": True, "first_attention_norm": False,
                          "local_window": 8, "global_every": 2, "bias": False, "norm_bias": False,
                          "embedding_layer_norm": True, "local_rotary_base": 500.0},
}


def _model(overrides: dict) -> Encoder:
    torch.manual_seed(3)
    return Encoder(dataclasses.replace(tiny_config(), **overrides)).eval()


@pytest.mark.parametrize("variant", VARIANTS, ids=list(VARIANTS))
def test_sequence_alone_equals_inside_padded_batch(variant: str) -> None:
    model = _model(VARIANTS[variant])
    short = torch.randint(1, 1000, (1, 6))
    batch = torch.randint(1, 1000, (3, 20))
    batch[1, :6] = short[0]
    mask = torch.ones_like(batch)
    mask[1, 6:] = 0
    batch[1, 6:] = 0
    with torch.no_grad():
        alone = model(short, output_attentions=True)
        padded = model(batch, mask, output_attentions=True)
    torch.testing.assert_close(padded.last_hidden_state[1, :6], alone.last_hidden_state[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(padded.pooled[1], alone.pooled[0], atol=1e-5, rtol=0)
    for a, p in zip(alone.attentions, padded.attentions, strict=True):
        torch.testing.assert_close(p[1, :, :6, :6], a[0], atol=1e-5, rtol=0)
        assert torch.count_nonzero(p[1, :, :, 6:]) == 0


@pytest.mark.parametrize("variant", VARIANTS, ids=list(VARIANTS))
def test_packed_forward_equals_each_sequence_alone(variant: str) -> None:
    model = _model(VARIANTS[variant])
    seqs = [torch.randint(1, 1000, (n,)) for n in (9, 1, 17, 4)]
    b, s = len(seqs), 17
    slots = torch.zeros((b, s), dtype=torch.int64)
    mask = torch.zeros((b, s), dtype=torch.int64)
    keep, positions, start = [], [], 0
    for i, seq in enumerate(seqs):  # token j of sequence i: packed row start + j, padded slot (i, j)
        slots[i, : len(seq)] = torch.arange(start, start + len(seq))
        mask[i, : len(seq)] = 1
        keep += [i * s + j for j in range(len(seq))]
        positions += list(range(len(seq)))
        start += len(seq)
    with torch.no_grad():
        packed = model.forward_packed(torch.cat(seqs), torch.tensor(positions),
                                      Packing(slots, torch.tensor(keep), mask))
        alone = torch.cat([model(seq[None]).last_hidden_state[0] for seq in seqs])
    assert packed.shape == (start, 64)
    torch.testing.assert_close(packed, alone, atol=1e-5, rtol=0)


def test_mean_pooling_is_mean_over_real_tokens() -> None:
    hidden = torch.randn(2, 5, 8)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    want = np.stack([hidden[0, :3].numpy().mean(0), hidden[1].numpy().mean(0)])
    np.testing.assert_allclose(pool(hidden, mask, "mean").numpy(), want, atol=1e-6)
    np.testing.assert_array_equal(pool(hidden, mask, "cls").numpy(), hidden[:, 0].numpy())


def test_attentions_shape_and_count() -> None:
    model = tiny_encoder()
    out = model(torch.randint(0, 1000, (2, 9)), output_attentions=True)
    assert out.attentions is not None and len(out.attentions) == model.config.n_layers
    assert out.attentions[0].shape == (2, 4, 9, 9)
    assert model(torch.randint(0, 1000, (2, 9))).attentions is None


def test_dropout_only_in_training() -> None:
    model = tiny_encoder()
    ids = torch.randint(0, 1000, (2, 12))
    with torch.no_grad():
        a, b = model(ids).last_hidden_state, model(ids).last_hidden_state
        torch.testing.assert_close(a, b, atol=0, rtol=0)
        model.train()
        c = model(ids).last_hidden_state
    assert not torch.allclose(a, c)


def test_tiny_is_seeded() -> None:
    a, b, c = tiny_encoder(0), tiny_encoder(0), tiny_encoder(1)
    torch.testing.assert_close(a.state_dict(), b.state_dict())
    assert not torch.equal(a.token_embedding.weight, c.token_embedding.weight)


def test_config_round_trips_through_json() -> None:
    cfg = dataclasses.replace(tiny_config(), positional="learned", norm_first=True)
    assert EncoderConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("n_heads", 5, "not divisible"), ("positional", "alibi", "positional"), ("pooling", "max", "pooling"),
     ("n_layers", 0, "n_layers"), ("relative_buckets", 8, "relative_buckets")],
)
def test_config_rejects_bad_values(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(tiny_config(), **{field: value})


def test_config_rejects_unknown_fields() -> None:
    with pytest.raises(ValueError, match="unknown EncoderConfig fields: colour"):
        EncoderConfig.from_dict({**tiny_config().to_dict(), "colour": "blue"})


def test_gated_feed_forward_is_the_glu_formula() -> None:
    """W_2 (act(x W_a) * (x W_b)) with W_1 = [W_a; W_b], computed here in NumPy (SwiGLU: act = SiLU)."""
    from models.encoder import FeedForward

    config = dataclasses.replace(tiny_config(), gated=True, activation="silu", bias=False)
    torch.manual_seed(0)
    ff = FeedForward(config).eval()
    x = np.random.default_rng(0).standard_normal((5, config.d_model)).astype(np.float32)
    w1, w2 = ff.w_1.weight.detach().numpy(), ff.w_2.weight.detach().numpy()  # (2 d_ff, d), (d, d_ff)
    a, b = x @ w1[: config.d_ff].T, x @ w1[config.d_ff :].T
    want = (a / (1 + np.exp(-a)) * b) @ w2.T
    with torch.no_grad():
        got = ff(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("variant", ["mpnet-relative-bias", "modernbert-window", "sinusoidal-post-ln"])
def test_attention_in_query_blocks_gives_the_same_rows(variant: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Long-context graphs compute attention in blocks of queries; each row's numbers are unchanged (also for
    a last block that is shorter, and for blocks that are empty when the input is shorter than their count)."""
    from models.attention import MultiHeadAttention

    model = _model(VARIANTS[variant])
    ids = torch.randint(1, 1000, (3, 23))
    mask = torch.ones_like(ids)
    mask[1, 11:] = 0
    mask[2, 2:] = 0
    with torch.no_grad():
        whole = model(ids, mask).last_hidden_state
    blocks = []
    original = MultiHeadAttention._in_query_chunks
    monkeypatch.setattr(MultiHeadAttention, "_in_query_chunks",
                        lambda self, *a: blocks.append(self.query_chunks) or original(self, *a))
    for chunks in (4, 30):  # 23 = 6 + 6 + 6 + 5; 30 blocks of one query, the last 7 empty
        for m in model.modules():
            if isinstance(m, MultiHeadAttention):
                m.query_chunks = chunks
        with torch.no_grad():
            torch.testing.assert_close(model(ids, mask).last_hidden_state[mask.bool()], whole[mask.bool()],
                                       atol=1e-6, rtol=0)
    assert blocks == [4] * model.config.n_layers + [30] * model.config.n_layers
