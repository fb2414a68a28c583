"""The one description of an encoder's architecture, shared by every submodule and written to the bundle."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

Positional = Literal["sinusoidal", "learned"]
Activation = Literal["gelu", "relu", "gelu_tanh"]
Pooling = Literal["mean", "cls"]


@dataclass(frozen=True)
class EncoderConfig:
    """Architecture of a Transformer encoder.

    Pure Python (no torch) so that anything may read it; it round-trips through JSON as the bundle's
    ``architecture`` entry.
    """

    vocab_size: int
    d_model: int
    n_heads: int
    n_layers: int
    d_ff: int
    max_len: int
    positional: Positional = "sinusoidal"
    type_vocab_size: int = 0  # 0: no token-type embedding
    activation: Activation = "gelu"
    norm_first: bool = False  # pre-LN when True, post-LN (BERT) when False
    embedding_layer_norm: bool = False
    layer_norm_eps: float = 1e-5
    dropout: float = 0.1
    attention_dropout: float = 0.1
    pad_token_id: int = 0
    pooling: Pooling = "mean"  # the pooled output of the graph

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")
        for name in ("vocab_size", "d_model", "n_heads", "n_layers", "d_ff", "max_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.positional not in ("sinusoidal", "learned"):
            raise ValueError(f"positional must be 'sinusoidal' or 'learned', got {self.positional!r}")
        if self.activation not in ("gelu", "relu", "gelu_tanh"):
            raise ValueError(f"activation must be gelu, relu or gelu_tanh, got {self.activation!r}")
        if self.pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', got {self.pooling!r}")

    @property
    def d_k(self) -> int:
        return self.d_model // self.n_heads

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EncoderConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown EncoderConfig fields: {', '.join(unknown)}")
        return cls(**data)
