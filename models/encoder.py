"""The Transformer encoder: embeddings, N attention + feed-forward layers, pooling."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from bundle.config import EncoderConfig

from .attention import MultiHeadAttention, PositionTerms
from .positional import (
    LearnedPositionalEncoding,
    RelativePositionBias,
    RotaryEmbedding,
    SinusoidalPositionalEncoding,
)


def _activation(name: str) -> nn.Module:
    if name == "gelu":
        return nn.GELU()  # exact erf form, as BERT's "gelu"
    if name == "gelu_tanh":
        return nn.GELU(approximate="tanh")
    if name == "silu":
        return nn.SiLU()
    return nn.ReLU()


class FeedForward(nn.Module):
    """Position-wise: Linear(d_model, d_ff) -> activation -> Linear(d_ff, d_model); or gated (GLU, as
    SwiGLU and GeGLU): W_1 gives 2 d_ff values, the first half activated times the second half."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.gated = config.gated
        self.w_1 = nn.Linear(config.d_model, config.d_ff * (2 if config.gated else 1), bias=config.bias)
        self.act = _activation(config.activation)
        self.w_2 = nn.Linear(config.d_ff, config.d_model, bias=config.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gated:
            h, gate = self.w_1(x).chunk(2, dim=-1)  # (..., d_ff) each
            return self.w_2(self.act(h) * gate)
        return self.w_2(self.act(self.w_1(x)))


class Packing(NamedTuple):
    """Where the tokens of a packed batch (all its sequences' tokens in one row, no padding) sit in the padded
    (B, S) layout that attention needs. Everything else runs on the packed tokens: no work on padding."""

    slots: torch.Tensor  # (B, S): the packed index of each padded slot (a padding slot names any token)
    keep: torch.Tensor  # (T,): the flat index in B x S of each packed token
    mask: torch.Tensor  # (B, S): 1 for real tokens, 0 for padding


class EncoderLayer(nn.Module):
    """Attention and feed-forward blocks, each with a residual and a LayerNorm (post-LN or pre-LN)."""

    def __init__(self, config: EncoderConfig, index: int = 0) -> None:
        super().__init__()
        self.norm_first = config.norm_first
        self.is_global = config.is_global(index)
        self.attention = MultiHeadAttention(config.d_model, config.n_heads, config.attention_dropout, config.bias)
        norm = lambda: nn.LayerNorm(config.d_model, eps=config.layer_norm_eps, bias=config.norm_bias)  # noqa: E731
        # pre-LN without a first norm (ModernBERT): the embeddings' LayerNorm already normalized layer 0's input
        skip = config.norm_first and index == 0 and not config.first_attention_norm
        self.norm_1 = nn.Identity() if skip else norm()
        self.feed_forward = FeedForward(config)
        self.norm_2 = norm()
        self.dropout = nn.Dropout(config.dropout)

    def _self_attention(
        self, x: torch.Tensor, mask: torch.Tensor, need_weights: bool, packing: Packing | None,
        terms: PositionTerms | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if packing is None:
            return self.attention(x, key_padding_mask=mask, need_weights=need_weights, terms=terms)
        a = self.attention
        b, s = packing.mask.shape
        # (T, d_model) projected, then gathered into (B, S, d_model): only attention sees the padding
        q, k, v = (proj(x)[packing.slots] for proj in (a.w_q, a.w_k, a.w_v))
        context, probs = a.attend(q, k, v, packing.mask, need_weights, terms)  # (B, S, d_model)
        return a.w_o(context.reshape(b * s, a.d_model)[packing.keep]), probs  # (T, d_model)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, need_weights: bool = False, packing: Packing | None = None,
        terms: PositionTerms | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``x`` is (B, T, d_model), or (T, d_model) packed tokens when ``packing`` says where they sit."""
        if self.norm_first:
            h = self.norm_1(x)
            attended, probs = self._self_attention(h, mask, need_weights, packing, terms)
            x = x + self.dropout(attended)
            x = x + self.dropout(self.feed_forward(self.norm_2(x)))
        else:
            attended, probs = self._self_attention(x, mask, need_weights, packing, terms)
            x = self.norm_1(x + self.dropout(attended))
            x = self.norm_2(x + self.dropout(self.feed_forward(x)))
        return x, probs


class EncoderOutput(NamedTuple):
    last_hidden_state: torch.Tensor  # (B, T, d_model)
    pooled: torch.Tensor  # (B, d_model), not normalized
    attentions: tuple[torch.Tensor, ...] | None  # n_layers x (B, h, T, T)


def pool(hidden: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """Mean over real tokens (padding excluded), the first token, or the last real token."""
    if how == "cls":
        return hidden[:, 0]
    if how == "last":
        last = (mask.to(torch.int64).sum(dim=1) - 1).clamp(min=0)  # (B,) right padding: the last real index
        return hidden[torch.arange(hidden.shape[0]), last]
    weights = mask.to(hidden.dtype)[:, :, None]  # (B, T, 1)
    # clamp as sentence-transformers does, so an all-padding row gives zeros instead of NaN
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)


class Encoder(nn.Module):
    """Token (+ token-type) embedding + positional encoding (+ LayerNorm), then ``n_layers`` layers."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.d_model)
        self.token_type_embedding = (
            nn.Embedding(config.type_vocab_size, config.d_model) if config.type_vocab_size else None
        )
        if config.positional == "learned":
            self.positional = LearnedPositionalEncoding(config.max_len, config.d_model, config.position_offset)
        elif config.positional == "rotary":
            self.positional = None  # positions enter through Q and K (see position_terms)
        else:
            self.positional = SinusoidalPositionalEncoding(config.max_len, config.d_model)
        self.relative_bias = (
            RelativePositionBias(config.relative_buckets, config.n_heads, config.max_len, config.relative_max_distance)
            if config.relative_buckets else None
        )
        self.rotary = RotaryEmbedding(config.d_k, config.rotary_base) if config.rotary else None
        self.local_rotary = (
            RotaryEmbedding(config.d_k, config.local_rotary_base) if config.rotary and config.local_window else None
        )
        self.embedding_norm = (
            nn.LayerNorm(config.d_model, eps=config.layer_norm_eps, bias=config.norm_bias)
            if config.embedding_layer_norm else None
        )
        self.embedding_dropout = nn.Dropout(config.dropout)
        self.layers = nn.ModuleList(EncoderLayer(config, i) for i in range(config.n_layers))
        # pre-LN stacks leave the residual stream unnormalized: one LayerNorm closes them
        self.final_norm = (
            nn.LayerNorm(config.d_model, eps=config.layer_norm_eps, bias=config.norm_bias)
            if config.norm_first else None
        )

    def embed(
        self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, T) ids, or (T,) packed ids with their ``positions`` in their own sequences."""
        x = self.token_embedding(input_ids)  # (B, T, d_model), or (T, d_model) packed
        if self.positional is not None:
            # (1, T, d_model) broadcast over the batch, or each packed token's own position (T, d_model)
            x = x + (self.positional(input_ids.shape[1])[None] if positions is None else self.positional.at(positions))
        if self.token_type_embedding is not None:
            if token_type_ids is None:
                x = x + self.token_type_embedding.weight[0]  # single sequences are all type 0
            else:
                x = x + self.token_type_embedding(token_type_ids)
        if self.embedding_norm is not None:
            x = self.embedding_norm(x)
        return self.embedding_dropout(x)

    def position_terms(self, seq_len: int) -> tuple[PositionTerms, PositionTerms]:
        """What attention adds on global and on sliding-window layers, for (padded) sequences of ``seq_len``."""
        bias = self.relative_bias(seq_len) if self.relative_bias is not None else None  # (1, h, T, T)
        rotary = self.rotary(seq_len) if self.rotary is not None else None  # cos, sin (T, d_k)
        global_terms = PositionTerms(rotary, bias, None)
        if not self.config.local_window:
            return global_terms, global_terms
        window = self.config.local_window // 2  # keys within this distance of the query
        local_rotary = self.local_rotary(seq_len) if self.local_rotary is not None else rotary
        return global_terms, PositionTerms(local_rotary, bias, window)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        output_attentions: bool = False,
    ) -> EncoderOutput:
        """``input_ids`` and ``attention_mask`` are (B, T); the mask is 1 for real tokens, 0 for padding."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        x = self.embed(input_ids, token_type_ids)
        terms = self.position_terms(input_ids.shape[1])
        attentions: list[torch.Tensor] = []
        for layer in self.layers:
            x, probs = layer(x, attention_mask, need_weights=output_attentions, terms=terms[not layer.is_global])
            if probs is not None:
                attentions.append(probs)
        if self.final_norm is not None:
            x = self.final_norm(x)
        pooled = pool(x, attention_mask, self.config.pooling)
        return EncoderOutput(x, pooled, tuple(attentions) if output_attentions else None)

    def forward_packed(self, input_ids: torch.Tensor, positions: torch.Tensor, packing: Packing) -> torch.Tensor:
        """Last hidden states (T, d_model) of a packed batch: ``input_ids`` and ``positions`` are (T,), every
        sequence's tokens one after another. The same numbers as ``forward`` on the padded batch, without
        computing the padded positions outside attention."""
        x = self.embed(input_ids, positions=positions)
        terms = self.position_terms(packing.mask.shape[1])  # attention runs in the padded (B, S) layout
        for layer in self.layers:
            x, _ = layer(x, packing.mask, packing=packing, terms=terms[not layer.is_global])
        if self.final_norm is not None:
            x = self.final_norm(x)
        return x


def tiny_config(vocab_size: int = 1000, max_len: int = 128) -> EncoderConfig:
    """A small model for fast tests and demos."""
    return EncoderConfig(
        vocab_size=vocab_size, d_model=64, n_heads=4, n_layers=2, d_ff=128, max_len=max_len,
        positional="sinusoidal", activation="gelu", pooling="mean",
    )


def tiny_encoder(seed: int = 0, config: EncoderConfig | None = None) -> Encoder:
    """A seeded random encoder: the same seed gives the same weights on every machine."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = Encoder(config or tiny_config())
    finally:
        torch.random.set_rng_state(generator_state)
    return model.eval()
