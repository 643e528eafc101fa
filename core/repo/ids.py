"""Chunk ids: keyed BLAKE3 of the plaintext.

In: the repository's id key and a chunk's bytes. Out: its 32-byte id. Kept apart
from crypto.py so that the agent, which hashes but never encrypts, does not load
the cryptography package.
"""
from __future__ import annotations

import blake3


def chunk_id(id_key: bytes, data: bytes | memoryview) -> bytes:
    """Keyed BLAKE3 of the plaintext: 32 bytes."""
    return blake3.blake3(data, key=id_key, max_threads=1).digest()
