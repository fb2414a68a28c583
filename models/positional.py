"""Absolute positional encodings: fixed sinusoids or a learned table."""

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
    """One trained vector per absolute position, as in BERT."""

    def __init__(self, max_len: int, d_model: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(max_len, d_model)
        nn.init.normal_(self.embedding.weight, std=1.0 / math.sqrt(d_model))

    def forward(self, seq_len: int) -> torch.Tensor:
        return self.embedding.weight[:seq_len]  # (T, d_model)

    def at(self, positions: torch.Tensor) -> torch.Tensor:
        return self.embedding(positions)  # (N,) -> (N, d_model)
