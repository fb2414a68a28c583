"""The encoder families a Hugging Face folder may hold: each one's config.json read into an EncoderConfig, and
its safetensors names (and fused tensors) mapped onto this package's parameters.

transformers is never imported here: it is a test reference only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from bundle.config import EncoderConfig

Tensors = dict[str, torch.Tensor]
_ACTIVATIONS = {"gelu": "gelu", "relu": "relu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
                "silu": "silu", "swish": "silu"}


class CheckpointError(ValueError):
    """The folder is not a checkpoint this encoder can represent; the message says what differs."""


@dataclass(frozen=True)
class Family:
    name: str
    model_types: tuple[str, ...]
    example: str  # a model users serve, for the README and messages
    config: Callable[[dict[str, Any]], dict[str, Any]]  # config.json -> EncoderConfig fields
    weights: Callable[[Tensors, EncoderConfig], Tensors]  # their tensors -> our state dict
    prefixes: tuple[str, ...]  # the base model's name inside task checkpoints (BertForMaskedLM: "bert.")


def _need(hf: dict[str, Any], key: str) -> Any:
    if key not in hf:
        raise CheckpointError(f"config.json lacks {key!r}")
    return hf[key]


def _activation(hf: dict[str, Any], key: str, default: str) -> str:
    act = hf.get(key, default)
    if act not in _ACTIVATIONS:
        raise CheckpointError(f"{key} is {act!r}, supported: {', '.join(_ACTIVATIONS)}")
    return _ACTIVATIONS[act]


def _refuse(problems: list[str]) -> None:
    if problems:
        raise CheckpointError("unsupported architecture: " + "; ".join(problems))


def _take(tensors: Tensors, name: str) -> torch.Tensor:
    if name not in tensors:
        raise CheckpointError(f"model.safetensors lacks {name!r}")
    return tensors[name]


def _linear(out: Tensors, ours: str, tensors: Tensors, theirs: str, bias: bool = True) -> None:
    out[f"{ours}.weight"] = _take(tensors, f"{theirs}.weight")
    if bias:
        out[f"{ours}.bias"] = _take(tensors, f"{theirs}.bias")


# -- BERT, RoBERTa, XLM-RoBERTa, CamemBERT: one layout; RoBERTa's positions start at padding_idx + 1 --

def _bert_config(hf: dict[str, Any]) -> dict[str, Any]:
    problems = []
    pos = hf.get("position_embedding_type", "absolute")
    if pos != "absolute":
        problems.append(f"position_embedding_type is {pos!r}, only 'absolute' is supported")
    if hf.get("is_decoder") or hf.get("add_cross_attention"):
        problems.append("the checkpoint is a decoder (is_decoder/add_cross_attention), not an encoder")
    _refuse(problems)
    pad = hf.get("pad_token_id", 0) or 0
    roberta_like = hf.get("model_type") != "bert"
    return dict(
        vocab_size=_need(hf, "vocab_size"), d_model=_need(hf, "hidden_size"), n_heads=_need(hf, "num_attention_heads"),
        n_layers=_need(hf, "num_hidden_layers"), d_ff=_need(hf, "intermediate_size"),
        max_len=_need(hf, "max_position_embeddings"), positional="learned",
        position_offset=pad + 1 if roberta_like else 0, type_vocab_size=hf.get("type_vocab_size", 2),
        activation=_activation(hf, "hidden_act", "gelu"), embedding_layer_norm=True,
        layer_norm_eps=hf.get("layer_norm_eps", 1e-12), dropout=hf.get("hidden_dropout_prob", 0.1),
        attention_dropout=hf.get("attention_probs_dropout_prob", 0.1), pad_token_id=pad,
    )


def _post_ln_weights(tensors: Tensors, cfg: EncoderConfig, layer: str, parts: dict[str, str]) -> Tensors:
    """Embeddings, then every layer's linear maps and LayerNorms by their names under ``layer``.{i}: the
    layout BERT, DistilBERT and MPNet share (with biases everywhere)."""
    out: Tensors = {}
    _embeddings(out, tensors, cfg)
    for i in range(cfg.n_layers):
        for ours, theirs in parts.items():
            _linear(out, f"layers.{i}.{ours}", tensors, f"{layer}.{i}.{theirs}")
    return out


def _embeddings(out: Tensors, tensors: Tensors, cfg: EncoderConfig) -> None:
    out["token_embedding.weight"] = _take(tensors, "embeddings.word_embeddings.weight")
    if cfg.positional == "learned":
        out["positional.embedding.weight"] = _take(tensors, "embeddings.position_embeddings.weight")
    if cfg.type_vocab_size:
        out["token_type_embedding.weight"] = _take(tensors, "embeddings.token_type_embeddings.weight")
    _linear(out, "embedding_norm", tensors, "embeddings.LayerNorm")


def _bert_weights(tensors: Tensors, cfg: EncoderConfig) -> Tensors:
    return _post_ln_weights(tensors, cfg, "encoder.layer", {
        "attention.w_q": "attention.self.query", "attention.w_k": "attention.self.key",
        "attention.w_v": "attention.self.value", "attention.w_o": "attention.output.dense",
        "norm_1": "attention.output.LayerNorm", "feed_forward.w_1": "intermediate.dense",
        "feed_forward.w_2": "output.dense", "norm_2": "output.LayerNorm"})


# -- DistilBERT: no token types, its own layer names, LayerNorm eps fixed at 1e-12 --

def _distilbert_config(hf: dict[str, Any]) -> dict[str, Any]:
    return dict(
        vocab_size=_need(hf, "vocab_size"), d_model=_need(hf, "dim"), n_heads=_need(hf, "n_heads"),
        n_layers=_need(hf, "n_layers"), d_ff=_need(hf, "hidden_dim"), max_len=_need(hf, "max_position_embeddings"),
        positional="learned", type_vocab_size=0, activation=_activation(hf, "activation", "gelu"),
        embedding_layer_norm=True, layer_norm_eps=1e-12, dropout=hf.get("dropout", 0.1),
        attention_dropout=hf.get("attention_dropout", 0.1), pad_token_id=hf.get("pad_token_id", 0) or 0,
    )


def _distilbert_weights(tensors: Tensors, cfg: EncoderConfig) -> Tensors:
    return _post_ln_weights(tensors, cfg, "transformer.layer", {
        "attention.w_q": "attention.q_lin", "attention.w_k": "attention.k_lin", "attention.w_v": "attention.v_lin",
        "attention.w_o": "attention.out_lin", "norm_1": "sa_layer_norm", "feed_forward.w_1": "ffn.lin1",
        "feed_forward.w_2": "ffn.lin2", "norm_2": "output_layer_norm"})


# -- MPNet: RoBERTa-style positions plus one relative-position bias table shared by every layer --

def _mpnet_config(hf: dict[str, Any]) -> dict[str, Any]:
    return dict(
        vocab_size=_need(hf, "vocab_size"), d_model=_need(hf, "hidden_size"), n_heads=_need(hf, "num_attention_heads"),
        n_layers=_need(hf, "num_hidden_layers"), d_ff=_need(hf, "intermediate_size"),
        max_len=_need(hf, "max_position_embeddings"), positional="learned",
        position_offset=2,  # MPNet's padding_idx is 1 whatever config.json says
        relative_buckets=hf.get("relative_attention_num_buckets", 32), type_vocab_size=0,
        activation=_activation(hf, "hidden_act", "gelu"), embedding_layer_norm=True,
        layer_norm_eps=hf.get("layer_norm_eps", 1e-12), dropout=hf.get("hidden_dropout_prob", 0.1),
        attention_dropout=hf.get("attention_probs_dropout_prob", 0.1), pad_token_id=hf.get("pad_token_id", 1),
    )


def _mpnet_weights(tensors: Tensors, cfg: EncoderConfig) -> Tensors:
    out = _post_ln_weights(tensors, cfg, "encoder.layer", {
        "attention.w_q": "attention.attn.q", "attention.w_k": "attention.attn.k",
        "attention.w_v": "attention.attn.v", "attention.w_o": "attention.attn.o",
        "norm_1": "attention.LayerNorm", "feed_forward.w_1": "intermediate.dense",
        "feed_forward.w_2": "output.dense", "norm_2": "output.LayerNorm"})
    out["relative_bias.embedding.weight"] = _take(tensors, "encoder.relative_attention_bias.weight")
    return out


# -- rotary families --

def _rope_theta(params: Any, default: float, where: str) -> float:
    params = params or {}
    if params.get("rope_type", "default") != "default":
        raise CheckpointError(f"{where}: rope_type {params['rope_type']!r} is not supported, only 'default'")
    if params.get("partial_rotary_factor", 1.0) != 1.0:
        raise CheckpointError(f"{where}: partial_rotary_factor {params['partial_rotary_factor']} is not supported")
    return float(params.get("rope_theta", default))


def _nomic_config(hf: dict[str, Any]) -> dict[str, Any]:
    if "n_embd" in hf:
        raise CheckpointError("config.json is nomic-ai's original (n_embd, n_head, ...), which needs "
                              "trust_remote_code: load it with transformers >= 5 and save_pretrained() it first")
    d_model, n_heads = _need(hf, "hidden_size"), _need(hf, "num_attention_heads")
    if hf.get("head_dim") not in (None, d_model // n_heads):
        raise CheckpointError(f"head_dim {hf['head_dim']} differs from hidden_size / num_attention_heads")
    return dict(
        vocab_size=_need(hf, "vocab_size"), d_model=d_model, n_heads=n_heads, n_layers=_need(hf, "num_hidden_layers"),
        d_ff=_need(hf, "intermediate_size"), max_len=_need(hf, "max_position_embeddings"), positional="rotary",
        rotary_base=_rope_theta(hf.get("rope_parameters"), 1000.0, "rope_parameters"),
        type_vocab_size=hf.get("type_vocab_size", 2), activation=_activation(hf, "hidden_act", "silu"), gated=True,
        bias=False, embedding_layer_norm=True, layer_norm_eps=hf.get("layer_norm_eps", 1e-12),
        dropout=hf.get("hidden_dropout_prob", 0.0), attention_dropout=hf.get("attention_probs_dropout_prob", 0.0),
        pad_token_id=hf.get("pad_token_id", 0) or 0,
    )


def _nomic_weights(tensors: Tensors, cfg: EncoderConfig) -> Tensors:
    """transformers' names, or nomic-ai's original ones (fused Wqkv, fc11 = up, fc12 = gate)."""
    out: Tensors = {}
    original = "emb_ln.weight" in tensors
    out["token_embedding.weight"] = _take(tensors, "embeddings.word_embeddings.weight")
    if cfg.type_vocab_size:
        out["token_type_embedding.weight"] = _take(tensors, "embeddings.token_type_embeddings.weight")
    _linear(out, "embedding_norm", tensors, "emb_ln" if original else "embeddings.LayerNorm")
    for i in range(cfg.n_layers):
        ours = f"layers.{i}"
        if original:
            theirs = f"encoder.layers.{i}"
            q, k, v = _take(tensors, f"{theirs}.attn.Wqkv.weight").chunk(3, dim=0)
            gate, up, down = (f"{theirs}.mlp.{n}.weight" for n in ("fc12", "fc11", "fc2"))
            names = {"w_o": f"{theirs}.attn.out_proj", "norm_1": f"{theirs}.norm1", "norm_2": f"{theirs}.norm2"}
        else:
            theirs = f"layers.{i}"
            q, k, v = (_take(tensors, f"{theirs}.self_attn.{n}_proj.weight") for n in "qkv")
            gate, up, down = (f"{theirs}.mlp.{n}_proj.weight" for n in ("gate", "up", "down"))
            names = {"w_o": f"{theirs}.self_attn.o_proj", "norm_1": f"{theirs}.post_attention_layernorm",
                     "norm_2": f"{theirs}.post_mlp_layernorm"}
        out[f"{ours}.attention.w_q.weight"], out[f"{ours}.attention.w_k.weight"] = q, k
        out[f"{ours}.attention.w_v.weight"] = v
        _linear(out, f"{ours}.attention.w_o", tensors, names["w_o"], bias=False)
        out[f"{ours}.feed_forward.w_1.weight"] = torch.cat((_take(tensors, gate), _take(tensors, up)), dim=0)
        out[f"{ours}.feed_forward.w_2.weight"] = _take(tensors, down)
        _linear(out, f"{ours}.norm_1", tensors, names["norm_1"])
        _linear(out, f"{ours}.norm_2", tensors, names["norm_2"])
    return out


def _global_every(hf: dict[str, Any], n_layers: int) -> int:
    """ModernBERT's layer pattern as one number: global every n-th layer from layer 0, sliding between."""
    every = hf.get("global_attn_every_n_layers", 3)
    types = hf.get("layer_types")
    if types is None:
        return every
    if "sliding_attention" not in types:
        return 1
    globals_ = [i for i, t in enumerate(types) if t == "full_attention"]
    every = globals_[1] if len(globals_) > 1 else n_layers
    expected = ["sliding_attention" if i % every else "full_attention" for i in range(len(types))]
    if list(types) != expected:
        raise CheckpointError(f"layer_types {types} is not 'global every n layers from the first': unsupported")
    return every


def _modernbert_config(hf: dict[str, Any]) -> dict[str, Any]:
    n_layers = _need(hf, "num_hidden_layers")
    if hf.get("attention_bias", False) != hf.get("mlp_bias", False):
        raise CheckpointError("attention_bias and mlp_bias differ: unsupported")
    rope = hf.get("rope_parameters") or {}
    every = _global_every(hf, n_layers)
    window = hf.get("local_attention", 128) if every != 1 else 0
    return dict(
        vocab_size=_need(hf, "vocab_size"), d_model=_need(hf, "hidden_size"), n_heads=_need(hf, "num_attention_heads"),
        n_layers=n_layers, d_ff=_need(hf, "intermediate_size"), max_len=_need(hf, "max_position_embeddings"),
        positional="rotary",
        rotary_base=_rope_theta(rope.get("full_attention"), hf.get("global_rope_theta", 160000.0),
                                "rope_parameters.full_attention"),
        local_rotary_base=_rope_theta(rope.get("sliding_attention"), hf.get("local_rope_theta", 10000.0),
                                      "rope_parameters.sliding_attention"),
        local_window=window, global_every=every if window else 1, type_vocab_size=0,
        activation=_activation(hf, "hidden_activation", "gelu"), gated=True, bias=bool(hf.get("attention_bias", False)),
        norm_bias=bool(hf.get("norm_bias", False)), norm_first=True, first_attention_norm=False,
        embedding_layer_norm=True, layer_norm_eps=hf.get("norm_eps", 1e-5), dropout=hf.get("mlp_dropout", 0.0),
        attention_dropout=hf.get("attention_dropout", 0.0), pad_token_id=hf.get("pad_token_id", 0) or 0,
    )


def _modernbert_weights(tensors: Tensors, cfg: EncoderConfig) -> Tensors:
    out: Tensors = {"token_embedding.weight": _take(tensors, "embeddings.tok_embeddings.weight")}
    _linear(out, "embedding_norm", tensors, "embeddings.norm", cfg.norm_bias)
    for i in range(cfg.n_layers):
        ours, theirs = f"layers.{i}", f"layers.{i}"
        for p in ("weight", "bias") if cfg.bias else ("weight",):
            q, k, v = _take(tensors, f"{theirs}.attn.Wqkv.{p}").chunk(3, dim=0)
            for name, t in (("w_q", q), ("w_k", k), ("w_v", v)):
                out[f"{ours}.attention.{name}.{p}"] = t
        _linear(out, f"{ours}.attention.w_o", tensors, f"{theirs}.attn.Wo", cfg.bias)
        _linear(out, f"{ours}.feed_forward.w_1", tensors, f"{theirs}.mlp.Wi", cfg.bias)
        _linear(out, f"{ours}.feed_forward.w_2", tensors, f"{theirs}.mlp.Wo", cfg.bias)
        if i > 0:
            _linear(out, f"{ours}.norm_1", tensors, f"{theirs}.attn_norm", cfg.norm_bias)
        _linear(out, f"{ours}.norm_2", tensors, f"{theirs}.mlp_norm", cfg.norm_bias)
    _linear(out, "final_norm", tensors, "final_norm", cfg.norm_bias)
    return out


FAMILIES = (
    Family("BERT", ("bert",), "sentence-transformers/all-MiniLM-L6-v2", _bert_config, _bert_weights, ("bert.",)),
    Family("RoBERTa / XLM-RoBERTa / CamemBERT", ("roberta", "xlm-roberta", "camembert"),
           "intfloat/multilingual-e5-small", _bert_config, _bert_weights, ("roberta.",)),
    Family("DistilBERT", ("distilbert",), "sentence-transformers/msmarco-distilbert-base-v4", _distilbert_config,
           _distilbert_weights, ("distilbert.",)),
    Family("MPNet", ("mpnet",), "sentence-transformers/all-mpnet-base-v2", _mpnet_config, _mpnet_weights,
           ("mpnet.",)),
    Family("NomicBERT", ("nomic_bert",), "nomic-ai/nomic-embed-text-v1.5", _nomic_config, _nomic_weights,
           ("nomic_bert.",)),
    Family("ModernBERT", ("modernbert",), "Alibaba-NLP/gte-modernbert-base", _modernbert_config,
           _modernbert_weights, ("model.",)),
)
SUPPORTED_MODEL_TYPES = tuple(t for f in FAMILIES for t in f.model_types)


def family_of(hf: dict[str, Any]) -> Family:
    model_type = hf.get("model_type")
    for family in FAMILIES:
        if model_type in family.model_types:
            return family
    raise CheckpointError(f"unsupported architecture: model_type is {model_type!r}, "
                          f"supported: {', '.join(SUPPORTED_MODEL_TYPES)}")


def encoder_config_from_hf(hf: dict[str, Any], pooling: str) -> EncoderConfig:
    fields = family_of(hf).config(hf)
    try:
        return EncoderConfig(**fields, pooling=pooling)
    except ValueError as exc:
        raise CheckpointError(f"unsupported architecture: {exc}") from None


def state_dict_from_hf(family: Family, tensors: Tensors, cfg: EncoderConfig) -> Tensors:
    """Our parameters from their tensors: task prefixes stripped, old TF-style gamma/beta renamed, fp32."""
    return {k: v.to(torch.float32) for k, v in family.weights(clean_names(family, tensors), cfg).items()}


def clean_names(family: Family, tensors: Tensors) -> Tensors:
    clean = {}
    for name, tensor in tensors.items():
        for prefix in family.prefixes:
            if name.startswith(prefix):
                name = name[len(prefix):]
                break
        name = name.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
        clean[name] = tensor
    return clean
