"""The attribute tree of profile commitments (:mod:`o2ocli.core.profiletree`).

Hand-computed shapes for small counts, every leaf of every count up to 33
proven and every single-byte tamper refused, and a seeded randomized check
(``O2O_TREE_SEED``, random if unset, printed on failure; ``O2O_TREE_ROUNDS``,
default 200) against an independent bottom-up implementation.
"""

from __future__ import annotations

import hashlib
import os
import random

import pytest

from o2ocli.core.profiletree import (
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_from_proof,
    sorted_leaves,
    tree_root,
)

SALT = bytes(range(32))


def leaves(n: int) -> list[bytes]:
    return [leaf_hash(f"k{i:03d}".encode(), SALT, str(i).encode()) for i in range(n)]


def test_leaf_and_node_hashes_are_domain_separated_and_length_prefixed():
    expected = hashlib.sha256(b"\x00" + b"\x05phone" + SALT + b"\x03123").digest()
    assert leaf_hash(b"phone", SALT, b"123") == expected
    assert node_hash(b"a" * 32, b"b" * 32) == hashlib.sha256(
        b"\x01" + b"a" * 32 + b"b" * 32).digest()
    # Moving bytes between key and value changes the leaf (the lengths are hashed).
    assert leaf_hash(b"ab", SALT, b"c") != leaf_hash(b"a", SALT, b"bc")
    with pytest.raises(ValueError, match="salt"):
        leaf_hash(b"k", SALT[:31], b"v")


def test_pinned_vector():
    """The worked example of docs/profile.rst."""
    attrs = {b"city": (bytes(32), b"Athens"), b"phone": (bytes([1]) * 32, b"+30 210 555 0100"),
             b"age": (bytes([2]) * 32, b"34")}
    keyed = sorted_leaves(attrs)
    assert [(k, h.hex()) for k, h in keyed] == [
        (b"age", "8682d75edfa1dd45c41739d18fc52107b7cafa6f4d9d9f2fb10d84e4719328c0"),
        (b"city", "7fbaf59c094916727d5b884bc107a4eece4962b106ee0cabe1f3142461d7e378"),
        (b"phone", "034ca6715052cf7fb4eab169a8561822680d0389d09c1bdae2daa866206643f0"),
    ]
    hashes = [h for _, h in keyed]
    assert node_hash(hashes[0], hashes[1]).hex() == (
        "7fa3fcd865c25df127fa6b3d4b92345c4dd5e77fd267433ae05c22b60138a7f9")
    assert tree_root(hashes).hex() == (
        "d0736337e9c9010a495ca1c75efc193dca09f3d914eb990d9e000f726ff62136")
    assert [h.hex() for h in inclusion_proof(hashes, 1)] == [
        "8682d75edfa1dd45c41739d18fc52107b7cafa6f4d9d9f2fb10d84e4719328c0",
        "034ca6715052cf7fb4eab169a8561822680d0389d09c1bdae2daa866206643f0",
    ]


def test_a_single_leaf_is_its_own_root_with_an_empty_proof():
    (leaf,) = leaves(1)
    assert tree_root([leaf]) == leaf
    assert inclusion_proof([leaf], 0) == []
    assert root_from_proof(leaf, 0, 1, []) == leaf
    assert root_from_proof(leaf, 0, 1, [leaf]) is None  # too long for one leaf
    assert root_from_proof(leaf, 1, 1, []) is None


def test_odd_counts_split_at_the_largest_power_of_two():
    a, b, c, d, e = leaves(5)
    assert tree_root([a, b, c]) == node_hash(node_hash(a, b), c)
    assert tree_root([a, b, c, d, e]) == node_hash(
        node_hash(node_hash(a, b), node_hash(c, d)), e)
    assert inclusion_proof([a, b, c, d, e], 4) == [node_hash(node_hash(a, b), node_hash(c, d))]
    assert inclusion_proof([a, b, c], 0) == [b, c]
    # No leaf is duplicated to fill a level: [a, b, c] and [a, b, c, c] differ.
    assert tree_root([a, b, c]) != tree_root([a, b, c, c])


def test_an_inner_node_cannot_pass_for_a_leaf():
    a, b = leaves(2)
    root = tree_root([a, b])
    assert root_from_proof(node_hash(a, b), 0, 1, []) == root  # only with a false count,
    assert root_from_proof(node_hash(a, b), 0, 2, []) is None  # which the chain fixes


@pytest.mark.parametrize("count", range(1, 34))
def test_every_leaf_is_proven_and_every_tamper_refused(count):
    tree = leaves(count)
    root = tree_root(tree)
    for index, leaf in enumerate(tree):
        proof = inclusion_proof(tree, index)
        assert root_from_proof(leaf, index, count, proof) == root
        if count > 1:
            assert root_from_proof(leaf, (index + 1) % count, count, proof) != root
            assert root_from_proof(tree[(index + 1) % count], index, count, proof) != root
        for j, sibling in enumerate(proof):
            bent = bytes([sibling[0] ^ 1]) + sibling[1:]
            assert root_from_proof(leaf, index, count, proof[:j] + [bent] + proof[j + 1:]) != root
        if proof:
            assert root_from_proof(leaf, index, count, proof[:-1]) is None


def reference_root(hashes: list[bytes]) -> bytes:
    """RFC 6962's MTH written bottom-up (an independent implementation): pair
    neighbours level by level, carrying an odd last node up unchanged."""
    level = list(hashes)
    while len(level) > 1:
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def test_random_attribute_sets_against_a_reference():
    seed = int(os.environ.get("O2O_TREE_SEED") or random.randrange(2**32))
    rounds = int(os.environ.get("O2O_TREE_ROUNDS", "200"))
    rng = random.Random(seed)
    for _ in range(rounds):
        n = rng.randint(1, 70)
        attrs = {}
        while len(attrs) < n:
            key = "".join(rng.choice("abcdefghij.-_0") for _ in range(rng.randint(1, 8)))
            attrs[key.encode()] = (rng.randbytes(32), rng.randbytes(rng.randint(0, 40)))
        keyed = sorted_leaves(attrs)
        assert [k for k, _ in keyed] == sorted(attrs), f"O2O_TREE_SEED={seed}"
        hashes = [h for _, h in keyed]
        root = tree_root(hashes)
        assert root == reference_root(hashes), f"O2O_TREE_SEED={seed}: n={n}"
        index = rng.randrange(n)
        assert root_from_proof(hashes[index], index, n, inclusion_proof(hashes, index)) == root, \
            f"O2O_TREE_SEED={seed}: n={n} index={index}"
