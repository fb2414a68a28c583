"""PyTorch Transformer encoder: config, attention, positional encodings, encoder, checkpoint import."""

from bundle.config import EncoderConfig

from .attention import MultiHeadAttention
from .encoder import Encoder, EncoderOutput, tiny_config, tiny_encoder

__all__ = ["Encoder", "EncoderConfig", "EncoderOutput", "MultiHeadAttention", "tiny_config", "tiny_encoder"]
