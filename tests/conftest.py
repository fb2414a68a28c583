"""Shared fixtures: bundles are exported once per test session into a temporary folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def minilm_folder() -> Path:
    from models.checkpoint import minilm_folder

    return minilm_folder()


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from export.commands import export_tiny

    out = tmp_path_factory.mktemp("bundles") / "tiny"
    export_tiny(out, seed=0)
    return out


@pytest.fixture(scope="session")
def minilm_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from export.commands import export_minilm

    out = tmp_path_factory.mktemp("bundles") / "minilm"
    export_minilm(out)
    return out
