"""Which engine runs a bundle at which precision, decided once at start-up by documented rules, and the fidelity
of a reduced precision measured against fp32 before the service reports ready (refused below the bar)."""

from __future__ import annotations

import copy
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bundle import Bundle, BundleError, sha256
from bundle.fidelity import FILE, add_record, find_record

from .settings import Settings

if TYPE_CHECKING:  # runtime.py imports this module
    from .runtime import Runtime

log = logging.getLogger("attnserve")
_CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_int8")

INT8_REFUSAL = (
    "ATTNSERVE_PRECISION=int8 is not offered: plain int8 of MiniLM measured a worst cosine of 0.98 against fp32 "
    "(dynamic int8, per-channel weights; 0.992 with only the attention projections in int8; 0.994 calibrated, "
    "with SmoothQuant and the FFN outputs in fp32), and int8 weights with fp32 compute kept 0.9996 but ran "
    "slower than fp32: none reaches the 0.9999 bar; use fp32, or bf16 on a "
    "CPU with AMX or AVX512-BF16 (docs/performance.md)"
)
# Sentences of many kinds and lengths: the vectors a reduced precision is judged on.
FIDELITY_TEXTS = (
    "The quick brown fox jumps over the lazy dog.",
    "A man is playing a guitar on the stage.",
    "How do I reset my password?",
    "Zürich, São Paulo and 東京 are cities; naïve café façade.",
    "Attention weights show which tokens a Transformer reads together.",
    "short",
    "The committee postponed the vote until the budget figures for the next fiscal year had been audited.",
    "Numbers such as 3.14159, 2026 and 1e-9 appear in technical text.",
    "query: what is the capital of France?",
    "passage: Paris is the capital and most populous city of France.",
    "It rained all day, so the match was cancelled and the fans went home early.",
    "def add(a, b): return a + b",
)


@dataclass(frozen=True)
class PrecisionChoice:
    precision: str  # "fp32" | "bf16"
    engine: str  # "onnxruntime" | "openvino"
    reason: str
    fidelity: dict[str, Any] = field(default_factory=dict)  # measured against fp32 when not fp32


def choose_engine(settings: Settings, bundle: Bundle, cuda: bool,
                  native_bf16: Callable[[], tuple[bool, str]]) -> PrecisionChoice:
    """The rules, in order: int8 is refused (never reached the fidelity bar); fp32 runs on ONNX Runtime unless
    ATTNSERVE_ENGINE=openvino; fp16 runs the bundle's fp16 graph on ONNX Runtime, only on CUDA; bf16 runs on
    OpenVINO, only on a CPU, only for embedding bundles, and only where the CPU computes bf16 natively:
    elsewhere OpenVINO would run f32 under a bf16 label, so the service refuses to start instead of falling
    back."""
    precision, engine = settings.precision, settings.engine
    if precision == "int8":
        raise BundleError(INT8_REFUSAL)
    if precision == "fp32":
        chosen = "onnxruntime" if engine == "auto" else engine
        if chosen == "openvino" and settings.provider == "cuda":
            raise BundleError("ATTNSERVE_ENGINE=openvino runs on the CPU; it cannot go with ATTNSERVE_PROVIDER=cuda")
        return PrecisionChoice("fp32", chosen, "fp32 (exact)" + (" on OpenVINO" if chosen == "openvino" else ""))
    if precision == "fp16":
        return _fp16(settings, bundle, cuda)
    if engine == "onnxruntime":
        raise BundleError("ATTNSERVE_PRECISION=bf16 runs on OpenVINO (ONNX Runtime's CPU provider has no bf16 path "
                          "for these graphs): set ATTNSERVE_ENGINE=openvino or auto")
    if cuda or settings.provider == "cuda":
        raise BundleError("ATTNSERVE_PRECISION=bf16 is a CPU setting (OpenVINO): on CUDA use ATTNSERVE_PRECISION=fp16 "
                          "(the bundle's fp16 graph) or fp32")
    if bundle.task.kind != "embed":
        raise BundleError(f"ATTNSERVE_PRECISION=bf16 is measured for embedding models only; {bundle.name} is a "
                          f"{bundle.task.name} model: serve it in fp32")
    native, why = native_bf16()
    if not native:
        raise BundleError(f"ATTNSERVE_PRECISION=bf16 needs a CPU that computes bf16 natively (AMX or AVX512-BF16); "
                          f"this one does not ({why}): OpenVINO would run f32 under a bf16 label. Serve fp32 "
                          "(ATTNSERVE_PRECISION=fp32) on this machine")
    return PrecisionChoice("bf16", "openvino", f"bf16 on OpenVINO ({why})")


def _fp16(settings: Settings, bundle: Bundle, cuda: bool) -> PrecisionChoice:
    """fp16: the bundle's fp16 graph on ONNX Runtime's CUDA provider, for embedding bundles."""
    if settings.engine == "openvino":
        raise BundleError("ATTNSERVE_PRECISION=fp16 is the CUDA graph on ONNX Runtime; OpenVINO's reduced precision "
                          "is bf16: set ATTNSERVE_ENGINE=auto")
    if not cuda:
        raise BundleError("ATTNSERVE_PRECISION=fp16 runs the bundle's fp16 graph on CUDA, and this host runs on the "
                          "CPU (no CUDA execution provider): serve fp32, or bf16 on a CPU with AMX or AVX512-BF16")
    if bundle.task.kind != "embed":
        raise BundleError(f"ATTNSERVE_PRECISION=fp16 is built for embedding models only; {bundle.name} is a "
                          f"{bundle.task.name} model: serve it in fp32")
    if "fp16" not in bundle.config.get("graphs", {}):
        why = bundle.config.get("parity", {}).get("fp16_left_out")
        raise BundleError(f"ATTNSERVE_PRECISION=fp16 needs the bundle's fp16 graph and {bundle.name} has none: "
                          + (f"the export left it out ({why}); serve fp32" if why else
                             "export it again with this version of attnserve"))
    return PrecisionChoice("fp16", "onnxruntime", "fp16 graph on CUDA (ONNX Runtime)")


def fidelity(want: list[np.ndarray], got: list[np.ndarray]) -> dict[str, float]:
    """Cosine of each vector against the reference's: worst and median, and the largest absolute difference."""
    cosines, worst_abs = [], 0.0
    for w, g in zip(want, got, strict=True):
        w, g = np.asarray(w, dtype=np.float64).ravel(), np.asarray(g, dtype=np.float64).ravel()
        cosines.append(float(w @ g / max(np.linalg.norm(w) * np.linalg.norm(g), 1e-30)))
        worst_abs = max(worst_abs, float(np.abs(w - g).max()))
    return {"worst_cos": min(cosines), "median_cos": float(np.median(cosines)), "max_abs_diff": worst_abs,
            "sequences": len(want)}


def measure_against_fp32(runtime: Runtime, sequences: list[np.ndarray], threads: int) -> dict[str, float]:
    """The runtime's pooled vectors and attentions against fp32 on the same sequences: the same graphs compiled
    by OpenVINO in f32 (bf16), or the bundle's fp32 graph on the same provider (fp16, whose attention requests
    already run the fp32 attentions graph). Worst and median cosine of the pooled vectors (the worse of a batch run
    alone and the same batch on the workers' sessions), the largest attention difference."""
    bundle = runtime.bundle
    reference = copy.copy(runtime)
    if runtime.openvino is not None:  # the same reads of the graphs, compiled in f32
        reference.sessions = {False: runtime.openvino.session(runtime.plan.default_graph, threads, "fp32"),
                              True: runtime.openvino.session("attentions", threads, "fp32")}
    else:
        import onnxruntime as ort

        full = bundle.graph_file("optimized" if "optimized" in bundle.config["graphs"] else "default")
        reference.sessions = {False: ort.InferenceSession(str(full), providers=runtime.sessions[False].get_providers()),
                              True: runtime.sessions[True]}
    reference.packed_session = reference.lone_session = None
    want = [r.pooled for r in reference.run(sequences, False, alone=True)]
    # both ways a request is computed: a batch alone (the all-cores session) and the workers' batches (the packed
    # graph, with other kernels): the worse of the two
    alone, batched = (fidelity(want, [r.pooled for r in runtime.run(sequences, False, alone=a)])
                      for a in (True, False))
    figures = {"worst_cos": min(alone["worst_cos"], batched["worst_cos"]),
               "median_cos": min(alone["median_cos"], batched["median_cos"]),
               "max_abs_diff": max(alone["max_abs_diff"], batched["max_abs_diff"]), "sequences": len(want)}
    want_att, got_att = reference.run(sequences[:4], True), runtime.run(sequences[:4], True)
    figures["max_attention_error"] = max(float(np.abs(w.attentions - g.attentions).max())
                                         for w, g in zip(want_att, got_att, strict=True))
    return figures


def device_description(precision: str) -> str:
    """What computes a reduced precision, part of a record's key: the GPU for fp16 (its model, as the NVIDIA
    driver lists it), else the CPU."""
    if precision != "fp16":
        return cpu_description()
    models = sorted(m.group(1).strip() for f in Path("/proc/driver/nvidia/gpus").glob("*/information")
                    if (m := re.search(r"^Model:\s*(.+)$", f.read_text(), re.M)))
    return "CUDA: " + (", ".join(models) or "device not named by the driver")


def cpu_info() -> tuple[str, set[str]]:
    """The CPU's model name and flags, as /proc/cpuinfo gives them (the one place they are read)."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    flags = re.search(r"^flags\s*:\s*(.+)$", text, re.M)
    return (model.group(1) if model else "unknown CPU"), set(flags.group(1).split()) if flags else set()


def cpu_description() -> str:
    """The CPU's model name and the flags that decide reduced-precision arithmetic: part of a record's key."""
    model, present = cpu_info()
    return f"{model} ({' '.join(f for f in _CPU_FLAGS if f in present)})"


def _engine_version(engine: str) -> str:
    if engine == "openvino":
        import openvino

        return f"openvino {openvino.__version__}"
    import onnxruntime

    return f"onnxruntime {onnxruntime.__version__}"


def recorded_fidelity(runtime: Runtime, sequences: list[np.ndarray], threads: int) -> dict[str, Any]:
    """The fidelity of the runtime's precision: read back from the bundle's fidelity.json when this precision,
    engine version, device and graphs (the files the served vectors come from, alone and in batches, and how
    OpenVINO compiles the batches' attention) were measured before; else measured now and recorded there (a
    read-only bundle folder is measured at every start instead)."""
    def digest(kind: str) -> str:
        graph = runtime.openvino.source(kind) if runtime.openvino is not None else runtime.bundle.graph_file(kind)
        assert graph is not None  # the plan names only graphs the bundle has
        return runtime.bundle.config.get("files", {}).get(graph.name) or sha256(graph)

    key = {"precision": runtime.choice.precision, "engine": runtime.choice.engine,
           "engine_version": _engine_version(runtime.choice.engine),
           "device": device_description(runtime.choice.precision),
           "graph_sha256": digest(runtime.plan.default_graph), "batch_graph_sha256": digest(runtime.plan.batch_graph)}
    if runtime.openvino is not None:  # its compile options change the numbers too
        key["batch_attention"] = runtime.openvino.batch_attention
    found = find_record(runtime.bundle.path, key)
    if found is not None:
        return {**found, "source": f"recorded in {FILE} (measured {found.get('measured_at', '?')})"}
    record = {**key, **measure_against_fp32(runtime, sequences, threads),
              "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    try:
        add_record(runtime.bundle.path, record)
        source = f"measured at this start, recorded in {FILE}"
    except OSError as exc:
        source = "measured at this start (the bundle folder is read-only: measured at every start)"
        log.info("fidelity not recorded in %s: %s", runtime.bundle.path / FILE, exc)
    return {**record, "source": source}


def check_fidelity(precision: str, figures: dict[str, float], bar: float) -> None:
    """Refuse a precision whose measured worst cosine is below ATTNSERVE_MIN_FIDELITY_COS."""
    if figures["worst_cos"] < bar:
        raise BundleError(f"ATTNSERVE_PRECISION={precision}: its worst cosine against fp32 over "
                          f"{figures['sequences']} sentences is {figures['worst_cos']:.6f}, below the bar "
                          f"{bar} (ATTNSERVE_MIN_FIDELITY_COS); serve fp32, or lower the bar knowingly")
