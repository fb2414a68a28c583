"""OpenVINO as one more implementation of the runtime's sessions: the bundle's own ONNX graphs compiled by
OpenVINO's CPU plugin, behind the small part of ONNX Runtime's session API that the runtime uses (run,
get_inputs, get_outputs, get_providers). Batching, packing, warm-up and readiness stay the runtime's.

Precision is asked for explicitly, f32 or bf16: on a CPU with AMX, OpenVINO computes in bf16 unless told
otherwise, and on a CPU without native bf16 it compiles a bf16 hint to f32 without a word (checked below)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bundle import Bundle, BundleError

OPENVINO = "OpenVINO CPU"
_HINTS = {"fp32": "f32", "bf16": "bf16"}


def openvino_core() -> Any:
    try:
        import openvino
    except ImportError:
        raise BundleError("ATTNSERVE_ENGINE=openvino (or ATTNSERVE_PRECISION=bf16) needs the openvino package: "
                          "pip install 'attnserve[openvino]'") from None
    return openvino.Core()


def _types() -> Any:
    import openvino

    return openvino.Type


def native_bf16() -> tuple[bool, str]:
    """Whether this CPU computes bf16 itself (AMX or AVX512-BF16), as OpenVINO's CPU plugin reports it."""
    try:
        core = openvino_core()
    except BundleError as exc:  # no openvino, no bf16: the reason says what to install
        return False, str(exc)
    capabilities = [str(c) for c in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")]
    return "BF16" in capabilities, f"OpenVINO's CPU capabilities are {', '.join(capabilities)}"


@dataclass(frozen=True)
class _Arg:
    """What check_graph_io reads of an ONNX Runtime NodeArg."""

    name: str
    shape: list[int | str]


def _args(ports: Any) -> list[_Arg]:
    return [_Arg(p.get_any_name(), [d.get_length() if d.is_static else "?" for d in p.get_partial_shape()])
            for p in ports]


class OpenVinoGraphs:
    """The bundle's graphs as OpenVINO reads them, each file once. A compiled model keeps the weights of the
    model it was compiled from (MiniLM: 43 MB besides the shared token table, per read), so every session of one
    graph (the batch workers', the lone batch's, the start-up fidelity check's f32 one) compiles the same read.
    The default graph is the attentions graph less its attentions output wherever the two compute attention
    alike (no query blocks): OpenVINO compiles the same kernels from both (identical outputs, tested), and one
    read serves both. ``batch_attention``: how the batch workers' sessions compile attention (the setting
    openvino_batch_attention); other sessions keep the fused subgraph."""

    def __init__(self, bundle: Bundle, batch_attention: str = "fused") -> None:
        self.bundle = bundle
        self.batch_attention = batch_attention
        self._core = openvino_core()
        self._models: dict[str, Any] = {}

    def _read_as(self, kind: str) -> str:
        """The graph whose file ``kind`` comes from: "attentions" for the default graph where the two compute
        attention alike (no query blocks) and the attentions graph has the default's outputs, else ``kind``."""
        graphs = self.bundle.config["graphs"]
        if kind != "default" or self.bundle.query_chunks != 1 or "attentions" not in graphs:
            return kind
        names = {o["name"] for o in graphs[kind]["outputs"]}
        return "attentions" if names <= {o["name"] for o in graphs["attentions"]["outputs"]} else kind

    def model(self, kind: str) -> Any:
        if kind not in self._models:
            source = self._read_as(kind)
            if source == kind:
                self._models[kind] = self._core.read_model(str(self.source(kind)))
            else:  # the source's model less the outputs this graph does not have
                import openvino

                full = self.model(source)
                ports = {o.get_any_name(): o for o in full.outputs}
                wanted = [ports[o["name"]] for o in self.bundle.config["graphs"][kind]["outputs"]]
                self._models[kind] = openvino.Model(wanted, full.get_parameters(), kind)
        return self._models[kind]

    def token_rows(self, kind: str) -> int | None:
        """Rows of the token embedding table that ``input_ids`` index in this graph (None where no Gather takes
        them directly). OpenVINO's Gather gives zeros for an index past its table instead of failing, so a call
        cannot tell a table smaller than config.json's vocab_size; its shape can."""
        for parameter in self.model(kind).get_parameters():
            if "input_ids" not in parameter.output(0).get_names():
                continue
            for target in parameter.output(0).get_target_inputs():
                node = target.get_node()
                if node.get_type_name() != "Gather" or target.get_index() != 1:
                    continue
                shape = node.input(0).get_partial_shape()  # the table: (rows, d_model)
                if shape.rank.is_static and shape[0].is_static:
                    return shape[0].get_length()
        return None

    def source(self, kind: str) -> Path:
        """The file the ``kind`` graph is read from: what its numbers depend on (a fidelity record's key)."""
        file = self.bundle.graph_file(self._read_as(kind))
        assert file is not None  # the bundle's config names every graph's file
        return file

    def session(self, kind: str, threads: int, precision: str, streams: int = 1,
                worker: bool = False) -> OpenVinoSession:
        """``worker``: a session the batch workers run batches without attentions on."""
        # The attentions graph's buffers grow with length^2 x layers x heads: what a long attention batch took
        # goes back after it (as ONNX Runtime's attention session runs without its arena)
        fused = not worker or kind == "attentions" or self.batch_attention == "fused"
        return OpenVinoSession(self._core, self.model(kind), kind, threads, precision, streams,
                               keep_memory=kind != "attentions", fused_attention=fused)


class OpenVinoSession:
    """One compiled graph; each inference thread gets its own infer request (a request is not thread-safe)."""

    def __init__(self, core: Any, model: Any, name: str, threads: int, precision: str, streams: int = 1,
                 keep_memory: bool = True, fused_attention: bool = True) -> None:
        """``streams`` requests run at once, each on ``threads`` threads: OpenVINO queues the requests of a
        compiled model onto its streams, so concurrent inference workers need one stream each (with one stream,
        two workers of one thread ran one at a time: 48% of the in-process ceiling at 64 clients).
        ``keep_memory``: the compiled model keeps its intermediate buffers, sized by the largest input it has
        run (MiniLM's attentions graph: +140 MB after one 256-token sequence); False: each call gets a new infer
        request, and the last call in flight releases the buffers (``release_memory``, which must not overlap a
        call: the lock keeps calls from starting during it).
        ``fused_attention``: False compiles attention as separate MatMul and Softmax kernels (``SNIPPETS_MODE:
        DISABLE``) instead of the CPU plugin's fused attention subgraph. On AMX in bf16 that was faster for
        batches (the separate matmuls run on AMX, the subgraph on AVX-512): +4-5% through the service; the fused
        subgraph stays faster for one sequence on all cores (docs/performance.md, ninth and tenth sessions)."""
        config = {"INFERENCE_PRECISION_HINT": _HINTS[precision], "INFERENCE_NUM_THREADS": threads * streams,
                  "NUM_STREAMS": streams}
        if not fused_attention:
            config["SNIPPETS_MODE"] = "DISABLE"
        self.compiled = core.compile_model(model, "CPU", config)
        runs = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        if runs != getattr(_types(), _HINTS[precision]):
            raise BundleError(f"OpenVINO compiled the {name} graph to {runs.get_type_name()}, not the "
                              f"{_HINTS[precision]} asked for (ATTNSERVE_PRECISION)")
        self._outputs = list(self.compiled.outputs)
        self._local = threading.local()
        self._keep_memory = keep_memory
        self._lock, self._running = threading.Lock(), 0

    def run(self, names: list[str] | None, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        if self._keep_memory:
            request = getattr(self._local, "request", None)
            if request is None:
                request = self._local.request = self.compiled.create_infer_request()
            return self._infer(request, feeds)
        with self._lock:
            self._running += 1
        try:
            return self._infer(self.compiled.create_infer_request(), feeds)
        finally:
            with self._lock:
                self._running -= 1
                if self._running == 0:
                    self.compiled.release_memory()

    def _infer(self, request: Any, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        result = request.infer(feeds)
        # the arrays are views of the request's tensors, which its next call overwrites
        return [np.array(result[port], copy=True) for port in self._outputs]

    def get_inputs(self) -> list[_Arg]:
        return _args(self.compiled.inputs)

    def get_outputs(self) -> list[_Arg]:
        return _args(self._outputs)

    def get_providers(self) -> list[str]:
        return [OPENVINO]
