"""fidelity.json on its own: one record per key, replaced atomically, a file not understood read as none."""

from __future__ import annotations

import json
from pathlib import Path

from bundle.fidelity import FILE, add_record, find_record

KEY = {"precision": "bf16", "engine": "openvino", "engine_version": "openvino 2026.4.1", "device": "Xeon (amx_bf16)",
       "graph_sha256": "ab" * 32, "batch_graph_sha256": "cd" * 32, "batch_attention": "unfused"}


def test_records_are_found_by_their_whole_key(tmp_path: Path) -> None:
    assert find_record(tmp_path, KEY) is None
    add_record(tmp_path, {**KEY, "worst_cos": 0.99997})
    assert find_record(tmp_path, KEY)["worst_cos"] == 0.99997
    for field in KEY:
        assert find_record(tmp_path, {**KEY, field: "something else"}) is None, field
    # a key without a part (ONNX Runtime's records have no batch_attention) is not one that has it
    assert find_record(tmp_path, {k: v for k, v in KEY.items() if k != "batch_attention"}) is None
    add_record(tmp_path, {**KEY, "device": "EPYC ()", "worst_cos": 0.5})
    add_record(tmp_path, {**KEY, "worst_cos": 0.99998})  # the same key: replaced, not added
    records = json.loads((tmp_path / FILE).read_text())["records"]
    assert [r["worst_cos"] for r in records] == [0.5, 0.99998]
    assert [p.name for p in tmp_path.iterdir()] == [FILE]  # no temporary file left behind


def test_a_file_not_understood_is_no_record(tmp_path: Path) -> None:
    for text in ("{not json", '{"records": 3}', "[1, 2]", '{"records": [1, "x"]}'):
        (tmp_path / FILE).write_text(text)
        assert find_record(tmp_path, KEY) is None, text
    add_record(tmp_path, {**KEY, "worst_cos": 1.0})  # and is replaced by a good one
    assert find_record(tmp_path, KEY)["worst_cos"] == 1.0
