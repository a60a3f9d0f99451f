"""MuHash3072 against Bitcoin Core's published vectors, and its set properties.

The three vectors are the numeric checks of ``BOOST_AUTO_TEST_CASE(muhash_tests)``
in bitcoin/bitcoin ``src/test/crypto_tests.cpp`` (MIT licence); ``FromInt(i)``
there is the accumulator of the one 32-byte element ``i ‖ 31 zero bytes``.
Core prints the first digest through ``uint256`` (byte-reversed hex) and the
overflow digest through ``HexStr`` (byte order): both conventions are kept.
"""

from __future__ import annotations

import os
import random

import pytest

from o2ocli.crypto.muhash import MODULUS, NUM_BYTES, MuHash3072, element_number

SEED = int(os.environ.get("O2O_MUHASH_SEED", "20261207"))


def from_int(i: int) -> bytes:
    return bytes([i]) + bytes(31)


# FromInt(0) *= FromInt(1), /= FromInt(2), Finalize, shown as a uint256.
CORE_INSERT_REMOVE_UINT256 = "10d312b100cbd32ada024a6646e40d3482fcff103668d2625f10002a607d5863"
# Serialisation of FromInt(1) *= FromInt(2): numerator (384 bytes LE) ‖ denominator (= 1).
CORE_SERIALIZED_NUMERATOR = (
    "1fa093295ea30a6a3acdc7b3f770fa538eff537528e990e2910e40bbcfd7f6696b1256901929094694b56316de"
    "342f593303dd12ac43e06dce1be1ff8301c845beb15468fff0ef002dbf80c29f26e6452bccc91b5cb9437ad410"
    "d2a67ea847887fa3c6a6553309946880fe20db2c73fe0641adbd4e86edfee0d9f8cd0ee1230898873dc13ed8dd"
    "caf045c80faa082774279007a2253f8922ee3ef361d378a6af3ddaf180b190ac97e556888c36b3d1fb1c85aab9"
    "ccd46e3deaeb7b7cf5db067a7e9ff86b658cf3acd6662bbcce37232daa753c48b794356c020090c831a8304416"
    "e2aa7ad633c0ddb2f11be1be316a81be7f7e472071c042cb68faef549c221ebff209273638b741aba5a81675c4"
    "5a5fa92fea4ca821d7a324cb1e1a2ccd3b76c4228ec8066dad2a5df6e1bd0de45c7dd5de8070bdb46db6c554cf"
    "9aefc9b7b2bbf9f75b1864d9f95005314593905c0109b71f703d49944ae94477b51dac10a816bb6d1c700bafab"
    "c8bd86fac8df24be519a2f2836b16392e18036cb13e48c5c"
)
# A deserialised state whose numerator is 384 bytes of ff (above the modulus), denominator 1.
CORE_OVERFLOW_DIGEST = "3a31e6903aff0de9f62f9a9f7f8b861de76ce2cda09822b90014319ae5dc2271"


def test_core_vector_insert_then_remove():
    acc = MuHash3072().insert(from_int(0)).insert(from_int(1)).remove(from_int(2))
    assert acc.digest()[::-1].hex() == CORE_INSERT_REMOVE_UINT256


def test_core_vector_serialisation_and_round_trip():
    acc = MuHash3072().insert(from_int(1)).insert(from_int(2))
    data = acc.to_bytes()
    assert len(data) == 2 * NUM_BYTES
    assert data[:NUM_BYTES].hex() == CORE_SERIALIZED_NUMERATOR
    assert data[NUM_BYTES:] == b"\x01" + bytes(NUM_BYTES - 1)
    assert MuHash3072.from_bytes(data).digest() == acc.digest()


def test_core_vector_overflowing_state():
    state = b"\xff" * NUM_BYTES + b"\x01" + bytes(NUM_BYTES - 1)
    assert MuHash3072.from_bytes(state).digest().hex() == CORE_OVERFLOW_DIGEST


def test_a_state_of_the_wrong_length_is_refused():
    with pytest.raises(ValueError, match="768 bytes"):
        MuHash3072.from_bytes(bytes(767))


def test_element_numbers_are_reduced_and_distinct():
    numbers = {element_number(from_int(i)) for i in range(50)}
    assert len(numbers) == 50 and all(0 < n < MODULUS for n in numbers)


def test_order_does_not_matter_and_remove_cancels_insert():
    rng = random.Random(SEED)
    elements = [rng.randbytes(rng.randrange(1, 80)) for _ in range(40)]
    extra = [rng.randbytes(40) for _ in range(10)]
    reference = MuHash3072()
    for element in elements:
        reference.insert(element)
    shuffled = elements[:]
    rng.shuffle(shuffled)
    other = MuHash3072()
    for element in shuffled[:20]:
        other.insert(element)
    for element in extra:  # added and later removed, interleaved
        other.insert(element)
    for element in shuffled[20:]:
        other.insert(element)
    for element in reversed(extra):
        other.remove(element)
    assert other.digest() == reference.digest(), f"seed {SEED}"
    # Removing before adding cancels too, and update() is the same as one by one.
    batched = MuHash3072().update(list(reversed(elements)) + extra, extra)
    assert batched.digest() == reference.digest(), f"seed {SEED}"
    # Everything removed again: the empty set.
    emptied = MuHash3072().update(elements, elements)
    assert emptied.digest() == MuHash3072().digest(), f"seed {SEED}"
    assert emptied.digest() != reference.digest()


def test_combine_is_the_union_of_two_sets():
    a = MuHash3072().insert(b"a").insert(b"b")
    b = MuHash3072().insert(b"c").remove(b"a")
    assert a.combine(b).digest() == MuHash3072().insert(b"b").insert(b"c").digest()


def test_a_multiset_counts_repeats():
    twice = MuHash3072().insert(b"x").insert(b"x")
    once = MuHash3072().insert(b"x")
    assert twice.digest() != once.digest()
    assert twice.remove(b"x").digest() == once.digest()


def test_the_fallback_paths_give_the_same_numbers(monkeypatch):
    """The keystream through ``cryptography`` and the arithmetic on Python
    ints (used when pycryptodome's C functions or gmpy2 are not there) give
    the same numbers and states as the default path."""
    from o2ocli.crypto import muhash

    rng = random.Random(SEED)
    elements = [rng.randbytes(rng.randrange(0, 120)) for _ in range(40)]

    def snapshot():
        acc = MuHash3072().update(elements[:25], elements[25:])
        one = MuHash3072().insert(elements[0]).remove(elements[1])
        return ([int(x) for x in muhash._numbers(elements)],
                [element_number(e) for e in elements], acc.to_bytes(), one.to_bytes(),
                acc.digest())

    default = snapshot()
    assert muhash.gmpy2 is not None and muhash._numbers is not muhash._numbers_cryptography
    monkeypatch.setattr(muhash, "_numbers", muhash._numbers_cryptography)
    assert snapshot() == default, f"cryptography keystream (seed {SEED})"
    monkeypatch.setattr(muhash, "gmpy2", None)
    assert snapshot() == default, f"cryptography keystream, Python ints (seed {SEED})"
    monkeypatch.setattr(muhash, "_numbers", muhash._numbers_raw())
    assert snapshot() == default, f"pycryptodome keystream, Python ints (seed {SEED})"
    assert isinstance(MuHash3072().insert(elements[0]).numerator, int)
    test_core_vector_insert_then_remove()
    test_core_vector_serialisation_and_round_trip()
    test_core_vector_overflowing_state()


@pytest.mark.parametrize("arithmetic", ["gmp", "python-int"])
def test_products_near_the_modulus_are_reduced(monkeypatch, arithmetic):
    """Accumulators at P - 1 and numbers of the largest size go through the
    folding reduction (GMP's split or Python's mask and shift) to the same
    value as ``%``."""
    from o2ocli.crypto import muhash

    if arithmetic == "python-int":
        monkeypatch.setattr(muhash, "gmpy2", None)
    rng = random.Random(SEED)
    elements = [rng.randbytes(16) for _ in range(20)]
    for start in (1, MODULUS - 1, MODULUS - 2, 2**3072 - 1):
        expected = start % MODULUS
        for e in elements:
            expected = expected * element_number(e) % MODULUS
        got = muhash._product(elements, start)
        assert got == expected, f"start {start} (seed {SEED})"
        assert type(got) is int


def test_recent_numbers_give_the_same_states_and_stay_bounded():
    """Elements added through a RecentNumbers are removed with their kept
    numbers: the states equal those computed without it; at most
    ``capacity`` numbers are kept, and a used one is dropped."""
    from o2ocli.crypto.muhash import RecentNumbers

    rng = random.Random(SEED)
    recent = RecentNumbers(8)
    with_recent, without = MuHash3072(), MuHash3072()
    alive: list[bytes] = []
    for step in range(30):
        added = [rng.randbytes(40) for _ in range(rng.randrange(0, 6))]
        removed = rng.sample(alive, min(len(alive), rng.randrange(0, 4)))
        alive = [e for e in alive if e not in removed] + added
        with_recent.update(added, removed, recent)
        without.update(added, removed)
        assert with_recent.to_bytes() == without.to_bytes(), f"step {step} (seed {SEED})"
        assert len(recent) <= 8
    assert len(recent) > 0
    kept = list(recent._numbers)
    with_recent.update([], kept[:1], recent)
    assert kept[0] not in recent._numbers and len(recent) == len(kept) - 1


def test_threads_computing_numbers_at_once_get_their_own():
    """A connect and a verify-utxo scan may hash at the same time (the C
    calls release the GIL): each thread gets its own elements' numbers."""
    import threading

    from o2ocli.crypto import muhash

    rng = random.Random(SEED)
    batches = [[rng.randbytes(48) for _ in range(1500)] for _ in range(6)]
    expected = [[int(x) for x in muhash._numbers_cryptography(b)] for b in batches]
    got: dict[int, list[int]] = {}

    def work(i: int) -> None:
        got[i] = [int(x) for x in muhash._numbers(batches[i])]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(batches))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert [got.get(i) for i in range(len(batches))] == expected, f"seed {SEED}"
