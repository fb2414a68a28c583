"""The house's import graph, read from the source with ast: models -> bundle <- export, service -> bundle, no
arrow between export and service, bundle free of torch, and no module past ~300 lines (330 at most)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("attnserve", "bundle", "models", "export", "service", "loadtest")
# what each package may import from the others (the CLI package only puts the two subcommands together)
ALLOWED = {
    "attnserve": {"export", "service"},
    "bundle": set(),
    "models": {"bundle"},
    "export": {"bundle", "models"},
    "service": {"bundle"},
    "loadtest": {"bundle", "service"},
}


def imports_of(package: str) -> dict[str, set[str]]:
    """module path -> the project's top-level packages it imports (absolute imports; relative ones stay inside)."""
    found: dict[str, set[str]] = {}
    for file in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        found[str(file.relative_to(ROOT))] = names & set(PACKAGES) - {package}
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_follow_the_layout(package: str) -> None:
    wrong = {module: sorted(names - ALLOWED[package]) for module, names in imports_of(package).items()
             if names - ALLOWED[package]}
    assert wrong == {}


def test_a_forbidden_arrow_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "service").mkdir()
    (tmp_path / "service" / "x.py").write_text("from export.commands import run\nimport torch\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert imports_of("service") == {"service/x.py": {"export"}}


def test_bundle_and_service_import_without_torch() -> None:
    code = ("import sys; sys.modules['torch'] = None; import bundle, bundle.packing, service.app, service.cli; "
            "print('ok')")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "ok", result.stderr


@pytest.mark.parametrize("package", [p for p in PACKAGES if p != "loadtest"] + ["loadtest"])
def test_no_module_is_past_300_lines(package: str) -> None:
    long = {str(f.relative_to(ROOT)): n for f in (ROOT / package).rglob("*.py")
            if (n := len(f.read_text(encoding="utf-8").splitlines())) > 330}
    assert long == {}
