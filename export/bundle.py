"""Write a model bundle: ONNX graphs + config.json + tokenizer.json, with checksums and parity figures."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import onnx
from tokenizers import Tokenizer

from bundle import FORMAT, FORMAT_VERSION, BundleError, EncoderConfig, sha256
from models import Encoder
from models.heads import TaskModel

from .half import HALF_PARITY_LIMIT, half_graph
from .onnx_graph import (
    ATTENTION_OUTPUT,
    INPUT_NAMES,
    export_fusable_graph,
    export_graph,
    export_packed_graph,
    output_names,
    query_chunks,
    query_chunks_for,
    without_attentions,
)
from .optimize import optimize_graph
from .parity import (
    PARITY_LIMIT,
    Case,
    ParityError,
    check_graph,
    check_packed_graph,
    encoder_reference,
    parity_cases,
)
from .shared_weights import share_embeddings
from .task_graphs import (
    check_task_graph,
    export_fusable_task_graph,
    export_task_graph,
    task_input_names,
    task_output_names,
    task_reference,
)
from .tokenizer_files import special_tokens

GRAPH_FILES = {"default": "model.onnx", "attentions": "model_attentions.onnx", "optimized": "model_optimized.onnx",
               "packed": "model_packed.onnx", "fp16": "model_fp16.onnx"}

# the graphs' entries for config.json, their parity figures and the shared tables' record
Graphs = tuple[dict[str, dict[str, Any]], dict[str, dict[str, float]], dict[str, Any]]


@dataclass
class BundleSpec:
    name: str
    version: str
    max_length: int
    pooling: str
    normalize: bool
    tokenizer: Tokenizer | None = None
    source: dict[str, Any] = field(default_factory=dict)
    prompts: dict[str, str] = field(default_factory=dict)
    default_prompt_name: str | None = None
    matryoshka_dimensions: list[int] = field(default_factory=list)
    optimize: bool = True


def _graph_io(path: Path) -> dict[str, list[dict[str, Any]]]:
    """Names, element types and shapes (dynamic axes by name) as the graph declares them."""
    graph = onnx.load(str(path), load_external_data=False).graph

    def describe(values: Any) -> list[dict[str, Any]]:
        out = []
        for v in values:
            t = v.type.tensor_type
            dims = [d.dim_param or d.dim_value for d in t.shape.dim]
            out.append({"name": v.name, "dtype": onnx.TensorProto.DataType.Name(t.elem_type).lower(), "shape": dims})
        return out

    return {"inputs": describe(graph.input), "outputs": describe(graph.output)}


def _versions() -> dict[str, str]:
    out = {}
    for dist in ("attnserve", "torch", "onnx", "onnxruntime-gpu", "onnxruntime", "onnxscript", "tokenizers"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def _prepare_output(output: Path) -> None:
    try:
        output.mkdir(parents=True, exist_ok=True)
        probe = output / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise BundleError(f"cannot write to {output}: {exc.strerror or exc}") from None


def _embedding_graphs(encoder: Encoder, output: Path, spec: BundleSpec,
                      cases: list[Case]) -> Graphs:
    """The embedding graphs (padded, attentions, packed, optimized) and their parity figures."""
    cfg = encoder.config
    graphs: dict[str, dict[str, Any]] = {}
    chunks = query_chunks_for(spec.max_length)
    default, attentions = output / GRAPH_FILES["default"], output / GRAPH_FILES["attentions"]
    with query_chunks(encoder, 1):
        export_graph(encoder, attentions, True, spec.max_length)
    if chunks == 1:  # the same attention as the attentions graph: cut from its trace
        without_attentions(attentions, default)
    else:
        with query_chunks(encoder, chunks):
            export_graph(encoder, default, False, spec.max_length)
    graphs["default"] = {"file": default.name, "attentions": False, "query_chunks": chunks}
    graphs["attentions"] = {"file": attentions.name, "attentions": True, "query_chunks": 1}
    path = output / GRAPH_FILES["packed"]
    with query_chunks(encoder, chunks):
        export_packed_graph(encoder, path, spec.max_length)
    graphs["packed"] = {"file": path.name, "attentions": False, "packed": True, "query_chunks": chunks}
    if spec.optimize:
        graphs["optimized"] = _optimized(output, lambda fusable: export_fusable_graph(encoder, fusable), cfg)
    half_graph(output / GRAPH_FILES["default"], output / GRAPH_FILES["fp16"])
    graphs["fp16"] = {**graphs["default"], "file": GRAPH_FILES["fp16"], "precision": "fp16"}
    shared = share_embeddings([output / g["file"] for g in graphs.values()], output)

    # parity of the files as shipped (after the shared tables moved out)
    parity: dict[str, Any] = {}
    reference = encoder_reference(encoder)
    try:  # the fp16 graph is an extra: one that strays too far is left out, saying why, not the whole export
        with query_chunks(encoder, chunks):
            parity["fp16"] = check_graph(reference, output / graphs["fp16"]["file"], False, cases, HALF_PARITY_LIMIT)
    except ParityError as exc:
        (output / graphs.pop("fp16")["file"]).unlink()
        parity["fp16_left_out"] = str(exc)
    for kind, graph in graphs.items():
        if kind == "fp16":
            continue
        path = output / graph["file"]
        # the reference computes in the graph's blocks too (row for row the same numbers), so a long-context
        # check holds no more scores in PyTorch than in ONNX Runtime
        with query_chunks(encoder, graph.get("query_chunks", 1)):
            if graph.get("packed"):
                parity[kind] = check_packed_graph(reference, path, cases)
            else:
                parity[kind] = check_graph(reference, path, graph["attentions"], cases)
    return graphs, parity, shared


def _optimized(output: Path, export_fusable: Callable[[Path], None], cfg: EncoderConfig) -> dict[str, Any]:
    path = output / GRAPH_FILES["optimized"]
    fusable = output / "model_fusable.onnx"  # the optimizer's input only; not part of the bundle
    try:
        export_fusable(fusable)
        fusions = optimize_graph(fusable, path, cfg.n_heads, cfg.d_model)
    finally:
        fusable.unlink(missing_ok=True)
    return {"file": path.name, "attentions": False, "fusions": fusions}


def _task_graphs(model: TaskModel, output: Path, spec: BundleSpec,
                 cases: list[Case]) -> Graphs:
    """A task bundle's graphs: padded (and optimized), and one with attentions; no packed graph (the head
    reads padded rows)."""
    if spec.max_length > 2048:
        raise BundleError(f"task bundles serve up to 2048 tokens; this one would serve {spec.max_length}")
    graphs: dict[str, dict[str, Any]] = {}
    default, attentions = output / GRAPH_FILES["default"], output / GRAPH_FILES["attentions"]
    export_task_graph(model, attentions, True, spec.max_length)
    without_attentions(attentions, default)
    graphs["default"] = {"file": default.name, "attentions": False}
    graphs["attentions"] = {"file": attentions.name, "attentions": True}
    if spec.optimize:
        graphs["optimized"] = _optimized(output, lambda fusable: export_fusable_task_graph(model, fusable),
                                         model.encoder.config)
    shared = share_embeddings([output / g["file"] for g in graphs.values()], output)
    reference = task_reference(model)
    parity = {kind: check_task_graph(reference, output / g["file"], g["attentions"], cases)
              for kind, g in graphs.items()}
    return graphs, parity, shared


def write_bundle(encoder: Encoder, output: Path, spec: BundleSpec,
                 task_model: TaskModel | None = None) -> dict[str, Any]:
    """Export, parity-check and describe; returns the config.json written. With ``task_model`` (the encoder with a
    classification or SPLADE head) the graphs compute the task's scores instead of vectors."""
    output = Path(output)
    _prepare_output(output)
    encoder.eval()
    cfg = encoder.config
    if spec.default_prompt_name is not None and spec.default_prompt_name not in spec.prompts:
        known = ", ".join(sorted(spec.prompts)) or "none"
        raise BundleError(f"default prompt {spec.default_prompt_name!r} is not one of the model's prompts ({known})")
    bad = [d for d in spec.matryoshka_dimensions if not 1 <= d < cfg.d_model]
    if bad:
        raise BundleError(f"Matryoshka dimensions {bad} are not between 1 and the model's {cfg.d_model} - 1")
    if spec.max_length > cfg.max_positions:
        raise BundleError(f"max_length {spec.max_length} exceeds the {cfg.max_positions} positions the model covers")

    cases = parity_cases(cfg.vocab_size, spec.max_length, cfg.pad_token_id, spec.tokenizer)
    if task_model is None:
        graphs, parity, shared = _embedding_graphs(encoder, output, spec, cases)
        inputs, outputs = list(INPUT_NAMES), output_names(False)
    else:
        graphs, parity, shared = _task_graphs(task_model, output, spec, cases)
        inputs, outputs = task_input_names(task_model), task_output_names(task_model, False)

    half_left_out = parity.pop("fp16_left_out", None)
    tokenizer_file = None
    if spec.tokenizer is not None:
        tokenizer_file = "tokenizer.json"
        spec.tokenizer.save(str(output / tokenizer_file))
    else:
        (output / "tokenizer.json").unlink(missing_ok=True)

    for graph in graphs.values():
        graph.update(_graph_io(output / graph["file"]))
    for kind, file in GRAPH_FILES.items():  # a stale graph of an earlier export into this folder
        if kind not in graphs:
            (output / file).unlink(missing_ok=True)
    files = {p.name: sha256(p) for p in sorted(output.iterdir()) if p.is_file() and p.name != "config.json"}
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": spec.name,
        "version": spec.version,
        "architecture": cfg.to_dict(),
        "serving": {
            "max_length": spec.max_length,
            "pooling": spec.pooling,
            "normalize": spec.normalize,
            "dimensions": cfg.d_model,
            "n_layers": cfg.n_layers,
            "n_heads": cfg.n_heads,
            "vocab_size": cfg.vocab_size,
            "pad_token_id": cfg.pad_token_id,
            "special_tokens": special_tokens(spec.tokenizer) if spec.tokenizer else {},
            "tokenizer": tokenizer_file,
            "prompts": spec.prompts,
            "default_prompt_name": spec.default_prompt_name,
            "matryoshka_dimensions": sorted(set(spec.matryoshka_dimensions), reverse=True),
            "input_names": inputs,
            "output_names": outputs,
            "attention_output_names": [*outputs, ATTENTION_OUTPUT],
        },
        **({"task": task_model.task.to_dict()} if task_model is not None else {}),
        "graphs": graphs,
        "shared_initializers": shared,
        "parity": {
            "limit": PARITY_LIMIT,
            "reference": "PyTorch (CPU, fp32) vs ONNX Runtime CPUExecutionProvider",
            "cases": [c.name for c in cases],
            "max_abs_diff": parity,
            **({"fp16_left_out": half_left_out} if half_left_out else {}),
        },
        "files": files,
        "source": spec.source,
        "exported": {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "versions": _versions()},
    }
    (output / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return config
