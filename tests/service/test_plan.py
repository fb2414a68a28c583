"""The start-up plan on its own: graphs, workers, threads and the lone-batch session for CPU and CUDA hosts."""

from __future__ import annotations

import pytest

from bundle import BundleError
from service.plan import CPU, CUDA, OPENVINO, Plan, make_plan
from service.settings import Settings

ALL = {"default", "attentions", "optimized", "packed"}


def plan(provider: str, cores: int, graphs: set[str] = ALL, **settings: object) -> Plan:
    return make_plan(Settings(**settings), provider, cores, graphs)


@pytest.mark.parametrize(("provider", "cores", "graphs", "settings", "want"), [
    # a 2-core CPU: 2 workers x 1 thread, packed batches, a lone batch on both cores
    (CPU, 2, ALL, {}, Plan(CPU, 2, 1, "optimized", "packed", 2, 1.5, 16)),
    # 8 cores: 2 workers x 4 threads, a lone batch on 8
    (CPU, 8, ALL, {}, Plan(CPU, 2, 4, "optimized", "packed", 8, 1.5, 16)),
    # one core: one worker on it, nothing to gain from a lone session
    (CPU, 1, ALL, {}, Plan(CPU, 1, 1, "optimized", "packed", 0, 1.5, 16)),
    # an older bundle without packed or optimized graphs: padded batches, the padded limit
    (CPU, 2, {"default", "attentions"}, {}, Plan(CPU, 2, 1, "default", "default", 2, 1.1, 16)),
    # CUDA: one worker, no packed graph unless asked for, no lone session; looser padding and a wider window
    (CUDA, 16, ALL, {}, Plan(CUDA, 1, 16, "optimized", "optimized", 0, 1.5, 64)),
    (CUDA, 16, ALL, {"graph": "packed"}, Plan(CUDA, 1, 16, "optimized", "packed", 0, 1.5, 64)),
    (CUDA, 16, ALL, {"cuda_padding_ratio": 1.2, "cuda_batch_window": 32},
     Plan(CUDA, 1, 16, "optimized", "optimized", 0, 1.2, 32)),
    (CUDA, 16, ALL, {"batch_window": 128, "max_padding_ratio": 2.0},
     Plan(CUDA, 1, 16, "optimized", "optimized", 0, 2.0, 128)),
    # settings win: explicit workers and threads, no lone session, the plain default graph
    (CPU, 8, ALL, {"inference_workers": 4, "intra_op_threads": 1}, Plan(CPU, 4, 1, "optimized", "packed", 8, 1.5, 16)),
    (CPU, 2, ALL, {"lone_batch_all_cores": False}, Plan(CPU, 2, 1, "optimized", "packed", 0, 1.5, 16)),
    (CPU, 2, ALL, {"graph": "default"}, Plan(CPU, 2, 1, "default", "default", 2, 1.1, 16)),
    (CPU, 2, ALL, {"graph": "optimized"}, Plan(CPU, 2, 1, "optimized", "optimized", 2, 1.1, 16)),
    # OpenVINO: ONNX Runtime's optimized graph is not its own; fp32 batches on the packed graph as on ONNX Runtime,
    # single sequences too (as fast there), where a lone-batch session runs the padded graph
    (OPENVINO, 2, ALL, {}, Plan(OPENVINO, 2, 1, "default", "packed", 2, 1.5, 16, True)),
    (OPENVINO, 2, ALL, {"lone_batch_all_cores": False}, Plan(OPENVINO, 2, 1, "default", "packed", 0, 1.5, 16)),
    (OPENVINO, 2, ALL, {"graph": "default"}, Plan(OPENVINO, 2, 1, "default", "default", 2, 1.1, 16)),
    (OPENVINO, 2, {"default", "attentions"}, {}, Plan(OPENVINO, 2, 1, "default", "default", 2, 1.1, 16)),
    # bf16 (on OpenVINO only): looser padding and a wider window, never tighter than what was asked for
    (OPENVINO, 2, ALL, {"precision": "bf16"}, Plan(OPENVINO, 2, 1, "default", "packed", 2, 1.5, 64, True)),
    (OPENVINO, 2, ALL, {"precision": "bf16", "graph": "default"},
     Plan(OPENVINO, 2, 1, "default", "default", 2, 1.5, 64)),
    (OPENVINO, 2, ALL, {"precision": "bf16", "graph": "packed"},
     Plan(OPENVINO, 2, 1, "default", "packed", 2, 1.5, 64, True)),
    (OPENVINO, 2, ALL, {"precision": "bf16", "bf16_padding_ratio": 1.2, "bf16_batch_window": 32},
     Plan(OPENVINO, 2, 1, "default", "packed", 2, 1.5, 32, True)),
    (OPENVINO, 2, ALL, {"precision": "bf16", "graph": "default", "bf16_padding_ratio": 1.2},
     Plan(OPENVINO, 2, 1, "default", "default", 2, 1.2, 64)),
    (OPENVINO, 2, ALL, {"precision": "bf16", "batch_window": 128, "packed_padding_ratio": 2.0},
     Plan(OPENVINO, 2, 1, "default", "packed", 2, 2.0, 128, True)),
    (OPENVINO, 2, ALL, {"batch_window": 8}, Plan(OPENVINO, 2, 1, "default", "packed", 2, 1.5, 8, True)),
    # fp16 on CUDA: the fp16 graph for every call but attentions, padded batches, CUDA's padding and window
    (CUDA, 16, ALL | {"fp16"}, {"precision": "fp16"}, Plan(CUDA, 1, 16, "fp16", "fp16", 0, 1.5, 64)),
    (CUDA, 16, ALL | {"fp16"}, {"precision": "fp16", "graph": "packed"}, Plan(CUDA, 1, 16, "fp16", "fp16", 0, 1.5, 64)),
], ids=["cpu-2", "cpu-8", "cpu-1", "cpu-old-bundle", "cuda", "cuda-packed", "cuda-settings", "cuda-wider",
        "cpu-explicit", "cpu-no-lone",
        "cpu-default-graph", "cpu-optimized-graph", "openvino-2", "openvino-no-lone", "openvino-default",
        "openvino-old-bundle", "openvino-bf16", "openvino-bf16-padded", "openvino-bf16-packed",
        "openvino-bf16-settings",
        "openvino-bf16-padded-settings", "openvino-bf16-wider",
        "openvino-fp32-window", "cuda-fp16", "cuda-fp16-packed"])
def test_plan(provider: str, cores: int, graphs: set[str], settings: dict, want: Plan) -> None:
    assert plan(provider, cores, graphs, **settings) == want


@pytest.mark.parametrize("graph", ["optimized", "packed"])
def test_a_missing_graph_that_was_asked_for_is_refused(graph: str) -> None:
    with pytest.raises(BundleError, match=f"ATTNSERVE_GRAPH={graph} but the bundle has no {graph} graph"):
        plan(CPU, 2, {"default", "attentions"}, graph=graph)


def test_io_binding_only_on_cuda() -> None:
    assert plan(CUDA, 4).io_binding and not plan(CPU, 4).io_binding
