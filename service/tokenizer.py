"""Texts -> token ids with the bundle's tokenizer.json; lengths are checked here against the model's maximum."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer


@dataclass
class Encoded:
    ids: np.ndarray  # (n,) int64
    tokens: list[str] | None  # token strings when the input was text


class TooLong(ValueError):
    def __init__(self, index: int, length: int, limit: int) -> None:
        super().__init__(f"input {index} has {length} tokens; the model's maximum is {limit}")
        self.index, self.length, self.limit = index, length, limit


class TextTokenizer:
    """Two copies of one tokenizer: one that never truncates (to measure and refuse) and one that truncates
    at the model's maximum the way the tokenizer's own post-processor does (special tokens kept)."""

    def __init__(self, path: Path, max_length: int) -> None:
        self.max_length = max_length
        self._exact = Tokenizer.from_file(str(path))
        self._exact.no_padding()
        self._exact.no_truncation()
        self._truncating = Tokenizer.from_file(str(path))
        self._truncating.no_padding()
        self._truncating.enable_truncation(max_length)

    def encode(self, texts: list[str], truncate: bool) -> list[Encoded]:
        tokenizer = self._truncating if truncate else self._exact
        # one text: encode() directly, without encode_batch's hand-off to its thread pool
        encodings = [tokenizer.encode(texts[0])] if len(texts) == 1 else tokenizer.encode_batch(texts)
        for i, enc in enumerate(encodings):
            if len(enc.ids) > self.max_length:
                raise TooLong(i, len(enc.ids), self.max_length)
        return [Encoded(np.asarray(e.ids, dtype=np.int64), list(e.tokens)) for e in encodings]
