"""tokenizer.json for the bundle: the source's (with its fixed truncation and padding removed) or a byte-level
one for the tiny model."""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def prepare_tokenizer(source: Path) -> Tokenizer:
    """Load and clear padding and truncation: the service pads per batch and checks the maximum itself.

    MiniLM's file pads to 128 and truncates at 128 by default, which silently shortens long texts.
    """
    tokenizer = Tokenizer.from_file(str(source))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def byte_level_tokenizer() -> Tokenizer:
    """Specials first, then one token per byte: any Unicode text maps to ids < 5 + 256."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {tok: i for i, tok in enumerate(SPECIALS)}
    for ch in sorted(alphabet):
        vocab[ch] = len(vocab)
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(list(SPECIALS))
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return tokenizer


def special_tokens(tokenizer: Tokenizer) -> dict[str, int]:
    """The BERT-style special tokens the vocabulary has, by name."""
    found = {}
    for name in SPECIALS:
        token_id = tokenizer.token_to_id(name)
        if token_id is not None:
            found[name] = token_id
    return found
