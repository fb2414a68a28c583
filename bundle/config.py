"""The one description of an encoder's architecture, shared by every submodule and written to the bundle."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

Positional = Literal["sinusoidal", "learned", "rotary"]
Activation = Literal["gelu", "relu", "gelu_tanh", "silu"]
Pooling = Literal["mean", "cls", "last"]
POSITIONALS = ("sinusoidal", "learned", "rotary")
ACTIVATIONS = ("gelu", "relu", "gelu_tanh", "silu")
POOLINGS = ("mean", "cls", "last")


@dataclass(frozen=True)
class EncoderConfig:
    """Architecture of a Transformer encoder, BERT and the families around it.

    Pure Python (no torch) so that anything may read it; it round-trips through JSON as the bundle's
    ``architecture`` entry. Fields after ``pooling`` describe the other families; ``to_dict`` leaves them out
    at their defaults, so a BERT bundle reads the same to a service that predates them, and a service that
    predates them refuses another family's bundle by naming the fields it does not know.
    """

    vocab_size: int
    d_model: int
    n_heads: int
    n_layers: int
    d_ff: int
    max_len: int  # rows of the position table (learned/sinusoidal), or the longest input (rotary)
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
    # -- the other families --
    position_offset: int = 0  # learned positions start at this row (RoBERTa, MPNet: padding_idx + 1)
    relative_buckets: int = 0  # MPNet: rows of the relative-position bias table shared by all layers; 0: none
    relative_max_distance: int = 128  # distances beyond this share the last bucket
    rotary_base: float = 10000.0  # theta of rotary embeddings on global layers
    local_rotary_base: float = 10000.0  # theta on sliding-window layers
    local_window: int = 0  # ModernBERT: a sliding layer sees keys within local_window // 2; 0: every layer global
    global_every: int = 1  # with local_window: layer i is global when i % global_every == 0
    gated: bool = False  # GLU feed-forward: W_2(act(x W_a) * (x W_b)), W_1 = [W_a; W_b] (SwiGLU, GeGLU)
    bias: bool = True  # biases in the attention and feed-forward projections
    norm_bias: bool = True  # biases in the LayerNorms
    first_attention_norm: bool = True  # pre-LN: ModernBERT's first layer has no LayerNorm before attention

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")
        for name in ("vocab_size", "d_model", "n_heads", "n_layers", "d_ff", "max_len", "global_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("position_offset", "relative_buckets", "local_window", "type_vocab_size"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.positional not in POSITIONALS:
            raise ValueError(f"positional must be one of {', '.join(POSITIONALS)}, got {self.positional!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {self.pooling!r}")
        if self.rotary and self.d_k % 2:
            raise ValueError(f"rotary embeddings need an even head size, got d_k {self.d_k}")
        if self.position_offset and self.positional != "learned":
            raise ValueError("position_offset applies to learned positions only")
        if self.relative_buckets and self.relative_buckets < 32:
            raise ValueError(f"relative_buckets must be >= 32 (MPNet's bucketing), got {self.relative_buckets}")

    @property
    def d_k(self) -> int:
        return self.d_model // self.n_heads

    @property
    def rotary(self) -> bool:
        return self.positional == "rotary"

    @property
    def max_positions(self) -> int:
        """The longest input the position scheme covers."""
        return self.max_len - self.position_offset

    def is_global(self, layer: int) -> bool:
        """Whether ``layer`` attends over the whole sequence (else over its sliding window)."""
        return not self.local_window or layer % self.global_every == 0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        family = [f for f in fields(self) if f.name in _FAMILY_FIELDS]
        for f in family:
            if data[f.name] == f.default:
                del data[f.name]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EncoderConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown EncoderConfig fields: {', '.join(unknown)}")
        return cls(**data)


_FAMILY_FIELDS = frozenset(("position_offset", "relative_buckets", "relative_max_distance", "rotary_base",
                            "local_rotary_base", "local_window", "global_every", "gated", "bias", "norm_bias",
                            "first_attention_norm"))
