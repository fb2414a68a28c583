"""Shared fixtures: bundles are exported once per test session into a temporary folder."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
# The full run (make test, CI) takes every test; a plain `pytest` skips the slow tier (pyproject's addopts):
# tests that export or load MiniLM, start real servers, or drive nginx, Chromium, locust and the benchmark.
SLOW_FIXTURES = frozenset({"minilm_bundle", "minilm_folder", "tiny_server"})
SLOW_FOLDERS = frozenset({"deploy", "hostile", "loadtest"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        folder = Path(str(item.path)).relative_to(TESTS).parts[0]
        # "minilm" in the name: parametrized over the MiniLM bundle by name (getfixturevalue), so not a fixture
        if (folder in SLOW_FOLDERS or SLOW_FIXTURES & set(getattr(item, "fixturenames", ()))
                or "minilm" in item.name.lower()):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def system_tool() -> Callable[[str, str], str]:
    """The path of a Debian tool the test drives for real; a missing one fails the test with one line that
    names the package (never a skip: a skipped check would pass for a missing install)."""

    def find(command: str, package: str) -> str:
        path = shutil.which(command) or next((f"{d}/{command}" for d in ("/usr/sbin", "/usr/bin")
                                              if Path(f"{d}/{command}").exists()), None)
        if path is None:
            pytest.fail(f"{command} is missing: install Debian's {package} (apt-get install {package}; "
                        "make test does it through make system-deps)", pytrace=False)
        return path

    return find

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def minilm_folder() -> Path:
    from models.checkpoint import minilm_folder

    return minilm_folder()


def _prebuilt(variable: str) -> Path | None:
    """A bundle exported earlier (ATTNSERVE_TEST_TINY_BUNDLE, ATTNSERVE_TEST_MINILM_BUNDLE): for a machine with no
    torch to export one, such as the lent GPU machine. Read only; never set in CI, which exports its own."""
    value = os.environ.get(variable)
    if not value:
        return None
    from bundle import load_bundle

    load_bundle(Path(value))  # a wrong path fails here, with the reader's own message
    return Path(value)


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if prebuilt := _prebuilt("ATTNSERVE_TEST_TINY_BUNDLE"):
        return prebuilt
    from export.commands import export_tiny

    out = tmp_path_factory.mktemp("bundles") / "tiny"
    export_tiny(out, seed=0)
    return out


@pytest.fixture(scope="session")
def minilm_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if prebuilt := _prebuilt("ATTNSERVE_TEST_MINILM_BUNDLE"):
        return prebuilt
    from export.commands import export_minilm

    out = tmp_path_factory.mktemp("bundles") / "minilm"
    export_minilm(out)
    return out
