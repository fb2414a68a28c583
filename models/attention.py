"""Multi-head attention written from the formula softmax(QK^T / sqrt(d_k)) V."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from .positional import apply_rotary


class PositionTerms(NamedTuple):
    """What a layer's positional scheme adds inside attention (absolute encodings add nothing here)."""

    rotary: tuple[torch.Tensor, torch.Tensor] | None = None  # cos, sin (T, d_k): turn Q and K by position
    score_bias: torch.Tensor | None = None  # (1, h, T_q, T_k): added to the scores (MPNet's relative bias)
    window: int | None = None  # sliding window: a query sees the keys within this distance of it


class MultiHeadAttention(nn.Module):
    """h heads of d_k = d_model / h over learned projections W_q, W_k, W_v and W_o (with biases unless
    ``bias`` is False, as in the rotary families).

    Self-attention when only ``query`` is given; cross-attention when ``key`` (and ``value``) come from
    another sequence.
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, bias: bool = True) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} is not divisible by n_heads {n_heads}")
        self.d_model = d_model
        self.n_heads = n_heads
        self.d_k = d_model // n_heads
        self.w_q = nn.Linear(d_model, d_model, bias=bias)
        self.w_k = nn.Linear(d_model, d_model, bias=bias)
        self.w_v = nn.Linear(d_model, d_model, bias=bias)
        self.w_o = nn.Linear(d_model, d_model, bias=bias)
        self.dropout = nn.Dropout(dropout)
        # Export-only switch: mask by adding -10000 to padded keys' scores, the pattern ONNX Runtime's
        # transformer optimizer fuses into one Attention operator (see ``forward``).
        self.additive_mask = False
        # Export-only switch for long-context graphs: attention in this many blocks of queries (see
        # ``_in_query_chunks``); 1 computes all T_q x T_k scores at once.
        self.query_chunks = 1

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        # (B, T, d_model) -> (B, T, h, d_k) -> (B, h, T, d_k)
        return x.view(b, t, self.n_heads, self.d_k).transpose(1, 2)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor | None = None,
        value: torch.Tensor | None = None,
        key_padding_mask: torch.Tensor | None = None,
        need_weights: bool = False,
        terms: PositionTerms | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend ``query`` (B, T_q, d_model) over ``key``/``value`` (B, T_k, d_model).

        ``key_padding_mask`` (B, T_k) is True (or 1) for real keys and False (0) for padding. A padded key
        gets exactly zero weight; a query whose keys are all padding gets all-zero weights and a zero
        context, never NaN. Returns the output (B, T_q, d_model) and, when ``need_weights``, the
        probabilities (B, h, T_q, T_k).
        """
        key = query if key is None else key
        value = key if value is None else value
        context, probs = self.attend(self.w_q(query), self.w_k(key), self.w_v(value), key_padding_mask, need_weights,
                                     terms)
        return self.w_o(context), probs

    def attend(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        need_weights: bool = False,
        terms: PositionTerms | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The attention itself on projected ``q`` (B, T_q, d_model) and ``k``/``v`` (B, T_k, d_model): the
        heads' contexts concatenated (B, T_q, d_model), before W_o. The packed graph projects unpadded tokens
        and calls this on them gathered into the padded layout."""
        b, t_q, _ = q.shape
        q = self._split_heads(q)  # (B, h, T_q, d_k)
        k = self._split_heads(k)  # (B, h, T_k, d_k)
        v = self._split_heads(v)  # (B, h, T_k, d_k)
        terms = terms or PositionTerms()
        if terms.rotary is not None:
            q = apply_rotary(q, *terms.rotary)  # (B, h, T_q, d_k), each position turned by its angles
            k = apply_rotary(k, *terms.rotary)  # (B, h, T_k, d_k)

        if self.query_chunks > 1 and not need_weights:
            context = self._in_query_chunks(q, k, v, key_padding_mask, terms)  # (B, h, T_q, d_k)
            probs = None
        else:
            probs = self._probabilities(q, k, key_padding_mask, terms)  # (B, h, T_q, T_k)
            context = torch.matmul(self.dropout(probs), v)  # (B, h, T_q, d_k)
        # (B, h, T_q, d_k) -> (B, T_q, h, d_k) -> (B, T_q, d_model): heads concatenated
        context = context.transpose(1, 2).reshape(b, t_q, self.d_model)
        return context, (probs if need_weights else None)

    def _probabilities(self, q: torch.Tensor, k: torch.Tensor, key_padding_mask: torch.Tensor | None,
                       terms: PositionTerms, first_query: int | torch.Tensor = 0) -> torch.Tensor:
        """softmax(q k^T / sqrt(d_k) + bias) with masked keys at exactly zero: (B, h, T_q, T_k)."""
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(self.d_k)  # (B, h, T_q, T_k)
        if terms.score_bias is not None:
            scores = scores + terms.score_bias  # (1, h, T_q, T_k) broadcast over the batch
        if terms.window is not None:
            # sliding window and padding together: a query always sees itself, so no real row is all masked.
            # Built for these query rows only (a (T, T) int64 table at 8192 tokens would be 512 MB).
            query_position = torch.arange(q.shape[2], device=q.device) + first_query  # (T_q,)
            key_position = torch.arange(k.shape[2], device=k.device)  # (T_k,)
            seen = ((key_position[None, :] >= query_position[:, None] - terms.window)
                    & (key_position[None, :] <= query_position[:, None] + terms.window))  # (T_q, T_k)
            seen = seen[None, None]  # (1, 1, T_q, T_k)
            if key_padding_mask is not None:
                seen = seen & key_padding_mask.to(torch.bool)[:, None, None, :]  # (B, 1, T_q, T_k)
            scores = scores.masked_fill(~seen, torch.finfo(scores.dtype).min)
            probs = torch.softmax(scores, dim=-1) * seen.to(scores.dtype)
        elif key_padding_mask is not None and self.additive_mask:
            # exp(-10000) is 0 in float32: real keys get the same weights as below. Only a query whose keys are
            # all padding differs (uniform instead of zero weights): in an encoder that is a padded position,
            # which is never served.
            pad = 1.0 - key_padding_mask.to(scores.dtype)[:, None, None, :]  # (B, 1, 1, T_k)
            probs = torch.softmax(scores + pad * -10000.0, dim=-1)
        elif key_padding_mask is not None:
            keep = key_padding_mask.to(torch.bool)[:, None, None, :]  # (B, 1, 1, T_k)
            # The most negative finite value, not -inf: an all-masked row stays finite (uniform), and the
            # multiplication below then zeroes it, so no NaN can appear.
            scores = scores.masked_fill(~keep, torch.finfo(scores.dtype).min)
            probs = torch.softmax(scores, dim=-1) * keep.to(scores.dtype)
        else:
            probs = torch.softmax(scores, dim=-1)
        return probs

    def _in_query_chunks(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                         key_padding_mask: torch.Tensor | None, terms: PositionTerms) -> torch.Tensor:
        """The same context, ``query_chunks`` blocks of queries one after another: each block's scores are
        (B, h, T_q / chunks, T_k), so a long input holds a fraction of the T_q x T_k scores at a time (ONNX
        Runtime frees each block's before the next). Every query row is computed exactly as without chunks."""
        chunks = self.query_chunks
        size = (q.shape[2] + chunks - 1) // chunks  # the last block may be shorter (or empty for tiny inputs)
        bias = terms.score_bias  # (1, h, T_q, T_k) or None
        parts = []
        for i in range(chunks):
            rows = slice(i * size, (i + 1) * size)
            block = PositionTerms(None, None if bias is None else bias[:, :, rows], terms.window)
            probs = self._probabilities(q[:, :, rows], k, key_padding_mask, block, i * size)  # (B, h, c, T_k)
            parts.append(torch.matmul(probs, v))  # (B, h, c, d_k)
        return torch.cat(parts, dim=2)  # (B, h, T_q, d_k)
