"""Positional encodings: absolute (fixed sinusoids, a learned table), relative (MPNet's bucketed bias) and rotary."""

from __future__ import annotations

import math

import torch
from torch import nn


def sinusoidal_table(max_len: int, d_model: int) -> torch.Tensor:
    """PE(pos, 2i) = sin(pos / 10000^(2i/d_model)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d_model))."""
    position = torch.arange(max_len, dtype=torch.float64)[:, None]  # (T, 1)
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64)  # (ceil(d_model / 2),)
    angle = position / torch.pow(10000.0, two_i / d_model)  # (T, ceil(d_model / 2))
    table = torch.zeros(max_len, d_model, dtype=torch.float64)
    table[:, 0::2] = torch.sin(angle)
    table[:, 1::2] = torch.cos(angle[:, : d_model // 2])  # an odd d_model has one sine more than cosines
    return table.to(torch.float32)


class SinusoidalPositionalEncoding(nn.Module):
    """Fixed encoding; a buffer, so it is exported with the graph but never trained."""

    def __init__(self, max_len: int, d_model: int) -> None:
        super().__init__()
        self.register_buffer("table", sinusoidal_table(max_len, d_model), persistent=False)

    def forward(self, seq_len: int) -> torch.Tensor:
        return self.table[:seq_len]  # (T, d_model)

    def at(self, positions: torch.Tensor) -> torch.Tensor:
        return self.table[positions]  # (N,) -> (N, d_model)


class LearnedPositionalEncoding(nn.Module):
    """One trained vector per absolute position, as in BERT. RoBERTa and MPNet start counting at ``offset``
    (their padding_idx + 1): position i of a sequence reads row offset + i."""

    def __init__(self, max_len: int, d_model: int, offset: int = 0) -> None:
        super().__init__()
        self.offset = offset
        self.embedding = nn.Embedding(max_len, d_model)
        nn.init.normal_(self.embedding.weight, std=1.0 / math.sqrt(d_model))

    def forward(self, seq_len: int) -> torch.Tensor:
        return self.embedding.weight[self.offset : self.offset + seq_len]  # (T, d_model)

    def at(self, positions: torch.Tensor) -> torch.Tensor:
        return self.embedding(positions + self.offset)  # (N,) -> (N, d_model)


def relative_position_bucket(relative_position: torch.Tensor, num_buckets: int = 32,
                             max_distance: int = 128) -> torch.Tensor:
    """MPNet's (T5's bidirectional) buckets of key position - query position: half the buckets for each
    direction; within one, distances below num_buckets / 4 get their own bucket and longer ones share
    logarithmically wider buckets up to ``max_distance``. Written as MPNet computes it, in float32, so the
    same distances land in the same buckets."""
    n = -relative_position
    half = num_buckets // 2
    ret = (n < 0).to(torch.long) * half  # keys after the query use the upper half
    n = torch.abs(n)
    max_exact = half // 2
    is_small = n < max_exact
    val_if_large = max_exact + (
        torch.log(n.float() / max_exact) / math.log(max_distance / max_exact) * (half - max_exact)
    ).to(torch.long)
    val_if_large = torch.min(val_if_large, torch.full_like(val_if_large, half - 1))
    return ret + torch.where(is_small, n, val_if_large)


class RelativePositionBias(nn.Module):
    """A learned scalar per head and bucket of relative position, added to the attention scores before the
    softmax. The buckets of every distance up to the longest input are computed once here (a constant of the
    graph), so ONNX Runtime needs no logarithm of its own and cannot round a distance into another bucket."""

    def __init__(self, n_buckets: int, n_heads: int, max_len: int, max_distance: int = 128) -> None:
        super().__init__()
        self.max_len = max_len
        self.embedding = nn.Embedding(n_buckets, n_heads)
        distances = torch.arange(-(max_len - 1), max_len)  # (2 max_len - 1,): key - query
        self.register_buffer("buckets", relative_position_bucket(distances, 32, max_distance), persistent=False)

    def forward(self, seq_len: int) -> torch.Tensor:
        position = torch.arange(seq_len, device=self.buckets.device)
        relative = position[None, :] - position[:, None] + (self.max_len - 1)  # (T_q, T_k) index into buckets
        bias = self.embedding(self.buckets[relative])  # (T_q, T_k, h)
        return bias.permute(2, 0, 1)[None]  # (1, h, T_q, T_k)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (-x2, x1) over the two halves of the last axis: the 90-degree turn of each pair (x_i,
    x_{i + d/2}) in rotary's half-split layout."""
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class RotaryEmbedding(nn.Module):
    """RoFormer's rotary embedding: the pair (x_i, x_{i + d/2}) of a query or key at position m turns by the
    angle m * base^(-2i/d). q_m . k_n then depends on m - n only."""

    def __init__(self, d_k: int, base: float) -> None:
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, d_k, 2, dtype=torch.int64).float() / d_k))  # (d_k / 2,)
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin (T, d_k) of positions 0..T-1."""
        position = torch.arange(seq_len, device=self.inv_freq.device).float()
        freqs = position[:, None] * self.inv_freq[None, :]  # (T, d_k / 2)
        angles = torch.cat((freqs, freqs), dim=-1)  # (T, d_k)
        return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x (B, h, T, d_k) turned by its position's angles; cos and sin are (T, d_k)."""
    return x * cos + rotate_half(x) * sin
