"""Task heads against transformers' own task models (random weights made by transformers in the test): the
classification logits of every family that has a sequence-classification class, and SPLADE vectors computed
from transformers' masked-LM logits with the formula (max over real tokens of log(1 + relu(logit)))."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from models.checkpoint import CheckpointError, load_hf_checkpoint
from tests.families import make_checkpoint

LIMIT = 1e-4
CLASSIFIERS = ["bert", "roberta", "xlm-roberta", "distilbert", "mpnet", "nomic_bert", "modernbert"]
SPARSE = ["bert", "distilbert", "roberta"]


def _batch(type_ids: bool) -> dict[str, torch.Tensor]:
    """Three rows of mixed lengths (padding in two), token types 0 then 1 where the family has them."""
    generator = torch.Generator().manual_seed(3)
    ids = torch.randint(5, 300, (3, 13), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, 8:], mask[2, 3:] = 0, 0
    batch = {"input_ids": ids, "attention_mask": mask}
    if type_ids:
        types = torch.zeros_like(ids)
        types[:, 6:] = 1
        batch["token_type_ids"] = types * mask
    return batch


def splade(logits: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    """SPLADE's formula on (B, T, vocab) logits: NumPy, independent of the head's torch code."""
    weights = np.log1p(np.maximum(logits.numpy(), 0)) * mask.numpy()[:, :, None]
    return weights.max(axis=1)


@pytest.mark.parametrize("family", CLASSIFIERS)
def test_classification_logits_equal_transformers(family: str, tmp_path: Path) -> None:
    labels = ["neg", "neu", "pos"] if family != "roberta" else ["relevance"]
    reference = make_checkpoint(family, tmp_path, head="classify", labels=labels)
    ck = load_hf_checkpoint(tmp_path)  # classify: from the checkpoint's architectures
    assert ck.task.kind == "classify" and ck.task.labels == tuple(labels)
    assert ck.task.activation == ("sigmoid" if len(labels) == 1 else "softmax")
    assert ck.task_model is not None
    batch = _batch(ck.model.config.type_vocab_size > 1)
    with torch.no_grad():
        want = reference(**batch).logits.numpy()
        got, _ = ck.task_model(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
    assert np.abs(want - got.numpy()).max() <= LIMIT
    assert np.abs(want - want[:1]).max() > 1e-3  # rows differ: the check could fail


@pytest.mark.parametrize("family", SPARSE)
def test_sparse_vectors_equal_splade_on_transformers_logits(family: str, tmp_path: Path) -> None:
    reference = make_checkpoint(family, tmp_path, head="mlm")
    ck = load_hf_checkpoint(tmp_path, "sparse")
    assert ck.task.kind == "sparse" and ck.task_model is not None
    batch = _batch(ck.model.config.type_vocab_size > 1)
    with torch.no_grad():
        want = splade(reference(**batch).logits, batch["attention_mask"])
        got, _ = ck.task_model(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
    got = got.numpy()
    assert np.abs(want - got).max() <= LIMIT
    assert 0 < (want > 0).sum() < want.size  # sparse, not empty: the comparison means something
    assert ((want > 0) == (got > 0)).all()


def test_a_masked_lm_checkpoint_is_an_embedder_unless_asked(tmp_path: Path) -> None:
    make_checkpoint("bert", tmp_path, head="mlm")
    ck = load_hf_checkpoint(tmp_path)
    assert ck.task.kind == "embed" and ck.task_model is None


def test_families_without_the_head_are_refused_by_name(tmp_path: Path) -> None:
    make_checkpoint("mpnet", tmp_path, head="mlm")
    with pytest.raises(CheckpointError, match="task 'sparse' is not supported for model_type 'mpnet'"):
        load_hf_checkpoint(tmp_path, "sparse")
