"""One decision, made once at start-up and tested on its own: which graphs run what, on how many workers and
threads, from the provider, the cores, the bundle's graphs and the settings."""

from __future__ import annotations

from dataclasses import dataclass, replace

from bundle import BundleError

from .settings import Settings

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
OPENVINO = "OpenVINO CPU"  # the OpenVINO engine (service/openvino_session.py), planned as a CPU


@dataclass(frozen=True)
class Plan:
    provider: str
    workers: int  # threads that each run one batch at a time on the shared sessions
    threads: int  # ONNX Runtime threads inside one call of a worker's batch
    default_graph: str  # "optimized" or "default": single sequences and lone batches
    batch_graph: str  # the workers' batches: "packed" on a CPU when the bundle has it, else default_graph
    lone_threads: int  # threads of the session for a batch that runs alone; 0: no such session
    padding_ratio: float  # the batcher's padding limit for batch_graph
    window: int  # the batcher's window: how many of the oldest waiting sequences may join a batch
    singles_packed: bool = False  # a worker's single sequence on the packed graph too; default_graph for lone batches

    @property
    def io_binding(self) -> bool:
        return self.provider == CUDA


def make_plan(settings: Settings, provider: str, cores: int, graphs: set[str]) -> Plan:
    """``graphs``: the kinds the bundle has. Raises BundleError for a graph that was asked for and is missing."""
    for kind in ("optimized", "packed"):
        if settings.graph == kind and kind not in graphs:
            hint = "without --no-optimize" if kind == "optimized" else "again with this version of attnserve"
            raise BundleError(f"ATTNSERVE_GRAPH={kind} but the bundle has no {kind} graph; export it {hint} or set "
                              "ATTNSERVE_GRAPH=auto")
    if provider == OPENVINO and settings.graph == "optimized":
        raise BundleError("ATTNSERVE_GRAPH=optimized is ONNX Runtime's own graph (its fused operators); OpenVINO "
                          "runs the default or packed graph: set ATTNSERVE_GRAPH=auto")
    # 2 workers x 1 thread on a CPU: 1.2x the throughput of one call on all cores at 64 clients (README)
    workers = settings.inference_workers or (1 if provider == CUDA else min(2, cores))
    threads = settings.intra_op_threads or max(1, cores // workers)
    default = "optimized" if settings.graph == "optimized" or (
        settings.graph != "default" and "optimized" in graphs and provider != OPENVINO) else "default"
    # Batches without attention run on the packed graph on a CPU (no work on padding outside attention: ~1.2x the
    # padded graph's throughput at 64 clients; OpenVINO fp32 +9%, bf16 on AMX +8% in process); on CUDA only when
    # asked for, unmeasured there (docs/performance.md).
    measured_faster = provider in (CPU, OPENVINO)
    packed = settings.graph == "packed" or (settings.graph == "auto" and measured_faster and "packed" in graphs)
    # A batch that runs alone (light load) gets every core: one MiniLM sentence takes ~8 ms on one thread and
    # ~4.5 ms on two.
    lone = settings.lone_batch_all_cores and provider in (CPU, OPENVINO) and workers > 1 and threads < cores
    plan = Plan(
        provider=provider, workers=workers, threads=threads, default_graph=default,
        batch_graph="packed" if packed else default, lone_threads=cores if lone else 0,
        padding_ratio=settings.packed_padding_ratio if packed else settings.max_padding_ratio,
        window=settings.batch_window,
        # OpenVINO runs one sequence as fast packed as padded (one thread: 10.0 against 9.6-10.0 ms; ONNX Runtime's
        # packed graph is ~10% slower), so its padded graph is compiled once, for lone batches (MiniLM: -88 MB)
        singles_packed=provider == OPENVINO and packed and lone,
    )
    if provider == CUDA and settings.precision == "fp16":  # the bundle's fp16 graph for every call but attentions
        plan = replace(plan, default_graph="fp16", batch_graph="fp16", padding_ratio=settings.max_padding_ratio)
    # Looser padding and a wider window where a larger batch is worth more than its padding, never tighter than
    # what was asked for. bf16 (in process on AMX: batch 8 ran 2x batch 1, fp32 1.15x; +18% at 64 clients). A
    # GPU, which pads almost for free and costs ~1 ms a call however small (on an H100 fp32's limits, 1.1 and 16,
    # made batches of 3.6 and the service reached 16% of the in-process ceiling; 1.5 and 64 gave 2.0x at 16
    # clients x 8 sentences, +11% at 64 clients, p99 no worse). docs/performance.md
    wider = ((settings.bf16_padding_ratio, settings.bf16_batch_window)
             if provider == OPENVINO and settings.precision == "bf16"
             else (settings.cuda_padding_ratio, settings.cuda_batch_window) if provider == CUDA else None)
    if wider is not None:
        plan = replace(plan, padding_ratio=max(plan.padding_ratio, wider[0]), window=max(plan.window, wider[1]))
    return plan
