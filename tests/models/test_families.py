"""Every supported family imported into our encoder equals transformers' own model, built and saved in the test
with random weights: last hidden states and attention probabilities of real tokens within 1e-4, for a batch of
mixed lengths with padding, one input at the model's maximum length."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from models.checkpoint import CheckpointError, load_hf_checkpoint
from tests.families import FAMILIES, family_tokenizer, make_checkpoint

TEXTS = ["the quick brown fox jumps over the lazy dog", "query: attention", "x",
         "Zürich and Paris are cities; the encoder reads every token of this long passage " * 8]


def _batch(name: str) -> tuple[torch.Tensor, torch.Tensor, int]:
    spec = FAMILIES[name]
    tok = family_tokenizer(spec)
    tok.enable_truncation(spec.max_length)
    rows = [e.ids for e in tok.encode_batch(TEXTS)]
    assert max(map(len, rows)) == spec.max_length, "the long text must reach the maximum length"
    pad = spec.config.get("pad_token_id", 0)
    width = spec.max_length
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    return ids, mask, width


@pytest.mark.parametrize("name", list(FAMILIES))
def test_family_equals_transformers(name: str, tmp_path: Path) -> None:
    reference = make_checkpoint(name, tmp_path / name)
    ours = load_hf_checkpoint(tmp_path / name).model
    ids, mask, _ = _batch(name)
    with torch.no_grad():
        want = reference(input_ids=ids, attention_mask=mask, output_attentions=True)
        got = ours(ids, mask, output_attentions=True)
    real = mask.bool()
    torch.testing.assert_close(got.last_hidden_state[real], want.last_hidden_state[real], atol=1e-4, rtol=0)
    assert len(got.attentions) == len(want.attentions) == ours.config.n_layers
    for a, b in zip(got.attentions, want.attentions, strict=True):
        # (B, h, T_q, T_k) -> real queries (n_real, h, T_k): padded queries are never served
        torch.testing.assert_close(a.permute(0, 2, 1, 3)[real], b.permute(0, 2, 1, 3)[real], atol=1e-4, rtol=0)
    expected_mean = (want.last_hidden_state * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    torch.testing.assert_close(got.pooled, expected_mean, atol=1e-4, rtol=0)


def test_sliding_window_layers_see_only_their_window(tmp_path: Path) -> None:
    """ModernBERT's layers 1 and 2 are local (window 16: 8 each side), layers 0 and 3 global."""
    make_checkpoint("modernbert", tmp_path / "m")
    model = load_hf_checkpoint(tmp_path / "m").model
    ids, mask, width = _batch("modernbert")
    with torch.no_grad():
        att = model(ids, mask, output_attentions=True).attentions
    distance = (torch.arange(width)[None, :] - torch.arange(width)[:, None]).abs()  # (T, T)
    row = att[1][0, 0]  # (T, T) of the unpadded input at the maximum length... or the first row's
    assert float(row[distance > 8].abs().max()) == 0.0
    assert float(att[0][0, 0][distance > 8].max()) > 0.0


@pytest.mark.parametrize(
    ("name", "changes", "message"),
    [
        ("modernbert", {"layer_types": ["full_attention", "sliding_attention", "full_attention",
                                        "full_attention"]}, "layer_types"),
        ("nomic_bert", {"rope_parameters": {"rope_type": "linear", "rope_theta": 1000.0, "factor": 2.0}},
         "rope_type 'linear'"),
        ("nomic_bert", {"n_embd": 60}, "original"),
        ("roberta", {"position_embedding_type": "relative_key"}, "position_embedding_type"),
        ("bert", {"model_type": "t5"}, "model_type is 't5'"),
    ],
)
def test_unsupported_variants_are_refused(name: str, changes: dict, message: str, tmp_path: Path) -> None:
    make_checkpoint(name, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config.update(changes)
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=message):
        load_hf_checkpoint(tmp_path)


def test_missing_tensor_is_named(tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    make_checkpoint("mpnet", tmp_path)
    tensors = load_file(str(tmp_path / "model.safetensors"))
    del tensors["encoder.relative_attention_bias.weight"]
    save_file(tensors, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError, match="relative_attention_bias"):
        load_hf_checkpoint(tmp_path)


def test_serving_defaults_and_prompts_from_sentence_transformers(tmp_path: Path) -> None:
    make_checkpoint("nomic_bert", tmp_path, sentence_transformers={
        "pooling": "last", "normalize": True, "max_seq_length": 48,
        "prompts": {"query": "search_query: ", "document": "search_document: "}, "default_prompt_name": "document"})
    ck = load_hf_checkpoint(tmp_path)
    assert (ck.serving.pooling, ck.serving.normalize, ck.serving.max_length) == ("last", True, 48)
    assert ck.serving.prompts == {"query": "search_query: ", "document": "search_document: "}
    assert ck.serving.default_prompt_name == "document"
    ids, mask, _ = _batch("bert")
    with torch.no_grad():
        hidden = ck.model(ids, mask).last_hidden_state.numpy()
        pooled = ck.model(ids, mask).pooled.numpy()
    last = mask.sum(1).numpy() - 1
    np.testing.assert_allclose(pooled, hidden[np.arange(len(last)), last], atol=0)


@pytest.mark.parametrize(("pooling", "pick"), [("cls", lambda h, last: h[:, 0]),
                                              ("last", lambda h, last: h[np.arange(len(last)), last])])
def test_pooling_from_sentence_transformers(tmp_path: Path, pooling: str, pick) -> None:
    make_checkpoint("distilbert", tmp_path, sentence_transformers={"pooling": pooling})
    model = load_hf_checkpoint(tmp_path).model
    assert model.config.pooling == pooling
    ids, mask, _ = _batch("distilbert")
    with torch.no_grad():
        out = model(ids, mask)
    last = mask.sum(1).numpy() - 1
    np.testing.assert_array_equal(out.pooled.numpy(), pick(out.last_hidden_state.numpy(), last))
