"""The bundle's one error type, for writing (export) and reading (service) alike."""

from __future__ import annotations


class BundleError(RuntimeError):
    """The bundle cannot be written or served; the message says how to fix it."""
