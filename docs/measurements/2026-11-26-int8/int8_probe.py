"""int8 for MiniLM on ONNX Runtime's CPU path, measured (issue #18, item 5): each variant's worst and median
cosine of the pooled vectors over the 900 corpus sentences against fp32, and its in-process sentences/s at
batch 32 grouped by length on every core, beside fp32 on the same (default) graph, in one run.

    python docs/measurements/2026-11-26-int8/int8_probe.py build/minilm /tmp/int8

Variants: dynamic int8 (per-channel weights, activations quantized per call) on every weight MatMul; the
same without each layer's FFN output projection (the GELU output carries MiniLM's activation outliers);
only the attention projections; and int8 weights with fp32 compute (MatMulNBits, 8 bits, blocks of 32)."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import numpy as np
import onnx

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from bundle import load_bundle
from loadtest.checks import load_corpus
from service.runtime import Runtime
from service.settings import Settings
from service.tokenize import TextTokenizer


def weight_matmuls(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    shapes = {i.name: tuple(i.dims) for i in model.graph.initializer}
    return {n.name: shapes[n.input[1]] for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in shapes}


def variant(bundle: Path, out: Path, name: str, quantize) -> Path:
    folder = out / name
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(bundle, folder)
    quantize(bundle / "model.onnx", folder / "model.onnx")
    return folder


def dynamic(nodes: list[str]):
    from onnxruntime.quantization import QuantType, quantize_dynamic

    def run(src: Path, dst: Path) -> None:
        quantize_dynamic(src, dst, per_channel=True, weight_type=QuantType.QInt8, nodes_to_quantize=nodes,
                         use_external_data_format=False)
    return run


def weights_only(src: Path, dst: Path) -> None:
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    model = onnx.load(str(src))
    config = DefaultWeightOnlyQuantConfig(block_size=32, is_symmetric=True, bits=8, accuracy_level=0)
    quantizer = MatMulNBitsQuantizer(model, algo_config=config)
    quantizer.process()
    onnx.save(quantizer.model.model, str(dst))  # the shared table inline too; the runtime feeds its own copy


def measure(folder: Path, texts: list[str], budget_s: float) -> tuple[float, np.ndarray]:
    loaded = load_bundle(folder, verify_checksums=False)
    runtime = Runtime(loaded, Settings(model=folder, graph="default", inference_workers=1, warmup=False,
                                       verify_checksums=False))
    tokenizer = TextTokenizer(folder / "tokenizer.json", loaded.max_length)
    sequences = [e.ids for e in tokenizer.encode(texts, True)]
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    pooled = np.zeros((len(texts), loaded.dimensions))
    batches = [order[i: i + 32] for i in range(0, len(order), 32)]
    for batch in batches:
        for i, r in zip(batch, runtime.run([sequences[i] for i in batch], False), strict=True):
            pooled[i] = r.pooled
    done, started = 0, time.perf_counter()
    while done == 0 or time.perf_counter() - started < budget_s:
        for batch in batches:
            runtime.run([sequences[i] for i in batch], False)
            done += len(batch)
    return done / (time.perf_counter() - started), pooled


def main() -> None:
    bundle, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    model = onnx.load(str(bundle / "model.onnx"), load_external_data=False)
    weights = weight_matmuls(model)
    ffn_out = [n for n, s in weights.items() if s[0] > s[1]]
    ffn_in = [n for n, s in weights.items() if s[0] < s[1]]
    print(f"{len(weights)} weight MatMuls: {len(ffn_in)} FFN in, {len(ffn_out)} FFN out", flush=True)
    variants = {
        "int8 dynamic, all weight MatMuls": dynamic(list(weights)),
        "int8 dynamic, FFN output kept fp32": dynamic([n for n in weights if n not in ffn_out]),
        "int8 dynamic, attention projections only": dynamic([n for n in weights if n not in ffn_out + ffn_in]),
        "int8 weights only (MatMulNBits), fp32 compute": weights_only,
    }
    texts = load_corpus(paragraphs=False)
    rows = []
    fp32_speed, reference = measure(bundle, texts, 5.0)
    rows.append(("fp32 (default graph)", fp32_speed, 1.0, 1.0))
    for name, quantize in variants.items():
        try:
            folder = variant(bundle, out, name.split(",")[0].replace(" ", "-") + str(len(rows)), quantize)
            speed, got = measure(folder, texts, 5.0)
        except Exception as exc:  # a variant the tool cannot build is reported, not hidden
            print(f"{name}: failed: {type(exc).__name__}: {exc}", flush=True)
            continue
        cos = (got * reference).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(reference, axis=1))
        rows.append((name, speed, float(cos.min()), float(np.median(cos))))
        print(rows[-1], flush=True)
    fp32_again, _ = measure(bundle, texts, 5.0)
    print("\n| variant | sentences/s (batch 32) | vs fp32 | worst cos | median cos |\n| --- | --- | --- | --- | --- |")
    base = (fp32_speed + fp32_again) / 2
    for name, speed, worst, median in rows:
        speed = base if name.startswith("fp32") else speed
        print(f"| {name} | {speed:.0f} | {speed / base:.2f}x | {worst:.5f} | {median:.6f} |")
    print(f"\nfp32 measured before and after the variants: {fp32_speed:.0f} and {fp32_again:.0f} sentences/s")


if __name__ == "__main__":
    main()
