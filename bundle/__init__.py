"""The model bundle, the only contract between export and service: its format, the encoder config, checksums,
reading and checking, the packed graph's inputs and pooling, and the fidelity records. Torch-free: export
writes it, service reads it, neither imports the other."""

from .checksums import sha256
from .config import EncoderConfig
from .errors import BundleError
from .format import FORMAT, FORMAT_VERSION
from .reader import Bundle, check_graph_io, load_bundle

__all__ = ["FORMAT", "FORMAT_VERSION", "Bundle", "BundleError", "EncoderConfig", "check_graph_io", "load_bundle",
           "sha256"]
