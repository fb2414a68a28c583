"""fidelity.json beside a bundle's graphs: what a reduced precision measured against fp32, one record per
(precision, engine and its version, device, the graphs of lone and of batched requests, and for OpenVINO how the
batches' attention is compiled). The service writes a record the first time it starts a precision on a device and
reads it back on later starts; a bundle folder it cannot write keeps being measured at every start. Not in
config.json's checksums: it is written after export, by the service."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

FILE = "fidelity.json"
KEY = ("precision", "engine", "engine_version", "device", "graph_sha256", "batch_graph_sha256", "batch_attention")


def find_record(folder: Path, key: dict[str, str]) -> dict[str, Any] | None:
    """The record measured under exactly this key, or None (no file, another key, or a file not understood)."""
    for record in _records(folder):
        if all(record.get(k) == key.get(k) for k in KEY):  # a key without a part matches records without it
            return record
    return None


def add_record(folder: Path, record: dict[str, Any]) -> None:
    """Replace the record with the same key, atomically (a concurrent reader sees the old file or the new).
    Raises OSError where the folder cannot be written (a read-only image)."""
    records = [r for r in _records(folder) if any(r.get(k) != record.get(k) for k in KEY)] + [record]
    fd, tmp = tempfile.mkstemp(prefix=".fidelity-", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"records": records}, f, indent=2)
        os.replace(tmp, folder / FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _records(folder: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads((folder / FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    records = data.get("records") if isinstance(data, dict) else None
    return [r for r in records if isinstance(r, dict)] if isinstance(records, list) else []
