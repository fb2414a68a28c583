"""The README documents every setting and every make target it promises."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from service.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("field", list(Settings.model_fields))
def test_every_setting_is_documented(field: str) -> None:
    assert f"| `ATTNSERVE_{field.upper()}` |" in README


def test_documented_make_targets_exist() -> None:
    makefile = (ROOT / "Makefile").read_text()
    for target in set(re.findall(r"`make ([a-z0-9-]+)", README)):
        assert re.search(rf"^{re.escape(target)}:", makefile, re.M), f"make {target} is documented but missing"
