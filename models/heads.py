"""Task heads on the encoder's hidden states: sequence classification (a cross-encoder is one label) and SPLADE's
sparse vectors from masked-LM logits, with each family's Hugging Face tensor names.

transformers is never imported here: it is a test reference only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from bundle.task import TaskConfig

from .encoder import Encoder, _activation, pool
from .families import CheckpointError, Tensors, _linear, _take


@dataclass(frozen=True)
class HeadSpec:
    """The shape of one family's head: dense -> activation (-> LayerNorm) -> out, on the first token (or the
    mean, ModernBERT's option). The same structure covers BERT's pooler + classifier, RoBERTa's and MPNet's
    classification heads, DistilBERT's pre_classifier and every masked-LM transform + decoder."""

    activation: str  # "tanh", or one of the encoder's activations
    pooling: str = "cls"  # classification only: "cls" | "mean"
    norm: bool = False
    norm_eps: float = 1e-12
    bias: bool = True  # the dense layer's bias
    norm_bias: bool = True


class ClassificationHead(nn.Module):
    """(B, T, d_model) hidden states -> (B, n_labels) logits."""

    def __init__(self, d_model: int, n_out: int, spec: HeadSpec) -> None:
        super().__init__()
        self.spec = spec
        self.dense = nn.Linear(d_model, d_model, bias=spec.bias)
        self.act = nn.Tanh() if spec.activation == "tanh" else _activation(spec.activation)
        self.norm = nn.LayerNorm(d_model, eps=spec.norm_eps, bias=spec.norm_bias) if spec.norm else None
        self.out = nn.Linear(d_model, n_out)

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.dense(x))
        return self.norm(x) if self.norm is not None else x

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.out(self.transform(pool(hidden, mask, self.spec.pooling)))  # (B, n_labels)


class SpladeHead(ClassificationHead):
    """SPLADE: the masked-LM logits of every token (B, T, vocab), then per vocabulary entry the max over real
    tokens of log(1 + relu(logit)): (B, vocab), mostly zeros."""

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        logits = self.out(self.transform(hidden))  # (B, T, vocab)
        weights = torch.log1p(torch.relu(logits)) * mask.to(logits.dtype)[:, :, None]
        return weights.max(dim=1).values  # (B, vocab); padding counts 0, never above a real token's weight


class TaskModel(nn.Module):
    """Encoder + head: (B, T) ids, mask (and token types of sentence pairs) -> the task's (B, n) scores."""

    def __init__(self, encoder: Encoder, task: TaskConfig, spec: HeadSpec) -> None:
        super().__init__()
        self.encoder, self.task = encoder, task
        cfg = encoder.config
        if task.kind == "sparse":
            self.head: ClassificationHead = SpladeHead(cfg.d_model, cfg.vocab_size, spec)
        else:
            self.head = ClassificationHead(cfg.d_model, len(task.labels), spec)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None,
                output_attentions: bool = False) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
        out = self.encoder(input_ids, attention_mask, token_type_ids, output_attentions=output_attentions)
        return self.head(out.last_hidden_state, attention_mask), out.attentions


# -- each family's head: its structure from config.json and its tensor names (after the base prefix) --

_CLASSIFY_NAMES = {  # family model_type -> (dense, out)
    "bert": ("pooler.dense", "classifier"), "nomic_bert": ("pooler.dense", "classifier"),
    "roberta": ("classifier.dense", "classifier.out_proj"), "xlm-roberta": ("classifier.dense", "classifier.out_proj"),
    "camembert": ("classifier.dense", "classifier.out_proj"), "mpnet": ("classifier.dense", "classifier.out_proj"),
    "distilbert": ("pre_classifier", "classifier"), "modernbert": ("head.dense", "classifier"),
}
_SPARSE_NAMES = {  # family model_type -> (dense, norm, decoder, decoder bias)
    "bert": ("cls.predictions.transform.dense", "cls.predictions.transform.LayerNorm", "cls.predictions.decoder",
             "cls.predictions.bias"),
    "distilbert": ("vocab_transform", "vocab_layer_norm", "vocab_projector", "vocab_projector.bias"),
    **{t: ("lm_head.dense", "lm_head.layer_norm", "lm_head.decoder", "lm_head.bias")
       for t in ("roberta", "xlm-roberta", "camembert")},
}
CLASSIFY_MODEL_TYPES = tuple(_CLASSIFY_NAMES)
SPARSE_MODEL_TYPES = tuple(_SPARSE_NAMES)


def head_spec(hf: dict[str, Any], kind: str) -> HeadSpec:
    model_type = hf.get("model_type")
    table = _SPARSE_NAMES if kind == "sparse" else _CLASSIFY_NAMES
    if model_type not in table:
        raise CheckpointError(f"task {kind!r} is not supported for model_type {model_type!r}; supported: "
                              f"{', '.join(table)}")
    eps = hf.get("layer_norm_eps", 1e-12)
    if kind == "sparse":
        act = {"distilbert": hf.get("activation", "gelu"), "bert": hf.get("hidden_act", "gelu")}.get(model_type, "gelu")
        return HeadSpec(activation={"gelu_new": "gelu_tanh"}.get(act, act), norm=True, norm_eps=eps)
    if model_type == "modernbert":
        pooling = hf.get("classifier_pooling", "cls")
        if pooling not in ("cls", "mean"):
            raise CheckpointError(f"classifier_pooling {pooling!r} is not supported: only 'cls' or 'mean'")
        return HeadSpec(activation=hf.get("classifier_activation", "gelu"), pooling=pooling, norm=True,
                        norm_eps=hf.get("norm_eps", 1e-5), bias=bool(hf.get("classifier_bias", False)),
                        norm_bias=bool(hf.get("norm_bias", False)))
    return HeadSpec(activation="relu" if model_type == "distilbert" else "tanh")


def head_weights(hf: dict[str, Any], kind: str, tensors: Tensors, spec: HeadSpec) -> Tensors:
    """Our head's parameters (``head.*``) from the checkpoint's tensors, base prefix already stripped."""
    out: Tensors = {}
    model_type = hf["model_type"]
    if kind == "sparse":
        dense, norm, decoder, bias = _SPARSE_NAMES[model_type]
        _linear(out, "head.dense", tensors, dense)
        _linear(out, "head.norm", tensors, norm)
        # the decoder is usually tied to the token embedding, and saved once under the embedding's name
        weight = tensors.get(f"{decoder}.weight")
        out["head.out.weight"] = weight if weight is not None else _take(tensors, _embedding_name(model_type))
        out["head.out.bias"] = tensors[bias] if bias in tensors else _take(tensors, f"{decoder}.bias")
        return out
    dense, last = _CLASSIFY_NAMES[model_type]
    _linear(out, "head.dense", tensors, dense, spec.bias)
    if spec.norm:
        _linear(out, "head.norm", tensors, "head.norm", spec.norm_bias)
    _linear(out, "head.out", tensors, last)
    return out


def _embedding_name(model_type: str) -> str:
    return "embeddings.tok_embeddings.weight" if model_type == "modernbert" else "embeddings.word_embeddings.weight"


def task_from_hf(hf: dict[str, Any], kind: str) -> TaskConfig:
    """The bundle's task record: labels in id order and how scores are turned into probabilities."""
    if kind == "sparse":
        return TaskConfig(kind="sparse")
    n = int(hf.get("num_labels") or len(hf.get("id2label") or {}) or 2)
    id2label = {int(k): str(v) for k, v in (hf.get("id2label") or {}).items()}
    labels = tuple(id2label.get(i, f"LABEL_{i}") for i in range(n))
    problem = hf.get("problem_type")
    # transformers' and sentence-transformers' rules: one label is a score (a cross-encoder: sigmoid), several
    # are exclusive classes (softmax) unless the config says multi-label (sigmoid each)
    activation = "sigmoid" if n == 1 or problem == "multi_label_classification" else "softmax"
    if problem == "regression" and n > 1:
        activation = "none"
    return TaskConfig(kind="classify", labels=labels, activation=activation)
