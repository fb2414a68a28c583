"""The tokenize stage: texts (or token ids as given) -> checked token id arrays, with the bundle's tokenizer.json;
every limit on inputs is checked here (limits.py), before anything is queued."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np
from starlette.requests import Request
from tokenizers import Tokenizer

from .errors import ApiError
from .limits import check_inputs, check_token_lists, check_total_tokens, too_long_message
from .runtime import Pair

if TYPE_CHECKING:  # both import this module
    from .context import Context
    from .engine import Engine

T = TypeVar("T")

# Texts up to this many characters in all are tokenized on the event loop (~40 us for a 100-character
# sentence): the hop to the worker pool costs more than that and, at 64 clients, waited 4-7 ms for a thread.
INLINE_TOKENIZE_CHARS = 2_000


# Texts go to the tokenizer this many characters at a time: an encoding holds ~150 bytes a token until it is
# converted (truncation keeps the tokens it cuts, as overflow), and 4 MB of punctuation in one call held 600 MB
TOKENIZE_CHUNK_CHARS = 100_000


def chunks(items: list[T], size: Callable[[T], int]) -> Iterator[tuple[int, list[T]]]:
    """(index of the first item, items) in order, each run of items at most TOKENIZE_CHUNK_CHARS (or one item)."""
    start, chunk, chars = 0, [], 0
    for i, item in enumerate(items):
        if chunk and chars + size(item) > TOKENIZE_CHUNK_CHARS:
            yield start, chunk
            start, chunk, chars = i, [], 0
        chunk.append(item)
        chars += size(item)
    if chunk:
        yield start, chunk


def _pair_chars(item: str | tuple[str, str]) -> int:
    return len(item) if isinstance(item, str) else len(item[0]) + len(item[1])


@dataclass
class Encoded:
    ids: np.ndarray  # (n,) int64
    tokens: list[str] | None  # token strings when the input was text


class TooManyTokens(ValueError):
    def __init__(self, tokens: int, texts: int) -> None:
        super().__init__(f"{tokens} tokens in the first {texts} texts")
        self.tokens, self.texts = tokens, texts


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

    def details(self, texts: list[str], add_special_tokens: bool, max_tokens: int) -> list:
        """Whole encodings (ids, token strings, offsets, special-token mask), never truncated; TooManyTokens as
        soon as the texts tokenized so far hold more than ``max_tokens``."""
        out: list = []
        tokens = 0
        for _, chunk in chunks(texts, len):
            out += self._exact.encode_batch(chunk, add_special_tokens=add_special_tokens)
            tokens += sum(len(e.ids) for e in out[-len(chunk):])
            if tokens > max_tokens:
                raise TooManyTokens(tokens, len(out))
        return out

    def decode(self, lists: list[list[int]], skip_special_tokens: bool) -> list[str]:
        return self._exact.decode_batch(lists, skip_special_tokens=skip_special_tokens)

    def encode(self, texts: list[str], truncate: bool) -> list[Encoded]:
        """Stops at the first chunk with a text past the maximum (TooLong, the first such text)."""
        tokenizer = self._truncating if truncate else self._exact
        out: list[Encoded] = []
        for start, chunk in chunks(texts, len):
            # one text: encode() directly, without encode_batch's hand-off to its thread pool
            encodings = [tokenizer.encode(chunk[0])] if len(chunk) == 1 else tokenizer.encode_batch(chunk)
            for i, enc in enumerate(encodings, start):
                if len(enc.ids) > self.max_length:
                    raise TooLong(i, len(enc.ids), self.max_length)
            out += [Encoded(np.asarray(e.ids, dtype=np.int64), list(e.tokens)) for e in encodings]
        return out

    def encode_pairs(self, pairs: list[str | tuple[str, str]], truncate: bool, details: bool = False) -> list[Pair]:
        """The tokenizer's own pair encoding (its template: [CLS] a [SEP] b [SEP], types 0 then 1), as
        transformers' tokenizer(a, b) gives it; truncation cuts the longer text first (longest_first). A lone
        text is encoded as one (types 0). ``details``: with the token strings and each token's segment (where
        a pair's second text starts, whatever the family's token types: RoBERTa's are all 0)."""
        tokenizer = self._truncating if truncate else self._exact
        out: list[Pair] = []
        for start, chunk in chunks(pairs, _pair_chars):
            encodings = tokenizer.encode_batch(chunk)
            for i, enc in enumerate(encodings, start):
                if len(enc.ids) > self.max_length:
                    raise TooLong(i, len(enc.ids), self.max_length)
            out += [Pair(np.asarray(e.ids, dtype=np.int64), np.asarray(e.type_ids, dtype=np.int64),
                         list(e.tokens) if details else None, list(e.sequence_ids) if details else None)
                    for e in encodings]
        return out


def prompt_text(engine: Engine, prompt_name: str | None, texts: bool) -> str:
    """The text put before each input: the named prompt, else the bundle's default (texts only: token ids are
    used as given)."""
    prompts = engine.bundle.prompts
    if prompt_name is not None:
        if not texts:
            raise ApiError(422, "prompt_name: prompts apply to texts; token ids are used as given", "prompt_name")
        if prompt_name not in prompts:
            known = ", ".join(repr(p) for p in sorted(prompts)) or "none"
            raise ApiError(422, f"prompt_name: {prompt_name[:100]!r} is not one of this model's prompts ({known})",
                           "prompt_name")
        return prompts[prompt_name]
    default = engine.bundle.default_prompt_name
    return prompts.get(default, "") if texts and default is not None else ""


async def sequences_from(
    request: Request, ctx: Context, engine: Engine, kind: str, texts: list[str] | None,
    token_lists: list[list[int]] | None, truncate: bool | None, prompt_name: str | None = None,
) -> tuple[list[np.ndarray], list[list[str]] | None]:
    """Validated token id arrays (and token strings for texts), or an ApiError naming the field. ``truncate``
    None: the route has no such option (inputs past the maximum are refused, with a hint that fits).
    Texts get the prompt (``prompt_name``, else the bundle's default) before them, as sentence-transformers
    does."""
    count = len(texts) if texts is not None else len(token_lists or [])
    check_inputs(kind, count, texts, ctx.settings)
    prompt = prompt_text(engine, prompt_name, texts is not None)
    if prompt and texts is not None:
        texts = [prompt + t for t in texts]
    if texts is None:
        sequences = check_token_lists(kind, token_lists or [], engine.bundle, truncate)
        strings = None
    else:
        tokenizer = engine.tokenizer
        if tokenizer is None:
            raise ApiError(422, f"{kind}: this model's bundle has no tokenizer; send token ids instead", kind)
        started = time.perf_counter()
        try:
            chars = sum(map(len, texts))
            if chars <= INLINE_TOKENIZE_CHARS:
                encoded = tokenizer.encode(texts, bool(truncate))
            else:
                encoded = await ctx.tokenize(request, chars, tokenizer.encode, texts, bool(truncate))
        except TooLong as exc:
            raise ApiError(422, too_long_message(kind, exc.index, exc.length, exc.limit, truncate is not None),
                           f"{kind}[{exc.index}]") from None
        ctx.metrics.tokenize_seconds.observe(time.perf_counter() - started)
        sequences = [e.ids for e in encoded]
        strings = [e.tokens or [] for e in encoded]
    check_total_tokens(kind, sequences, ctx.settings)
    return sequences, strings


async def pairs_from(request: Request, ctx: Context, engine: Engine, kind: str,
                     pairs: list[str | tuple[str, str]], truncate: bool, details: bool = False) -> list[Pair]:
    """Validated pair encodings for a cross-encoder or a pair classifier; ``kind`` names the request's field.
    Every text is checked as on /encode, and the pairs' tokens count against max_tokens_per_request.
    ``details``: with token strings and segments (TextTokenizer.encode_pairs)."""
    texts = [t for item in pairs for t in ((item,) if isinstance(item, str) else item)]
    check_inputs(kind, len(pairs), texts, ctx.settings)
    # a rerank's query is tokenized once per document: bound the characters tokenized, not only those sent
    chars = sum(map(len, texts))
    if chars > ctx.settings.max_body_bytes:
        raise ApiError(422, f"{kind}: {chars} characters to tokenize over all pairs (the query counts once per "
                            f"document); at most {ctx.settings.max_body_bytes} (max_body_bytes)", kind)
    tokenizer = engine.tokenizer
    if tokenizer is None:
        raise ApiError(422, f"{kind}: this model's bundle has no tokenizer", kind)
    started = time.perf_counter()
    try:
        if chars <= INLINE_TOKENIZE_CHARS:
            encoded = tokenizer.encode_pairs(pairs, truncate, details)
        else:
            encoded = await ctx.tokenize(request, chars, tokenizer.encode_pairs, pairs, truncate, details)
    except TooLong as exc:
        raise ApiError(422, too_long_message(kind, exc.index, exc.length, exc.limit, True),
                       f"{kind}[{exc.index}]") from None
    ctx.metrics.tokenize_seconds.observe(time.perf_counter() - started)
    check_total_tokens(kind, encoded, ctx.settings)
    return encoded
