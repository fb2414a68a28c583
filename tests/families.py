"""Small random-weight checkpoints of every supported family, created by transformers itself
(``AutoModel.from_config``, saved with safetensors), each with a tokenizer of its family's kind built with the
``tokenizers`` library: WordPiece (BERT, DistilBERT, MPNet, NomicBERT), byte-level BPE (RoBERTa, ModernBERT),
Unigram (XLM-RoBERTa). Unusual shapes on purpose: head counts 3 and 5, d_model 60 (not a power of two),
several layers."""

from __future__ import annotations

import json
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

VOCAB = 320
SHAPE = {"hidden_size": 60, "num_attention_heads": 3, "num_hidden_layers": 3, "intermediate_size": 74,
         "vocab_size": VOCAB}


@dataclass(frozen=True)
class FamilySpec:
    model_type: str
    config: dict[str, Any]
    tokenizer: str  # "wordpiece" | "bpe" | "unigram"
    specials: tuple[str, ...]  # in id order from 0
    max_length: int  # the positions the model covers (what the bundle serves)
    extra: dict[str, Any] = field(default_factory=dict)


BERT_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
ROBERTA_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")

FAMILIES: dict[str, FamilySpec] = {
    "bert": FamilySpec("bert", {**SHAPE, "max_position_embeddings": 64}, "wordpiece", BERT_SPECIALS, 64),
    # RoBERTa's positions start at padding_idx + 1 = 2: 66 rows cover 64 tokens
    "roberta": FamilySpec("roberta", {**SHAPE, "max_position_embeddings": 66, "type_vocab_size": 1, "pad_token_id": 1,
                                      "bos_token_id": 0, "eos_token_id": 2}, "bpe", ROBERTA_SPECIALS, 64),
    "xlm-roberta": FamilySpec("xlm-roberta", {**SHAPE, "num_attention_heads": 5, "num_hidden_layers": 2,
                                              "max_position_embeddings": 66, "type_vocab_size": 1, "pad_token_id": 1,
                                              "bos_token_id": 0, "eos_token_id": 2}, "unigram",
                              ("<s>", "<pad>", "</s>", "<unk>"), 64),
    "distilbert": FamilySpec("distilbert", {"dim": 60, "n_heads": 3, "n_layers": 3, "hidden_dim": 74,
                                            "vocab_size": VOCAB, "max_position_embeddings": 64}, "wordpiece",
                             BERT_SPECIALS, 64),
    # 130 positions: distances up to 127 reach MPNet's logarithmic buckets (8 and beyond) in both directions
    "mpnet": FamilySpec("mpnet", {**SHAPE, "max_position_embeddings": 130, "pad_token_id": 1}, "wordpiece",
                        ROBERTA_SPECIALS, 128),
    "nomic_bert": FamilySpec("nomic_bert", {**SHAPE, "max_position_embeddings": 64}, "wordpiece", BERT_SPECIALS, 64),
    # 4 layers, global every 3rd (layers 0 and 3), sliding window 16 (8 each side) in layers 1 and 2
    "modernbert": FamilySpec("modernbert", {**SHAPE, "num_hidden_layers": 4, "max_position_embeddings": 96,
                                            "local_attention": 16, "global_attn_every_n_layers": 3,
                                            "pad_token_id": 0, "bos_token_id": 2, "eos_token_id": 3,
                                            "cls_token_id": 2, "sep_token_id": 3}, "bpe", BERT_SPECIALS, 96),
}

WORDS = ("the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "attention", "token", "query",
         "passage", "search", "model", "encoder", "vector", "city", "zurich", "paris")


def _wordpiece(specials: tuple[str, ...]) -> Tokenizer:
    vocab = {tok: i for i, tok in enumerate(specials)}
    for piece in [*string.ascii_lowercase, *string.digits, *string.punctuation, *WORDS,
                  *(f"##{c}" for c in string.ascii_lowercase + string.digits)]:
        vocab.setdefault(piece, len(vocab))
    cls, sep = (("[CLS]", "[SEP]") if "[CLS]" in vocab else ("<s>", "</s>"))
    unk = "[UNK]" if "[UNK]" in vocab else "<unk>"
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token=unk, max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}", pair=f"{cls} $A {sep} $B:1 {sep}:1",
        special_tokens=[(cls, vocab[cls]), (sep, vocab[sep])])
    return tok


def _byte_level_bpe(specials: tuple[str, ...], roberta: bool) -> Tokenizer:
    vocab = {tok: i for i, tok in enumerate(specials)}
    for ch in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[ch] = len(vocab)
    merges = []
    for word in ("Ġthe", "Ġquick", "Ġfox", "Ġtoken"):  # a few merges, so BPE merges something
        pieces = list(word)
        while len(pieces) > 1:
            merges.append((pieces[0], pieces[1]))
            pieces = [pieces[0] + pieces[1], *pieces[2:]]
            vocab.setdefault(pieces[0], len(vocab))
    unk = "<unk>" if "<unk>" in vocab else "[UNK]"
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=unk))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    if roberta:
        tok.post_processor = processors.RobertaProcessing(("</s>", vocab["</s>"]), ("<s>", vocab["<s>"]))
    else:
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    return tok


def _unigram(specials: tuple[str, ...]) -> Tokenizer:
    pieces = [(tok, 0.0) for tok in specials]
    pieces += [(f"▁{w}", -2.0) for w in WORDS]
    pieces += [(c, -5.0) for c in string.ascii_letters + string.digits + string.punctuation + "▁"]
    tok = Tokenizer(models.Unigram(pieces, unk_id=specials.index("<unk>"), byte_fallback=False))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC()])
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    return tok


def family_tokenizer(spec: FamilySpec) -> Tokenizer:
    if spec.tokenizer == "wordpiece":
        tok = _wordpiece(spec.specials)
    elif spec.tokenizer == "bpe":
        tok = _byte_level_bpe(spec.specials, roberta=spec.model_type == "roberta")
    else:
        tok = _unigram(spec.specials)
    tok.add_special_tokens(list(spec.specials))
    assert tok.get_vocab_size() <= VOCAB, tok.get_vocab_size()
    return tok


def _sharpen(model: Any) -> None:
    """Wider weights than transformers' initialization (std 0.02), whose near-zero scores make every attention
    row almost uniform: positions (offsets, relative bias, rotary angles) would then barely change the output,
    and a wrong one would pass. LayerNorm scales around 1 and non-zero biases check their mapping too."""
    import torch

    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() > 1:
                p.copy_(torch.randn(p.shape, generator=generator) * 0.2)
            elif "norm" in name.lower():
                p.copy_(1.0 + (torch.rand(p.shape, generator=generator) - 0.5) * (name.endswith("weight")))
                if name.endswith("bias"):
                    p.copy_((torch.rand(p.shape, generator=generator) - 0.5) * 0.2)
            else:
                p.copy_(torch.randn(p.shape, generator=generator) * 0.1)


def make_checkpoint(name: str, folder: Path, seed: int = 0, sentence_transformers: dict[str, Any] | None = None,
                    head: str | None = None, labels: list[str] | None = None, **config_extra: Any):
    """Write config.json + model.safetensors + tokenizer.json (+ sentence-transformers files) into ``folder``;
    return the transformers model (eval mode) as the reference. ``head``: "classify" makes a
    ``*ForSequenceClassification`` with ``labels`` (id2label), "mlm" a ``*ForMaskedLM`` (SPLADE's base)."""
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM, AutoModelForSequenceClassification

    spec = FAMILIES[name]
    torch.manual_seed(seed)
    extra = dict(config_extra)
    if labels is not None:
        extra.update(num_labels=len(labels), id2label=dict(enumerate(labels)),
                     label2id={label: i for i, label in enumerate(labels)})
    config = AutoConfig.for_model(spec.model_type, **spec.config, **extra)
    auto = {None: AutoModel, "classify": AutoModelForSequenceClassification, "mlm": AutoModelForMaskedLM}[head]
    model = auto.from_config(config, attn_implementation="eager").eval()
    _sharpen(model)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    family_tokenizer(spec).save(str(folder / "tokenizer.json"))
    if sentence_transformers:
        write_sentence_transformers_files(folder, **sentence_transformers)
    return model


def write_sentence_transformers_files(folder: Path, pooling: str = "mean", normalize: bool = False,
                                      max_seq_length: int | None = None, prompts: dict[str, str] | None = None,
                                      default_prompt_name: str | None = None) -> None:
    mode = {"mean": "pooling_mode_mean_tokens", "cls": "pooling_mode_cls_token", "last": "pooling_mode_lasttoken"}
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling").mkdir(exist_ok=True)
    pooling_config = {m: False for m in ("pooling_mode_mean_tokens", "pooling_mode_cls_token",
                                         "pooling_mode_max_tokens", "pooling_mode_lasttoken")}
    pooling_config[mode[pooling]] = True
    pooling_config["word_embedding_dimension"] = json.loads((folder / "config.json").read_text()).get(
        "hidden_size", 60)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling_config))
    if max_seq_length is not None:
        (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": max_seq_length}))
    if prompts is not None:
        (folder / "config_sentence_transformers.json").write_text(
            json.dumps({"prompts": prompts, "default_prompt_name": default_prompt_name}))
