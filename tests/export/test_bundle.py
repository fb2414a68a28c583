"""Bundles: files, checksums, graph IO, recorded parity, and the graphs run directly against PyTorch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
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
    graphs = {"model.onnx", "model_attentions.onnx", "model_optimized.onnx", "model_packed.onnx", "model_fp16.onnx",
              "tokenizer.json"}
    # MiniLM's token embedding (47 MB) is stored once for all graphs; tiny's table is too small to bother
    assert set(cfg["files"]) == graphs | ({"shared_weights.bin"} if which == "minilm_bundle" else set())
    for name, digest in cfg["files"].items():
        assert sha256(bundle / name) == digest


@pytest.mark.parametrize("which", ["tiny_bundle", "minilm_bundle"])
def test_recorded_parity_is_within_limit(which: str, request: pytest.FixtureRequest) -> None:
    cfg = _config(request.getfixturevalue(which))
    figures = cfg["parity"]["max_abs_diff"]
    assert set(figures) == {"default", "attentions", "optimized", "packed", "fp16"}
    assert set(figures["attentions"]) == {"last_hidden_state", "pooled", "attentions"}
    assert set(figures["packed"]) == {"last_hidden_state", "pooled"}
    # the limit itself is enforced by the export (test_parity_check_fails_above_the_limit): here, that every
    # figure was measured, a finite float, not a placeholder
    assert all(isinstance(v, float) and 0 < v < 1 for graph in figures.values() for v in graph.values())
    assert {"random b8 t1", "random b3 t7", "random b1 t128"} <= set(cfg["parity"]["cases"])
    assert f"random b8 t{cfg['serving']['max_length']}" in cfg["parity"]["cases"]


def test_minilm_token_embedding_is_stored_once_for_every_graph(minilm_bundle: Path, minilm_folder: Path) -> None:
    import onnx
    from safetensors.numpy import load_file

    shared = _config(minilm_bundle)["shared_initializers"]
    name = "encoder.token_embedding.weight"
    assert shared["file"] == "shared_weights.bin"
    [entry] = shared["tensors"]
    assert (entry["name"], entry["dtype"], entry["shape"]) == (name, "float32", [30522, 384])
    stored = np.fromfile(minilm_bundle / shared["file"], dtype="<f4", count=30522 * 384, offset=entry["offset"])
    want = next(v for k, v in load_file(str(minilm_folder / "model.safetensors")).items()
                if k.endswith("word_embeddings.weight"))
    np.testing.assert_array_equal(stored.reshape(30522, 384), want)  # the checkpoint's table, bit for bit
    for graph in _config(minilm_bundle)["graphs"].values():
        tensors = {t.name: t for t in onnx.load(str(minilm_bundle / graph["file"]), load_external_data=False)
                   .graph.initializer}
        assert tensors[name].data_location == onnx.TensorProto.EXTERNAL and not tensors[name].raw_data
        where = {e.key: e.value for e in tensors[name].external_data}
        assert (where["location"], int(where["offset"]), int(where["length"])) == (
            "shared_weights.bin", entry["offset"], entry["length"])
    assert _config(minilm_bundle)["files"]["shared_weights.bin"] == sha256(minilm_bundle / "shared_weights.bin")


def test_only_tables_every_graph_reads_identically_and_only_by_gather_are_shared(tmp_path: Path) -> None:
    import onnx
    from onnx import helper, numpy_helper

    from export.shared_weights import share_embeddings

    rng = np.random.default_rng(0)
    table, other = (rng.standard_normal((1024, 256)).astype(np.float32) for _ in range(2))  # 1 MiB each
    dense = rng.standard_normal((512, 512)).astype(np.float32)

    def graph(path: Path, second_table: np.ndarray, first_table: np.ndarray = table) -> Path:
        nodes = [helper.make_node("Gather", ["table", "ids"], ["a"]),
                 helper.make_node("Gather", ["second", "ids"], ["b"]),
                 helper.make_node("Gather", ["dense", "ids"], ["c"]),
                 helper.make_node("MatMul", ["c", "dense"], ["d"]),  # dense is also a MatMul weight: stays inline
                 helper.make_node("Concat", ["a", "b"], ["ab"], axis=1)]
        inits = [numpy_helper.from_array(a, n) for a, n in ((first_table, "table"), (second_table, "second"),
                                                            (dense, "dense"))]
        ids = helper.make_tensor_value_info("ids", onnx.TensorProto.INT64, ["n"])
        outs = [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in ("ab", "d")]
        g = helper.make_graph(nodes, "g", [ids], outs, inits)
        onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), str(path))
        return path

    paths = [graph(tmp_path / "one.onnx", table), graph(tmp_path / "two.onnx", other)]  # "second" differs
    ids = np.array([3, 0, 511], dtype=np.int64)
    before = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, {"ids": ids}) for p in paths]
    shared = share_embeddings(paths, tmp_path)
    assert shared is not None and [t["name"] for t in shared["tensors"]] == ["table"]
    assert (tmp_path / "shared_weights.bin").stat().st_size == table.nbytes
    for path, want, second in zip(paths, before, (table, other), strict=True):
        assert path.stat().st_size < 2 * table.nbytes + 4096  # "table" left the file; "second" and "dense" did not
        got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"ids": ids})
        np.testing.assert_array_equal(got[0], np.concatenate([table[ids], second[ids]], axis=1))
        np.testing.assert_array_equal(got[1], want[1])
    apart = tmp_path / "apart"
    apart.mkdir()
    paths = [graph(apart / "one.onnx", table, table), graph(apart / "two.onnx", other, other)]
    assert share_embeddings(paths, apart) is None and not (apart / "shared_weights.bin").exists()
    assert all(p.stat().st_size > 3 * table.nbytes for p in paths)  # nothing in common: nothing moved


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
    """Packed inputs built by hand (independently of bundle.packing): sequences one after another."""
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


def _tiny_tokens_by_pytorch(seqs: list[np.ndarray]) -> np.ndarray:
    """The tiny encoder's hidden states of the real tokens, one sequence after another, from a padded batch."""
    ids = torch.zeros((len(seqs), max(map(len, seqs))), dtype=torch.int64)
    mask = torch.zeros_like(ids)
    for i, seq in enumerate(seqs):
        ids[i, : len(seq)], mask[i, : len(seq)] = torch.from_numpy(seq), 1
    with torch.no_grad():
        return tiny_encoder(0)(ids, mask).last_hidden_state.numpy()[mask.bool().numpy()]


def test_tiny_packed_graph_run_directly_equals_pytorch(tiny_bundle: Path) -> None:
    lengths = [33, 1, 10, 20]
    inputs, seqs = _packed_inputs(lengths, 1000)
    session = ort.InferenceSession(str(tiny_bundle / "model_packed.onnx"), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, inputs)
    assert got.shape == (sum(lengths), 64)
    np.testing.assert_allclose(got, _tiny_tokens_by_pytorch(seqs), atol=1e-4)


@pytest.mark.parametrize("lengths", [[33, 1, 10, 20], [33, 1, 10]])  # rows exact; one all-padding row
def test_tiny_packed_graph_on_bucketed_shapes_equals_pytorch(tiny_bundle: Path, lengths: list[int]) -> None:
    """Rows, width and tokens rounded up (bundle.packing.Buckets, what OpenVINO is fed): the real tokens' rows are
    PyTorch's, whatever the padding rows, columns and extra tokens hold."""
    from bundle.packing import Buckets, pack

    _, seqs = _packed_inputs(lengths, 1000)
    inputs, offsets = pack(seqs, Buckets(rows=4, width=16, tokens=48))
    tokens = -(-sum(lengths) // 48) * 48  # 64 -> 96, 44 -> 48
    assert inputs["slots"].shape == (4, 48) and len(inputs["input_ids"]) == tokens
    session = ort.InferenceSession(str(tiny_bundle / "model_packed.onnx"), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, inputs)
    assert got.shape == (tokens, 64)
    np.testing.assert_allclose(got[: offsets[-1]], _tiny_tokens_by_pytorch(seqs), atol=1e-4)


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
    from export.parity import ParityError, check_graph, check_packed_graph, encoder_reference, parity_cases

    model = tiny_encoder(0)
    with torch.no_grad():
        model.layers[1].feed_forward.w_2.bias[0] += 0.01  # one dimension: the graph no longer matches
    cases = parity_cases(1000, 16, 0, None)
    with pytest.raises(ParityError, match=r"model.onnx: ONNX Runtime differs from PyTorch by .* \(limit 0.0001\)"):
        check_graph(encoder_reference(model), tiny_bundle / "model.onnx", False, cases)
    good = encoder_reference(tiny_encoder(0))
    assert max(check_graph(good, tiny_bundle / "model.onnx", False, cases).values()) <= 1e-4
    with pytest.raises(ParityError, match=r"model_packed.onnx: ONNX Runtime differs"):
        check_packed_graph(encoder_reference(model), tiny_bundle / "model_packed.onnx", cases)
    assert max(check_packed_graph(good, tiny_bundle / "model_packed.onnx", cases).values()) <= 1e-4


def test_the_parity_reference_runs_each_case_once_and_keeps_no_attentions() -> None:
    """An embedding bundle's four graphs without attentions are checked against one PyTorch forward per case
    (and query-block setting), read-only and equal to a fresh forward; outputs with attentions are never kept."""
    from export.onnx_graph import GraphModule, query_chunks
    from export.parity import Reference, encoder_reference, parity_cases

    model = tiny_encoder(0)
    cases = parity_cases(1000, 16, 0, None)
    calls: list[tuple[str, bool]] = []

    def forward(case, with_attentions: bool) -> list[np.ndarray]:
        calls.append((case.name, with_attentions))
        return [np.zeros(2, np.float32)]

    counted = Reference(model, forward)
    for _ in range(4):
        for case in cases:
            counted.outputs(case, False)
    assert len(calls) == len(cases)
    with query_chunks(model, 2):  # the blocks change the numbers a graph computes: a forward of their own
        counted.outputs(cases[0], False)
    assert len(calls) == len(cases) + 1
    counted.outputs(cases[0], True)
    counted.outputs(cases[0], True)
    assert calls[-2:] == [(cases[0].name, True)] * 2
    with pytest.raises(ValueError, match="read-only"):
        counted.outputs(cases[0], False)[0][0] = 1.0

    reference = encoder_reference(model)
    fresh = GraphModule(model, False).eval()
    for case in cases:
        reference.outputs(case, False)
    for case in cases:
        with torch.no_grad():
            want = fresh(torch.from_numpy(case.input_ids), torch.from_numpy(case.attention_mask))
        for got, w in zip(reference.outputs(case, False), want, strict=True):
            np.testing.assert_array_equal(got, w.numpy())


def test_the_fp16_graph_computes_in_half_and_keeps_the_vectors(minilm_bundle: Path) -> None:
    """model_fp16.onnx (ATTNSERVE_PRECISION=fp16 on CUDA): weights in float16, the shared token table still the
    float32 one in shared_weights.bin, float32 in and out; on ONNX Runtime's CPU provider its pooled vectors
    keep cosine >= 0.9999 against the fp32 graph's on real sentences (the service measures again on the GPU)."""
    import onnx
    from tokenizers import Tokenizer

    model = onnx.load(str(minilm_bundle / "model_fp16.onnx"), load_external_data=False)
    types = {t.name: t.data_type for t in model.graph.initializer}
    matmul_weights = [n.input[1] for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in types]
    assert len(matmul_weights) == 36 and {types[w] for w in matmul_weights} == {onnx.TensorProto.FLOAT16}
    assert types["encoder.token_embedding.weight"] == onnx.TensorProto.FLOAT  # external: the shared table
    tokenizer = Tokenizer.from_file(str(minilm_bundle / "tokenizer.json"))
    half = ort.InferenceSession(str(minilm_bundle / "model_fp16.onnx"), providers=["CPUExecutionProvider"])
    full = ort.InferenceSession(str(minilm_bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    cosines, differs = [], False
    for text in ("The quick brown fox jumps over the lazy dog.", "Zürich, São Paulo and 東京", "x",
                 "Attention weights show which tokens a Transformer reads together. " * 8):
        ids = np.array([tokenizer.encode(text).ids], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
        want, got = full.run(["pooled"], feeds)[0][0], half.run(["pooled"], feeds)[0][0]
        assert got.dtype == np.float32
        cosines.append(float(want @ got / (np.linalg.norm(want) * np.linalg.norm(got))))
        differs = differs or bool(np.abs(want - got).max() > 1e-6)
    assert min(cosines) >= 0.9999 and differs  # close, and not the fp32 graph again


def test_an_fp16_graph_past_its_limit_is_left_out_saying_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fp16 graph is an extra: where it strays past its limit (here a limit nothing meets) the export
    leaves it out and says why, instead of failing; a service asked for fp16 then repeats the reason."""
    from bundle import BundleError, load_bundle
    from export.commands import export_tiny
    from service.precision import choose_engine
    from service.settings import Settings

    monkeypatch.setattr("export.bundle.HALF_PARITY_LIMIT", 1e-12)
    out = tmp_path / "tiny"
    export_tiny(out, seed=0)
    cfg = _config(out)
    assert "fp16" not in cfg["graphs"] and "fp16" not in cfg["parity"]["max_abs_diff"]
    assert not (out / "model_fp16.onnx").exists() and "model_fp16.onnx" not in cfg["files"]
    assert cfg["parity"]["fp16_left_out"].startswith("model_fp16.onnx: ONNX Runtime differs from PyTorch by")
    with pytest.raises(BundleError, match=r"has none: the export left it out \(model_fp16.onnx: ONNX Runtime"):
        choose_engine(Settings(model=out, precision="fp16"), load_bundle(out), True, lambda: (False, ""))


@pytest.mark.slow
@pytest.mark.parametrize("head", [None, "classify", "sparse"])
def test_the_graph_cut_from_the_attentions_trace_is_the_one_traced_without(head: str | None, tmp_path: Path) -> None:
    """The export cuts the graph without attentions from the attentions graph (one trace fewer): it must be the
    graph that tracing without attentions gives, node for node, with bitwise the same outputs in ONNX Runtime."""
    from export.onnx_graph import export_graph, without_attentions
    from export.task_graphs import export_task_graph
    from tests.families import make_checkpoint

    if head is None:
        model: Any = tiny_encoder(0)
        export = export_graph
    else:
        checkpoint = tmp_path / "checkpoint"
        if head == "classify":
            make_checkpoint("bert", checkpoint, head="classify", labels=["a", "b", "c"])
        else:
            make_checkpoint("bert", checkpoint, head="mlm")  # SPLADE's base
        model = load_hf_checkpoint(checkpoint, task=head).task_model
        export = export_task_graph
    export(model, tmp_path / "attentions.onnx", True, 64)
    export(model, tmp_path / "traced.onnx", False, 64)
    without_attentions(tmp_path / "attentions.onnx", tmp_path / "cut.onnx")
    traced, cut = (onnx.load(tmp_path / f"{name}.onnx") for name in ("traced", "cut"))
    assert [n.op_type for n in cut.graph.node] == [n.op_type for n in traced.graph.node]  # names are numbered
    assert [o.name for o in cut.graph.output] == [o.name for o in traced.graph.output]
    assert (cut.producer_name, cut.producer_version) == (traced.producer_name, traced.producer_version)
    sessions = [ort.InferenceSession(str(tmp_path / f"{name}.onnx"), providers=["CPUExecutionProvider"])
                for name in ("traced", "cut")]
    ids = torch.randint(5, 300, (3, 17)).numpy()
    mask = np.ones_like(ids)
    mask[1, 9:] = 0
    feeds = {"input_ids": ids, "attention_mask": mask}
    if len(sessions[0].get_inputs()) == 3:
        feeds["token_type_ids"] = np.zeros_like(ids)
    want, got = (s.run(None, feeds) for s in sessions)
    assert len(got) == len(want) and all(np.array_equal(g, w) for g, w in zip(got, want, strict=True))
