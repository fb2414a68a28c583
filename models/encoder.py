"""The Transformer encoder: embeddings, N attention + feed-forward layers, pooling."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from bundle.config import EncoderConfig

from .attention import MultiHeadAttention
from .positional import LearnedPositionalEncoding, SinusoidalPositionalEncoding


def _activation(name: str) -> nn.Module:
    if name == "gelu":
        return nn.GELU()  # exact erf form, as BERT's "gelu"
    if name == "gelu_tanh":
        return nn.GELU(approximate="tanh")
    return nn.ReLU()


class FeedForward(nn.Module):
    """Position-wise: Linear(d_model, d_ff) -> activation -> Linear(d_ff, d_model)."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.w_1 = nn.Linear(config.d_model, config.d_ff)
        self.act = _activation(config.activation)
        self.w_2 = nn.Linear(config.d_ff, config.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_2(self.act(self.w_1(x)))


class Packing(NamedTuple):
    """Where the tokens of a packed batch (all its sequences' tokens in one row, no padding) sit in the padded
    (B, S) layout that attention needs. Everything else runs on the packed tokens: no work on padding."""

    slots: torch.Tensor  # (B, S): the packed index of each padded slot (a padding slot names any token)
    keep: torch.Tensor  # (T,): the flat index in B x S of each packed token
    mask: torch.Tensor  # (B, S): 1 for real tokens, 0 for padding


class EncoderLayer(nn.Module):
    """Attention and feed-forward blocks, each with a residual and a LayerNorm (post-LN or pre-LN)."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.norm_first = config.norm_first
        self.attention = MultiHeadAttention(config.d_model, config.n_heads, config.attention_dropout)
        self.norm_1 = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.feed_forward = FeedForward(config)
        self.norm_2 = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)

    def _self_attention(
        self, x: torch.Tensor, mask: torch.Tensor, need_weights: bool, packing: Packing | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if packing is None:
            return self.attention(x, key_padding_mask=mask, need_weights=need_weights)
        a = self.attention
        b, s = packing.mask.shape
        # (T, d_model) projected, then gathered into (B, S, d_model): only attention sees the padding
        q, k, v = (proj(x)[packing.slots] for proj in (a.w_q, a.w_k, a.w_v))
        context, probs = a.attend(q, k, v, packing.mask, need_weights)  # (B, S, d_model)
        return a.w_o(context.reshape(b * s, a.d_model)[packing.keep]), probs  # (T, d_model)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, need_weights: bool = False, packing: Packing | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``x`` is (B, T, d_model), or (T, d_model) packed tokens when ``packing`` says where they sit."""
        if self.norm_first:
            h = self.norm_1(x)
            attended, probs = self._self_attention(h, mask, need_weights, packing)
            x = x + self.dropout(attended)
            x = x + self.dropout(self.feed_forward(self.norm_2(x)))
        else:
            attended, probs = self._self_attention(x, mask, need_weights, packing)
            x = self.norm_1(x + self.dropout(attended))
            x = self.norm_2(x + self.dropout(self.feed_forward(x)))
        return x, probs


class EncoderOutput(NamedTuple):
    last_hidden_state: torch.Tensor  # (B, T, d_model)
    pooled: torch.Tensor  # (B, d_model), not normalized
    attentions: tuple[torch.Tensor, ...] | None  # n_layers x (B, h, T, T)


def pool(hidden: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """Mean over real tokens (padding excluded) or the first token."""
    if how == "cls":
        return hidden[:, 0]
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
        self.positional = (
            LearnedPositionalEncoding(config.max_len, config.d_model)
            if config.positional == "learned"
            else SinusoidalPositionalEncoding(config.max_len, config.d_model)
        )
        self.embedding_norm = (
            nn.LayerNorm(config.d_model, eps=config.layer_norm_eps) if config.embedding_layer_norm else None
        )
        self.embedding_dropout = nn.Dropout(config.dropout)
        self.layers = nn.ModuleList(EncoderLayer(config) for _ in range(config.n_layers))
        # pre-LN stacks leave the residual stream unnormalized: one LayerNorm closes them
        self.final_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps) if config.norm_first else None

    def embed(
        self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, T) ids, or (T,) packed ids with their ``positions`` in their own sequences."""
        x = self.token_embedding(input_ids)  # (B, T, d_model), or (T, d_model) packed
        # (1, T, d_model) broadcast over the batch, or each packed token's own position (T, d_model)
        pe = self.positional(input_ids.shape[1])[None] if positions is None else self.positional.at(positions)
        x = x + pe
        if self.token_type_embedding is not None:
            if token_type_ids is None:
                x = x + self.token_type_embedding.weight[0]  # single sequences are all type 0
            else:
                x = x + self.token_type_embedding(token_type_ids)
        if self.embedding_norm is not None:
            x = self.embedding_norm(x)
        return self.embedding_dropout(x)

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
        attentions: list[torch.Tensor] = []
        for layer in self.layers:
            x, probs = layer(x, attention_mask, need_weights=output_attentions)
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
        for layer in self.layers:
            x, _ = layer(x, packing.mask, packing=packing)
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
