"""The merkle tree of a block, and a block's transaction ids from their bytes.

The tree rule (documented with the block format in :mod:`o2ocli.core.block`
and ``docs/protocol.rst``): leaves ``SHA-256d(0x00 ‖ id)``, inner nodes
``SHA-256d(0x01 ‖ left ‖ right)``, split at the largest power of two below
the number of leaves, 32 zero bytes for no leaves.

It lives here (not in :mod:`o2ocli.core`) so that a signature worker
(:mod:`.workerproc`), which imports nothing above :mod:`o2ocli.crypto`, can
compute a received block's ids and root from the transactions' bytes while
the caller does other work (:func:`block_ids`).
"""

from __future__ import annotations

from collections.abc import Sequence

from .hashes import sha256d

__all__ = ["ZERO_HASH", "block_ids", "merkle_root"]

ZERO_HASH = bytes(32)


def merkle_root(ids: Sequence[bytes]) -> bytes:
    """Merkle root of ``ids`` (32-byte ids, in order)."""
    if not ids:
        return ZERO_HASH
    return _subtree_root([sha256d(b"\x00" + i) for i in ids])


def _subtree_root(leaves: list[bytes]) -> bytes:
    n = len(leaves)
    if n == 1:
        return leaves[0]
    k = 1 << ((n - 1).bit_length() - 1)
    return sha256d(b"\x01" + _subtree_root(leaves[:k]) + _subtree_root(leaves[k:]))


def block_ids(parts: Sequence[tuple[bytes, int]]) -> tuple[bytes, bytes, bytes]:
    """For each transaction's ``(full encoding, length of its stripped
    encoding)`` (the stripped encoding is the full one's first bytes, the
    witnesses follow): the txids and the wtxids, each concatenated (32 bytes
    a transaction), and the merkle root of the wtxids (a block's transaction
    root)."""
    txids = [sha256d(memoryview(full)[:stripped]) for full, stripped in parts]
    wtxids = [sha256d(full) for full, _ in parts]
    return b"".join(txids), b"".join(wtxids), merkle_root(wtxids)
