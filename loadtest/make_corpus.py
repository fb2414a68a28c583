"""Build loadtest/corpus.txt (900 sentences) and loadtest/paragraphs.txt (100 paragraphs of four): real English
of mixed lengths from the Python standard library's own
docstrings (PSF licence), so the corpus needs no download. Deterministic: the same Python gives the same file.

    python loadtest/make_corpus.py
"""

from __future__ import annotations

import importlib
import inspect
import random
import re
from pathlib import Path

MODULES = ("argparse", "asyncio", "collections", "csv", "datetime", "decimal", "email", "functools", "heapq",
           "http.client", "inspect", "json", "logging", "os", "pathlib", "random", "re", "shutil", "socket",
           "sqlite3", "statistics", "string", "subprocess", "tarfile", "textwrap", "threading", "typing",
           "unittest", "urllib.parse", "zipfile")
OUT = Path(__file__).with_name("corpus.txt")
PARAGRAPHS = Path(__file__).with_name("paragraphs.txt")


def docstrings() -> list[str]:
    found = []
    for name in MODULES:
        module = importlib.import_module(name)
        objects = [module, *(getattr(module, a) for a in sorted(dir(module)) if not a.startswith("_"))]
        for obj in objects:
            doc = inspect.getdoc(obj) if (inspect.isfunction(obj) or inspect.isclass(obj) or obj is module) else None
            if doc:
                found.append(doc)
    return found


def sentences(text: str) -> list[str]:
    flat = re.sub(r"\s+", " ", text)
    parts = re.split(r"(?<=[.!?])\s+(?=[A-Z])", flat)
    return [p.strip() for p in parts if 30 <= len(p.strip()) <= 400 and not re.search(r"[>{}\\|]{2}|::|\$", p)]


def main() -> None:
    pool = sorted({s for doc in docstrings() for s in sentences(doc)})
    rng = random.Random(0)
    rng.shuffle(pool)
    lines = pool[:900]
    # multi-sentence paragraphs, as real traffic has some long inputs too
    paragraphs = [" ".join(pool[900 + 4 * i: 904 + 4 * i]) for i in range(100)]
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    PARAGRAPHS.write_text("\n".join(paragraphs) + "\n", encoding="utf-8")
    print(f"wrote {len(lines)} sentences to {OUT} and {len(paragraphs)} paragraphs to {PARAGRAPHS}")


if __name__ == "__main__":
    main()
