"""MiniLM imported into our encoder equals transformers' BertModel and sentence-transformers' encode."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer

from models.checkpoint import CheckpointError, load_hf_checkpoint

LONG = " ".join(["The encoder reads every token of this deliberately long sentence."] * 40)
SENTENCES = [
    "A man is playing a guitar.",
    "Zürich, São Paulo, Kraków and 東京 are cities; naïve café façade — ½ € ✓.",
    "short",
    "Attention is all you need, said the paper in 2017.",
    LONG,  # far beyond the 256-token default
]


@pytest.fixture(scope="module")
def imported(minilm_folder: Path):
    return load_hf_checkpoint(minilm_folder)


@pytest.fixture(scope="module")
def tokenized(imported):
    tok = Tokenizer.from_file(str(imported.tokenizer_file))
    tok.no_padding()
    tok.enable_truncation(imported.serving.max_length)
    rows = [e.ids for e in tok.encode_batch(SENTENCES)]
    width = max(map(len, rows))
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    assert width == 256, "the long sentence must reach the 256-token limit"
    return ids, mask


def test_serving_defaults_come_from_sentence_transformers(imported) -> None:
    assert (imported.serving.max_length, imported.serving.pooling, imported.serving.normalize) == (256, "mean", True)
    assert imported.model.config.n_layers == 6 and imported.model.config.n_heads == 12


def test_equals_transformers_bert(imported, tokenized, minilm_folder: Path) -> None:
    from transformers import BertModel

    ref = BertModel.from_pretrained(str(minilm_folder), attn_implementation="eager").eval()
    ids, mask = tokenized
    with torch.no_grad():
        ours = imported.model(ids, mask, output_attentions=True)
        want = ref(input_ids=ids, attention_mask=mask, output_attentions=True)
    real = mask.bool()
    torch.testing.assert_close(ours.last_hidden_state[real], want.last_hidden_state[real], atol=1e-4, rtol=0)
    assert len(ours.attentions) == len(want.attentions) == 6
    for a, b in zip(ours.attentions, want.attentions, strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=0)


def test_equals_sentence_transformers(imported, tokenized, minilm_folder: Path) -> None:
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(minilm_folder), device="cpu", local_files_only=True)
    assert st.max_seq_length == 256
    want = st.encode(SENTENCES, convert_to_numpy=True, normalize_embeddings=False)
    ids, mask = tokenized
    with torch.no_grad():
        pooled = imported.model(ids, mask).pooled
    ours = torch.nn.functional.normalize(pooled, dim=-1).numpy()
    cosine = (ours * want).sum(1) / np.linalg.norm(want, axis=1)
    assert cosine.min() >= 0.99999, cosine
    np.testing.assert_allclose(np.linalg.norm(want, axis=1), 1.0, atol=1e-5)  # the model normalizes


def _fake_checkpoint(tmp_path: Path, minilm_folder: Path, **changes) -> Path:
    folder = tmp_path / "ckpt"
    folder.mkdir()
    cfg = json.loads((minilm_folder / "config.json").read_text())
    cfg.update(changes)
    (folder / "config.json").write_text(json.dumps(cfg))
    shutil.copy(minilm_folder / "model.safetensors", folder / "model.safetensors")
    return folder


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"model_type": "gpt2"}, "model_type is 'gpt2'"),
        ({"hidden_act": "mish"}, "hidden_act is 'mish'"),
        ({"position_embedding_type": "relative_key"}, "position_embedding_type is 'relative_key'"),
        ({"is_decoder": True}, "decoder"),
    ],
)
def test_unsupported_architecture_is_refused(tmp_path: Path, minilm_folder: Path, changes, message) -> None:
    with pytest.raises(CheckpointError, match=message):
        load_hf_checkpoint(_fake_checkpoint(tmp_path, minilm_folder, **changes))


def test_missing_weights_are_named(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match=r"missing model\.safetensors"):
        load_hf_checkpoint(tmp_path)
