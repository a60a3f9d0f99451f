"""The attribute tree of a profile commitment: a Merkle tree over salted attributes.

A user's profile is a set of attributes (``key`` → ``value``), each with its
own random 32-byte ``salt``.  On chain only the tree's root goes (and the
number of leaves, see :class:`~o2ocli.core.payloads.ProfileCommit`); a value
is disclosed off chain with its salt and an inclusion proof.

* One leaf per key; the leaves are in ascending byte order of the key (UTF-8),
  so a set of attributes has one tree.
* Leaf hash: ``SHA-256(0x00 ‖ var_bytes(key) ‖ salt ‖ var_bytes(value))``
  (``var_bytes`` = varint length then the bytes; the salt is exactly 32
  bytes).  The length prefixes keep ``key``/``value`` boundaries unambiguous,
  and the salt makes a leaf hash reveal nothing about a guessable value.
* Node hash: ``SHA-256(0x01 ‖ left ‖ right)``.  The 0x00/0x01 prefixes keep a
  leaf from passing for an inner node (second-preimage attack).
* Shape (as RFC 6962 / RFC 9162 §2.1.1): the root of ``n > 1`` leaves is
  ``node(root(first k), root(rest))`` with ``k`` the largest power of two
  below ``n``; the root of one leaf is its leaf hash.  No leaf is ever
  duplicated to fill a level (Bitcoin's CVE-2012-2459 cannot happen).
* An inclusion proof is the sibling hashes from the leaf up (RFC 9162
  §2.1.3); it is checked against the leaf's index and the leaf count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from o2ocli.crypto.hashes import sha256

from .encoding import Writer

__all__ = [
    "SALT_SIZE",
    "LEAF_PREFIX",
    "NODE_PREFIX",
    "leaf_hash",
    "node_hash",
    "sorted_leaves",
    "tree_root",
    "inclusion_proof",
    "root_from_proof",
]

SALT_SIZE = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"


def leaf_hash(key: bytes, salt: bytes, value: bytes) -> bytes:
    """``SHA-256(0x00 ‖ var_bytes(key) ‖ salt ‖ var_bytes(value))``."""
    if len(salt) != SALT_SIZE:
        raise ValueError(f"a salt is {SALT_SIZE} bytes, not {len(salt)}")
    w = Writer()
    w.raw(LEAF_PREFIX)
    w.var_bytes(key)
    w.raw(salt)
    w.var_bytes(value)
    return sha256(w.getvalue())


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 ‖ left ‖ right)``."""
    return sha256(NODE_PREFIX + left + right)


def sorted_leaves(attributes: Mapping[bytes, tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """(key, leaf hash) of each attribute (key → (salt, value)), in key order."""
    return [(key, leaf_hash(key, *attributes[key])) for key in sorted(attributes)]


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def tree_root(leaves: Sequence[bytes]) -> bytes:
    """The root over leaf hashes ``leaves`` (at least one)."""
    if not leaves:
        raise ValueError("a tree has at least one leaf")
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return node_hash(tree_root(leaves[:k]), tree_root(leaves[k:]))


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """The sibling hashes that lead leaf ``index`` to the root, leaf first."""
    if not 0 <= index < len(leaves):
        raise ValueError(f"leaf index {index} out of range for {len(leaves)} leaves")
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if index < k:
        return inclusion_proof(leaves[:k], index) + [tree_root(leaves[k:])]
    return inclusion_proof(leaves[k:], index - k) + [tree_root(leaves[:k])]


def root_from_proof(leaf: bytes, index: int, count: int, proof: Sequence[bytes]) -> bytes | None:
    """The root that ``proof`` leads leaf ``index`` of ``count`` to, or None if
    the proof does not have the shape such a leaf's proof has (RFC 9162 §2.1.3.2)."""
    if not 0 <= index < count:
        return None
    fn, sn, r = index, count - 1, leaf
    for sibling in proof:
        if len(sibling) != 32 or sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(sibling, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, sibling)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None
