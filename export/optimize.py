"""An extra graph from onnxruntime's transformer optimizer (fused Attention, LayerNorm, GELU where matched)."""

from __future__ import annotations

from pathlib import Path

from onnxruntime.transformers import optimizer


def optimize_graph(source: Path, target: Path, n_heads: int, d_model: int) -> dict[str, int]:
    """Write the optimized graph; return the fusions that applied (operator -> count, zeros dropped)."""
    model = optimizer.optimize_model(
        str(source), model_type="bert", num_heads=n_heads, hidden_size=d_model, opt_level=0
    )
    model.save_model_to_file(str(target))
    stats = model.get_fused_operator_statistics() or {}
    return {op: int(n) for op, n in stats.items() if n}
