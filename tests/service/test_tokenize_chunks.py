"""Texts reach the tokenizer at most TOKENIZE_CHUNK_CHARS at a time (an encoding's memory is ~150 bytes a token
until converted), and the answers are the tokenizer's own, as if it had taken them all in one call."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from tokenizers import Tokenizer

from models.checkpoint import minilm_folder
from service.tokenize import TOKENIZE_CHUNK_CHARS, TextTokenizer, TooLong, TooManyTokens
from tests.families import FAMILIES, family_tokenizer


class Spy:
    """A tokenizer that records how many characters each call was given."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer, self.calls = tokenizer, []

    def encode(self, text: str, **kwargs: Any) -> Any:
        self.calls.append(len(text))
        return self.tokenizer.encode(text, **kwargs)

    def encode_batch(self, items: list, **kwargs: Any) -> list:
        self.calls.append(sum(len(i) if isinstance(i, str) else len(i[0]) + len(i[1]) for i in items))
        return self.tokenizer.encode_batch(items, **kwargs)


def texts_of(count: int, chars: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    words = ["the", "quick", "Zürich", "naïve", "日本語", "!!", "emoji🙂", "co-operate", "x" * 30, "don't", "a  b"]
    return [" ".join(rng.choice(words) for _ in range(chars // 5))[:chars] for _ in range(count)]


def tokenizer_files(tmp_path: Path) -> list[Path]:
    """MiniLM's tokenizer.json and one of each kind the families use (WordPiece, byte-level BPE, Unigram)."""
    out = [minilm_folder() / "tokenizer.json"]
    seen = set()
    for spec in FAMILIES.values():
        if spec.tokenizer not in seen:
            seen.add(spec.tokenizer)
            path = tmp_path / f"{spec.tokenizer}.json"
            family_tokenizer(spec).save(str(path))
            out.append(path)
    return out


@pytest.fixture
def tokenizers(tmp_path: Path) -> list[Path]:
    return tokenizer_files(tmp_path)


@pytest.mark.parametrize("truncate", [True, False])
def test_chunked_encodings_are_the_tokenizers_own(tokenizers: list[Path], truncate: bool) -> None:
    texts = texts_of(60, 4_000) if truncate else texts_of(700, 300)
    assert sum(map(len, texts)) > 2 * TOKENIZE_CHUNK_CHARS
    for path in tokenizers:
        ours = TextTokenizer(path, 2_048)
        spy = ours._truncating = Spy(ours._truncating)  # type: ignore[assignment]
        ours._exact = Spy(ours._exact)  # type: ignore[assignment]
        reference = Tokenizer.from_file(str(path))
        reference.no_padding()
        reference.enable_truncation(2_048) if truncate else reference.no_truncation()
        expected = reference.encode_batch(texts)
        got = ours.encode(texts, truncate)
        assert [e.ids.tolist() for e in got] == [e.ids for e in expected], path.name
        assert [e.tokens for e in got] == [e.tokens for e in expected], path.name
        calls = (spy if truncate else ours._exact).calls  # type: ignore[attr-defined]
        assert len(calls) >= 3 and max(calls) <= TOKENIZE_CHUNK_CHARS, calls

        pairs = [(texts[i], texts[i + 1]) for i in range(0, len(texts) - 1, 2)]
        expected_pairs = reference.encode_batch(pairs)
        got_pairs = ours.encode_pairs(pairs, truncate, details=True)
        assert [p.ids.tolist() for p in got_pairs] == [e.ids for e in expected_pairs], path.name
        assert [p.type_ids.tolist() for p in got_pairs] == [e.type_ids for e in expected_pairs], path.name


def test_a_text_past_the_maximum_stops_the_tokenizing_at_its_chunk(tokenizers: list[Path]) -> None:
    texts = texts_of(400, 1_000)
    ours = TextTokenizer(tokenizers[0], 10_000)
    spy = ours._exact = Spy(ours._exact)  # type: ignore[assignment]
    texts[150] = texts[151] = "word " * 12_000
    with pytest.raises(TooLong) as too_long:
        ours.encode(texts, truncate=False)
    assert too_long.value.index == 150 and too_long.value.length > 10_000
    assert sum(spy.calls) < sum(map(len, texts)) / 2  # the chunks after it were never tokenized


def test_tokens_past_the_request_limit_stop_the_details_early(tokenizers: list[Path]) -> None:
    texts = texts_of(200, 2_000)
    ours = TextTokenizer(tokenizers[0], 512)
    every = sum(len(e.ids) for e in ours.details(texts, True, 10**9))
    with pytest.raises(TooManyTokens) as too_many:
        ours.details(texts, True, every // 4)
    assert every // 4 < too_many.value.tokens < every
    assert too_many.value.texts < len(texts)
