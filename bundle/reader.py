"""Read a model bundle's config.json and check the bundle against it (files, checksums, graph inputs/outputs)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from .checksums import sha256
from .config import EncoderConfig
from .errors import BundleError
from .format import FORMAT, FORMAT_VERSION
from .task import TaskConfig


@dataclass(frozen=True)
class Bundle:
    """A bundle as read: ``config`` is not changed after reading, so what is parsed from it per request (the
    task, the prompts) is parsed once."""

    path: Path
    config: dict[str, Any]

    @property
    def architecture(self) -> EncoderConfig:
        """The encoder's config, typed: the same dataclass the model package builds the encoder from."""
        return EncoderConfig.from_dict(self.config["architecture"])

    @cached_property
    def task(self) -> TaskConfig:
        """What the graphs compute: vectors (embed; bundles without a ``task`` entry), labels' logits
        (classify; one label: a reranker's score) or sparse vectors."""
        return TaskConfig.from_dict(self.config.get("task"))

    @property
    def name(self) -> str:
        return self.config["name"]

    @property
    def serving(self) -> dict[str, Any]:
        return self.config["serving"]

    @property
    def max_length(self) -> int:
        return int(self.serving["max_length"])

    @property
    def dimensions(self) -> int:
        return int(self.serving["dimensions"])

    @property
    def n_layers(self) -> int:
        return int(self.serving["n_layers"])

    @property
    def n_heads(self) -> int:
        return int(self.serving["n_heads"])

    @property
    def vocab_size(self) -> int:
        return int(self.serving["vocab_size"])

    @property
    def pooling(self) -> str:
        """The default pooling of the served vectors: "mean", "cls" or "last"."""
        return str(self.serving["pooling"])

    @property
    def normalize(self) -> bool:
        """Whether served vectors are L2-normalized by default."""
        return bool(self.serving["normalize"])

    @property
    def matryoshka_dimensions(self) -> list[int]:
        """Shorter vector sizes the model was trained for (Matryoshka), from the export; empty: none."""
        return [int(d) for d in self.serving.get("matryoshka_dimensions") or []]

    @property
    def query_chunks(self) -> int:
        """The blocks of queries the embedding graphs compute attention in (long-context bundles; else 1)."""
        return int(self.config["graphs"].get("default", {}).get("query_chunks", 1))

    @cached_property
    def prompts(self) -> dict[str, str]:
        """Named texts put before an input (sentence-transformers' prompts, e.g. "query" -> "query: ")."""
        return {str(k): str(v) for k, v in (self.serving.get("prompts") or {}).items()}

    @property
    def default_prompt_name(self) -> str | None:
        """The prompt texts get when a request names none (None: no prompt)."""
        name = self.serving.get("default_prompt_name")
        return None if name is None else str(name)

    @property
    def pad_token_id(self) -> int:
        return int(self.serving["pad_token_id"])

    @property
    def graph_pooling(self) -> str:
        """The pooling of the graphs' ``pooled`` output (and of the packed graph's, computed by the service)."""
        return str(self.config["architecture"].get("pooling", self.serving["pooling"]))

    def graph_file(self, kind: str) -> Path | None:
        graph = self.config["graphs"].get(kind)
        return self.path / graph["file"] if graph else None

    @property
    def shared_tensors(self) -> list[dict[str, Any]]:
        """Tables every graph reads from one external-data file (``shared_initializers`` in config.json; older
        bundles have none): name, dtype, shape, offset and length in ``shared_file``."""
        shared = self.config.get("shared_initializers") or {}
        return list(shared.get("tensors", []))

    @property
    def shared_file(self) -> Path | None:
        shared = self.config.get("shared_initializers")
        return self.path / shared["file"] if shared else None

    @property
    def tokenizer_file(self) -> Path | None:
        name = self.serving.get("tokenizer")
        return self.path / name if name else None


def load_bundle(path: Path, verify_checksums: bool = True) -> Bundle:
    path = Path(path)
    config_file = path / "config.json"
    if not config_file.is_file():
        raise BundleError(
            f"{path} is not a model bundle (no config.json); create one with "
            f"`attnserve export minilm --output {path}`"
        )
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BundleError(f"{config_file} is not valid JSON ({exc}); export the bundle again") from None
    if config.get("format") not in (None, FORMAT) or config.get("format_version") != FORMAT_VERSION:
        raise BundleError(
            f"{config_file} has format {config.get('format')!r} version {config.get('format_version')!r}; this "
            f"attnserve reads {FORMAT!r} version {FORMAT_VERSION} only: export the bundle again with this version "
            "of attnserve (or serve it with the attnserve that wrote it)"
        )
    for kind in ("default", "attentions"):
        if kind not in config.get("graphs", {}):
            raise BundleError(f"{config_file} lists no {kind!r} graph; export the bundle again")
    for name, digest in config.get("files", {}).items():
        file = _present(path / name)
        if verify_checksums and sha256(file) != digest:
            raise BundleError(
                f"{file} does not match the sha256 in config.json (a partial copy or a mixed bundle?); "
                "export the bundle again, or set ATTNSERVE_VERIFY_CHECKSUMS=false if you changed it on purpose"
            )
    try:
        TaskConfig.from_dict(config.get("task"))
    except (ValueError, TypeError, AttributeError) as exc:
        raise BundleError(f"{config_file}: task {config.get('task')!r} is not one this attnserve serves "
                          f"({exc})") from None
    bundle = Bundle(path, config)
    _check_shared(bundle)
    return bundle


def _present(file: Path) -> Path:
    if not file.is_file():
        raise BundleError(f"bundle file {file} is missing; copy the whole bundle folder or export it again")
    return file


def _check_shared(bundle: Bundle) -> None:
    """Every shared tensor must lie inside its file and have the size its dtype and shape say."""
    file = bundle.shared_file
    if file is None:
        return
    size = _present(file).stat().st_size
    for t in bundle.shared_tensors:
        try:
            expected = int(np.prod(t["shape"])) * np.dtype(t["dtype"]).itemsize
            fits = t["offset"] >= 0 and t["offset"] + t["length"] <= size and t["length"] == expected
        except (KeyError, TypeError, ValueError):
            fits = False
        if not fits:
            raise BundleError(f"config.json's shared tensor {t.get('name')!r} does not match {file.name} "
                              f"({size} bytes); export the bundle again")


def check_graph_io(bundle: Bundle, kind: str, inputs: list[Any], outputs: list[Any]) -> None:
    """Compare an ONNX Runtime session's declared inputs/outputs (NodeArg) with config.json."""
    declared = bundle.config["graphs"][kind]
    file = declared["file"]
    got_in = [i.name for i in inputs]
    got_out = [o.name for o in outputs]
    want_in = [i["name"] for i in declared["inputs"]]
    want_out = [o["name"] for o in declared["outputs"]]
    problems = []
    if got_in != want_in:
        problems.append(f"inputs are {got_in}, config.json says {want_in}")
    if got_out != want_out:
        problems.append(f"outputs are {got_out}, config.json says {want_out}")
    by_name = {o.name: o.shape for o in outputs}
    packed = bool(declared.get("packed"))  # (T, d_model) rows instead of (B, T, d_model)
    checks = {"last_hidden_state": (1 if packed else 2, bundle.dimensions), "pooled": (1, bundle.dimensions),
              "attentions": (1, bundle.n_layers)}
    for name, (axis, size) in checks.items():
        shape = by_name.get(name)
        if shape is not None and len(shape) > axis and isinstance(shape[axis], int) and shape[axis] != size:
            problems.append(f"{name} axis {axis} is {shape[axis]}, config.json says {size}")
    att = by_name.get("attentions")
    if att is not None and len(att) > 2 and isinstance(att[2], int) and att[2] != bundle.n_heads:
        problems.append(f"attentions has {att[2]} heads, config.json says {bundle.n_heads}")
    if problems:
        raise BundleError(f"{file} disagrees with config.json: " + "; ".join(problems)
                          + ". The graph and config.json come from different exports: export the bundle again")
