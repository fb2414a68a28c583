"""The bundle format's name and version, and the compatibility rule.

A service reads bundles of exactly its FORMAT_VERSION and refuses any other with a message that says to
export again (or to serve the bundle with the attnserve that wrote it). Within one version, changes are only
additive: a new optional config.json entry or file, which older services ignore and newer ones treat as absent
when missing (``shared_initializers``, the packed graph). A change that an older service would misread (a
renamed input, a different meaning of a field) raises the version.
"""

from __future__ import annotations

FORMAT = "attnserve-bundle"
FORMAT_VERSION = 1
