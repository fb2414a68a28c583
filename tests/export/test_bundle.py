"""Bundles: files, checksums, graph IO, recorded parity, and the graphs run directly against PyTorch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from export.bundle import sha256
from models import EncoderConfig, tiny_encoder
from models.checkpoint import load_hf_checkpoint


def _config(bundle: Path) -> dict:
    return json.loads((bundle / "config.json").read_text())


@pytest.mark.parametrize("which", ["tiny_bundle", "minilm_bundle"])
def test_bundle_has_files_with_matching_checksums(which: str, request: pytest.FixtureRequest) -> None:
    bundle = request.getfixturevalue(which)
    cfg = _config(bundle)
    assert set(cfg["files"]) == {
        "model.onnx", "model_attentions.onnx", "model_optimized.onnx", "model_packed.onnx", "tokenizer.json"
    }
    for name, digest in cfg["files"].items():
        assert sha256(bundle / name) == digest


@pytest.mark.parametrize("which", ["tiny_bundle", "minilm_bundle"])
def test_recorded_parity_is_within_limit(which: str, request: pytest.FixtureRequest) -> None:
    cfg = _config(request.getfixturevalue(which))
    figures = cfg["parity"]["max_abs_diff"]
    assert set(figures) == {"default", "attentions", "optimized", "packed"}
    assert set(figures["attentions"]) == {"last_hidden_state", "pooled", "attentions"}
    assert set(figures["packed"]) == {"last_hidden_state", "pooled"}
    assert all(0 <= v <= 1e-4 for graph in figures.values() for v in graph.values())
    assert {"random b8 t1", "random b3 t7", "random b1 t128"} <= set(cfg["parity"]["cases"])
    assert f"random b8 t{cfg['serving']['max_length']}" in cfg["parity"]["cases"]


def test_minilm_serving_metadata(minilm_bundle: Path) -> None:
    cfg = _config(minilm_bundle)
    assert cfg["name"] == "all-MiniLM-L6-v2"
    s = cfg["serving"]
    assert (s["max_length"], s["pooling"], s["normalize"], s["dimensions"]) == (256, "mean", True, 384)
    assert (s["vocab_size"], s["pad_token_id"], s["n_layers"], s["n_heads"]) == (30522, 0, 6, 12)
    assert s["special_tokens"]["[CLS]"] == 101 and s["special_tokens"]["[SEP]"] == 102
    fusions = cfg["graphs"]["optimized"]["fusions"]
    assert fusions.get("SkipLayerNormalization", 0) > 0
    assert fusions.get("Attention") == 6  # one fused Attention operator per layer
    assert not (minilm_bundle / "model_fusable.onnx").exists()  # the optimizer's input is not shipped


def test_bundle_tokenizer_neither_pads_nor_truncates(minilm_bundle: Path) -> None:
    raw = json.loads((minilm_bundle / "tokenizer.json").read_text())
    assert raw["padding"] is None and raw["truncation"] is None


def test_graph_io_is_declared(tiny_bundle: Path) -> None:
    graphs = _config(tiny_bundle)["graphs"]
    default = graphs["default"]
    assert [(i["name"], i["dtype"], i["shape"]) for i in default["inputs"]] == [
        ("input_ids", "int64", ["batch", "sequence"]),
        ("attention_mask", "int64", ["batch", "sequence"]),
    ]
    assert [(o["name"], o["shape"]) for o in default["outputs"]] == [
        ("last_hidden_state", ["batch", "sequence", 64]),
        ("pooled", ["batch", 64]),
    ]
    assert graphs["attentions"]["outputs"][2] == {
        "name": "attentions", "dtype": "float", "shape": ["batch", 2, 4, "sequence", "sequence"],
    }
    packed = graphs["packed"]
    assert packed["packed"] is True
    assert [(i["name"], i["dtype"], i["shape"]) for i in packed["inputs"]] == [
        ("input_ids", "int64", ["tokens"]),
        ("positions", "int64", ["tokens"]),
        ("slots", "int64", ["batch", "sequence"]),
        ("keep", "int64", ["tokens"]),
        ("attention_mask", "int64", ["batch", "sequence"]),
    ]
    assert [(o["name"], o["shape"]) for o in packed["outputs"]] == [("last_hidden_state", ["tokens", 64])]


def test_architecture_round_trips(tiny_bundle: Path) -> None:
    assert EncoderConfig.from_dict(_config(tiny_bundle)["architecture"]) == tiny_encoder(0).config


@pytest.mark.parametrize("graph", ["model.onnx", "model_attentions.onnx", "model_optimized.onnx"])
def test_tiny_graphs_run_directly_equal_pytorch(tiny_bundle: Path, graph: str) -> None:
    model = tiny_encoder(0)
    ids = torch.randint(0, 1000, (4, 33))
    mask = torch.ones_like(ids)
    mask[2, 10:] = 0
    mask[3, 1:] = 0
    session = ort.InferenceSession(str(tiny_bundle / graph), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})
    with torch.no_grad():
        want = model(ids, mask, output_attentions=True)
    real = mask.bool().numpy()
    np.testing.assert_allclose(got[0][real], want.last_hidden_state.numpy()[real], atol=1e-4)
    np.testing.assert_allclose(got[1], want.pooled.numpy(), atol=1e-4)
    if graph == "model_attentions.onnx":
        np.testing.assert_allclose(got[2], torch.stack(want.attentions, 1).numpy(), atol=1e-4)
    else:
        assert len(got) == 2


def _packed_inputs(lengths: list[int], vocab: int, seed: int = 0) -> tuple[dict[str, np.ndarray], list[np.ndarray]]:
    """Packed inputs built by hand (independently of service.packing): sequences one after another."""
    rng = np.random.default_rng(seed)
    seqs = [rng.integers(1, vocab, n, dtype=np.int64) for n in lengths]
    b, s = len(lengths), max(lengths)
    slots = np.zeros((b, s), dtype=np.int64)
    mask = np.zeros((b, s), dtype=np.int64)
    keep, positions, start = [], [], 0
    for i, n in enumerate(lengths):
        for j in range(n):
            slots[i, j], mask[i, j] = start + j, 1
            keep.append(i * s + j)
            positions.append(j)
        start += n
    inputs = {"input_ids": np.concatenate(seqs), "positions": np.array(positions), "slots": slots,
              "keep": np.array(keep), "attention_mask": mask}
    return inputs, seqs


def test_tiny_packed_graph_run_directly_equals_pytorch(tiny_bundle: Path) -> None:
    lengths = [33, 1, 10, 20]
    inputs, seqs = _packed_inputs(lengths, 1000)
    session = ort.InferenceSession(str(tiny_bundle / "model_packed.onnx"), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, inputs)
    ids = torch.zeros((4, 33), dtype=torch.int64)
    mask = torch.zeros_like(ids)
    for i, seq in enumerate(seqs):
        ids[i, : len(seq)], mask[i, : len(seq)] = torch.from_numpy(seq), 1
    with torch.no_grad():
        want = tiny_encoder(0)(ids, mask).last_hidden_state
    assert got.shape == (sum(lengths), 64)
    np.testing.assert_allclose(got, want.numpy()[mask.bool().numpy()], atol=1e-4)


def test_minilm_packed_graph_equals_transformers(minilm_bundle: Path, minilm_folder: Path) -> None:
    from transformers import BertModel

    ref = BertModel.from_pretrained(str(minilm_folder), attn_implementation="eager").eval()
    lengths = [40, 7, 1, 25]
    inputs, seqs = _packed_inputs(lengths, 30000, seed=1)
    session = ort.InferenceSession(str(minilm_bundle / "model_packed.onnx"), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, inputs)
    start = 0
    for seq in seqs:  # each sequence alone through transformers: no padding at all on the reference side
        with torch.no_grad():
            want = ref(input_ids=torch.from_numpy(seq)[None]).last_hidden_state[0].numpy()
        np.testing.assert_allclose(got[start : start + len(seq)], want, atol=1e-4)
        start += len(seq)


def test_minilm_graph_equals_transformers(minilm_bundle: Path, minilm_folder: Path) -> None:
    from transformers import BertModel

    ref = BertModel.from_pretrained(str(minilm_folder), attn_implementation="eager").eval()
    ids = torch.randint(1000, 30000, (3, 40))
    ids[:, 0], ids[:, -1] = 101, 102
    mask = torch.ones_like(ids)
    mask[1, 20:] = 0
    session = ort.InferenceSession(str(minilm_bundle / "model_attentions.onnx"), providers=["CPUExecutionProvider"])
    hidden, _, att = session.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})
    with torch.no_grad():
        want = ref(input_ids=ids, attention_mask=mask, output_attentions=True)
    real = mask.bool().numpy()
    np.testing.assert_allclose(hidden[real], want.last_hidden_state.numpy()[real], atol=1e-4)
    np.testing.assert_allclose(att, torch.stack(want.attentions, 1).numpy(), atol=1e-4)
    assert load_hf_checkpoint(minilm_folder).serving.max_length == _config(minilm_bundle)["serving"]["max_length"]


def test_parity_check_fails_above_the_limit(tiny_bundle: Path) -> None:
    from export.parity import ParityError, check_graph, check_packed_graph, parity_cases

    model = tiny_encoder(0)
    with torch.no_grad():
        model.layers[1].feed_forward.w_2.bias[0] += 0.01  # one dimension: the graph no longer matches
    cases = parity_cases(1000, 16, 0, None)
    with pytest.raises(ParityError, match=r"model.onnx: ONNX Runtime differs from PyTorch by .* \(limit 0.0001\)"):
        check_graph(model, tiny_bundle / "model.onnx", False, cases)
    assert max(check_graph(tiny_encoder(0), tiny_bundle / "model.onnx", False, cases).values()) <= 1e-4
    with pytest.raises(ParityError, match=r"model_packed.onnx: ONNX Runtime differs"):
        check_packed_graph(model, tiny_bundle / "model_packed.onnx", cases)
    assert max(check_packed_graph(tiny_encoder(0), tiny_bundle / "model_packed.onnx", cases).values()) <= 1e-4
