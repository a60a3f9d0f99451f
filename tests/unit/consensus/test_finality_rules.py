"""The finality gadget's pure rules (:mod:`o2ocli.consensus.finality`): every
rule both ways, quorum across a validator-set change, evidence, the state
encoding, and a golden vector for the vote format.

A branch is a list of block hashes by height; validator sets are given per
height.  Votes are signed with real keys (libsecp256k1 via coincurve).
"""

from __future__ import annotations

import hashlib
import os
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from o2ocli.consensus.errors import BlockInvalid
from o2ocli.consensus.finality import (
    FinalityState,
    apply_block_finality,
    check_evidence,
    check_own_vote,
    count_vote,
    quorum,
    votes_conflict,
)
from o2ocli.core.finality import VOTE_SIZE, Evidence, FinalityVote, vote_digest
from o2ocli.crypto.hashes import sha256d
from o2ocli.crypto.keys import PrivateKey

CHAIN = "o2o-finality-test"
KEYS = [PrivateKey(sha256d(b"finality-key" + bytes([i]))) for i in range(6)]
ADDR = [k.public_key.hash160() for k in KEYS]


def h(tag: str, height: int) -> bytes:
    return sha256d(f"{tag}/{height}".encode())


MAIN = [h("main", i) for i in range(40)]
SIDE = MAIN[:5] + [h("side", i) for i in range(5, 40)]


def lookup(chain: list[bytes]):
    return lambda height: chain[height] if 0 <= height < len(chain) else None


def fixed_set(n: int):
    validators = tuple(sorted(ADDR[:n]))
    return lambda height: validators


def vote(i: int, source: int, target: int, chain: list[bytes] = MAIN,
         chain_id: str = CHAIN) -> FinalityVote:
    key = KEYS[i]
    digest = vote_digest(chain_id, source, chain[source], target, chain[target])
    return FinalityVote(key.public_key.to_bytes(), source, chain[source], target, chain[target],
                        key.sign(digest))


def genesis() -> FinalityState:
    return FinalityState.genesis(MAIN[0])


def count(state: FinalityState, v: FinalityVote, chain: list[bytes] = MAIN, n: int = 3):
    return count_vote(state, v, v.signer, lookup(chain), fixed_set(n))


def reason(fn, *args) -> str:
    with pytest.raises(BlockInvalid) as info:
        fn(*args)
    return info.value.reason


# ----------------------------------------------------------------- quorum
@pytest.mark.parametrize(("n", "q"), [(1, 1), (2, 2), (3, 2), (4, 3), (5, 4), (6, 4), (7, 5),
                                      (21, 14)])
def test_quorum_is_ceil_two_thirds(n, q):
    assert quorum(n) == q
    # Two quorums always share a validator: conflicting finality needs a culprit.
    assert 2 * q - n >= 1


# ------------------------------------------------------------ counting votes
def test_a_quorum_justifies_and_an_adjacent_link_finalizes():
    state = count(genesis(), vote(0, 0, 1))
    assert state.best_justified == (0, MAIN[0])
    assert state.signers(0, 1) == (ADDR[0],)
    state = count(state, vote(1, 0, 1))
    assert state.best_justified == (1, MAIN[1])
    assert state.finalized == (0, MAIN[0])
    state = count(count(state, vote(0, 1, 2)), vote(2, 1, 2))
    assert state.best_justified == (2, MAIN[2])
    assert state.finalized == (1, MAIN[1])
    assert all(t > 1 for _, t, _ in state.links)  # links below the finalized block pruned


def test_a_non_adjacent_link_justifies_but_does_not_finalize():
    state = count(count(genesis(), vote(0, 0, 1)), vote(1, 0, 1))
    state = count(count(state, vote(0, 1, 3)), vote(1, 1, 3))
    assert state.best_justified == (3, MAIN[3])
    assert state.finalized == (0, MAIN[0])
    # The next adjacent link from 3 finalizes 3 (and so everything below it).
    state = count(count(state, vote(0, 3, 4)), vote(2, 3, 4))
    assert state.finalized == (3, MAIN[3])


def test_votes_from_different_sources_do_not_add_up():
    state = count(count(genesis(), vote(0, 0, 1)), vote(1, 0, 1))  # 1 justified
    state = count(state, vote(0, 0, 2))
    state = count(state, vote(1, 1, 2))
    assert state.best_justified == (1, MAIN[1])  # 0->2 and 1->2 have one vote each


def test_vote_from_a_non_validator_is_refused():
    assert reason(count, genesis(), vote(5, 0, 1)) == "bad-vote-signer"


def test_vote_for_a_block_not_on_the_branch_is_refused():
    side_vote = vote(0, 0, 6, SIDE)
    assert reason(count, genesis(), side_vote) == "bad-vote-target"
    assert count(genesis(), side_vote, SIDE).signers(0, 6) == (ADDR[0],)
    beyond = vote(0, 0, 39)
    assert reason(count, genesis(), beyond, MAIN[:10]) == "bad-vote-target"  # unknown block


def test_vote_with_a_source_off_the_branch_is_refused():
    v = FinalityVote(KEYS[0].public_key.to_bytes(), 0, h("nowhere", 0), 1, MAIN[1])
    assert reason(count, genesis(), v) == "bad-vote-source"


def test_vote_from_an_unjustified_source_is_refused():
    assert reason(count, genesis(), vote(0, 1, 2)) == "bad-vote-source-unjustified"


def test_vote_at_or_below_the_finalized_block_is_refused():
    state = genesis()
    for i in (0, 1):
        state = count(state, vote(i, 0, 1))
    for i in (0, 1):
        state = count(state, vote(i, 1, 2))
    assert state.finalized[0] == 1
    assert reason(count, state, vote(2, 0, 1)) == "bad-vote-stale"


def test_vote_order_must_go_up():
    v = FinalityVote(KEYS[0].public_key.to_bytes(), 2, MAIN[2], 2, MAIN[2])
    assert reason(count, genesis(), v) == "bad-vote-order"


@pytest.mark.parametrize(("first", "second"), [
    ((0, 2), (0, 2)),   # the same vote again
    ((0, 2), (0, 1)),   # a lower target
    ((1, 3), (0, 4)),   # a lower source (would surround)
])
def test_a_signers_votes_on_a_branch_must_be_monotone(first, second):
    state = count(count(genesis(), vote(1, 0, 1)), vote(2, 0, 1))  # 1 justified
    state = count(state, vote(0, *first))
    assert reason(count, state, vote(0, *second)) == "bad-vote-not-monotone"


def test_quorum_uses_the_validator_set_in_force_at_the_target():
    """Heights 1-2 have 3 validators (quorum 2); from height 3 a fourth joined
    (quorum 3): two votes justify 2 but not 3."""
    three, four = tuple(sorted(ADDR[:3])), tuple(sorted(ADDR[:4]))

    def sets(height: int):
        return three if height < 3 else four

    def c(state, v):
        return count_vote(state, v, v.signer, lookup(MAIN), sets)

    state = c(c(genesis(), vote(0, 0, 2)), vote(1, 0, 2))
    assert state.best_justified == (2, MAIN[2])
    state = c(c(state, vote(0, 2, 3)), vote(1, 2, 3))
    assert state.best_justified == (2, MAIN[2])
    assert reason(c, state, vote(4, 2, 3)) == "bad-vote-signer"  # not in the set at 3
    state = c(state, vote(3, 2, 3))  # the newcomer's vote counts at 3
    assert state.best_justified == (3, MAIN[3])
    assert state.finalized == (2, MAIN[2])


# ------------------------------------------------------------- conflicts
def test_double_and_surround_votes_conflict():
    a = vote(0, 0, 2)
    assert votes_conflict(a, vote(0, 0, 2, SIDE)) is None  # 2 is below the fork: same vote
    assert votes_conflict(vote(0, 0, 6), vote(0, 0, 6, SIDE)) == "double"
    assert votes_conflict(vote(0, 1, 6), vote(0, 0, 6)) == "double"  # same target, other source
    assert votes_conflict(vote(0, 1, 5), vote(0, 2, 3)) == "surround"
    assert votes_conflict(vote(0, 2, 3), vote(0, 1, 5)) == "surround"
    assert votes_conflict(vote(0, 1, 3), vote(0, 2, 5)) is None  # overlapping, not surrounding
    assert votes_conflict(vote(0, 1, 3), vote(0, 3, 5)) is None  # chained
    assert votes_conflict(vote(0, 0, 6), vote(1, 0, 6, SIDE)) is None  # different keys
    assert votes_conflict(a, a) is None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.integers(1, 8)), min_size=2, max_size=12))
def test_monotone_own_votes_never_conflict(steps):
    """Whatever sequence of (source, target) a validator is offered, the votes
    :func:`check_own_vote` lets it sign never conflict pairwise."""
    signed: list[FinalityVote] = []
    last = None
    for source, gap in steps:
        target = min(source + gap, 39)
        if target <= source or not check_own_vote(last, source, target):
            continue
        chain = MAIN if len(signed) % 2 else SIDE  # even on alternating branches
        signed.append(vote(0, source, target, chain))
        last = (source, target)
    for i, a in enumerate(signed):
        for b in signed[i + 1:]:
            assert votes_conflict(a, b) is None, (a.short(), b.short())


def test_check_own_vote_refuses_what_could_conflict():
    assert check_own_vote(None, 0, 1)
    assert not check_own_vote(None, 3, 3)
    assert not check_own_vote((2, 5), 2, 5)  # same target
    assert not check_own_vote((2, 5), 2, 4)  # lower target
    assert not check_own_vote((2, 5), 1, 6)  # lower source: surrounds
    assert check_own_vote((2, 5), 2, 6)
    assert check_own_vote((2, 5), 5, 6)


# ------------------------------------------------------------- signatures
def test_vote_signature_binds_the_chain_and_the_link():
    good = vote(0, 0, 1)
    state = apply_block_finality(genesis(), [good], [], CHAIN, lookup(MAIN), fixed_set(3),
                                 fixed_set(3)(0))
    assert state.signers(0, 1) == (ADDR[0],)
    other_chain = vote(0, 0, 1, chain_id="another-chain")
    assert reason(apply_block_finality, genesis(), [other_chain], [], CHAIN, lookup(MAIN),
                  fixed_set(3), fixed_set(3)(0)) == "bad-vote-signature"
    forged = FinalityVote(good.signer_pubkey, 0, MAIN[0], 2, MAIN[2], good.signature)
    assert reason(apply_block_finality, genesis(), [forged], [], CHAIN, lookup(MAIN),
                  fixed_set(3), fixed_set(3)(0)) == "bad-vote-signature"


def test_block_votes_are_counted_in_order():
    votes = [vote(0, 0, 1), vote(1, 0, 1), vote(0, 1, 2), vote(1, 1, 2)]
    state = apply_block_finality(genesis(), votes, [], CHAIN, lookup(MAIN), fixed_set(3), ())
    assert state.finalized == (1, MAIN[1])
    # The same votes in another order: 1->2 comes before 1 is justified.
    shuffled = [votes[2], votes[0], votes[1], votes[3]]
    assert reason(apply_block_finality, genesis(), shuffled, [], CHAIN, lookup(MAIN),
                  fixed_set(3), ()) == "bad-vote-source-unjustified"


# --------------------------------------------------------------- evidence
def test_evidence_rules():
    ev = Evidence.of(vote(0, 0, 6), vote(0, 0, 6, SIDE))
    assert check_evidence(ev, CHAIN) == ADDR[0]
    validators = fixed_set(3)(0)
    state = apply_block_finality(genesis(), [], [ev], CHAIN, lookup(MAIN), fixed_set(3),
                                 validators)
    assert state.accused == (ADDR[0],)
    assert reason(apply_block_finality, state, [], [ev], CHAIN, lookup(MAIN), fixed_set(3),
                  validators) == "bad-evidence-duplicate"
    outsider = Evidence.of(vote(5, 0, 6), vote(5, 0, 6, SIDE))
    assert reason(apply_block_finality, genesis(), [], [outsider], CHAIN, lookup(MAIN),
                  fixed_set(3), validators) == "bad-evidence-not-validator"
    assert reason(check_evidence, Evidence.of(vote(0, 0, 6), vote(1, 0, 6, SIDE)),
                  CHAIN) == "bad-evidence-signer"
    assert reason(check_evidence, Evidence.of(vote(0, 0, 3), vote(0, 3, 6)),
                  CHAIN) == "bad-evidence-no-conflict"
    bad_sig = FinalityVote(KEYS[0].public_key.to_bytes(), 0, MAIN[0], 6, SIDE[6],
                           vote(0, 0, 6).signature)
    assert reason(check_evidence, Evidence.of(vote(0, 0, 6), bad_sig),
                  CHAIN) == "bad-evidence-signature"


# ------------------------------------------------------------ accountability
def test_conflicting_finality_needs_signed_conflicting_votes():
    """Randomized: honest validators (monotone votes) on two branches, with a
    random set of equivocators voting on both.  Whenever both branches finalize
    conflicting blocks, at least one validator signed a conflicting pair."""
    seed = int(os.environ.get("O2O_FINALITY_SEED") or random.randrange(2**32))
    rng = random.Random(seed)  # replay a failure with O2O_FINALITY_SEED=<seed>
    seen_conflicts = 0
    for _ in range(60):
        n = rng.choice([3, 4, 5])
        validators = list(range(n))
        liars = set(rng.sample(validators, rng.randint(0, n)))
        states = {"main": genesis(), "side": genesis()}
        chains = {"main": MAIN, "side": SIDE}
        signed: dict[int, list[FinalityVote]] = {i: [] for i in validators}
        own: dict[int, tuple[int, int] | None] = {i: None for i in validators}
        for _step in range(12):
            order = validators[:]
            rng.shuffle(order)
            for i in order:
                # A liar votes on both branches; an honest validator on one.
                names = ["main", "side"] if i in liars else [rng.choice(["main", "side"])]
                for name in names:
                    state = states[name]
                    source = state.best_justified[0]
                    target = min(source + rng.choice([1, 1, 1, 2]), 39)
                    if target <= source:
                        continue
                    if i not in liars and not check_own_vote(own[i], source, target):
                        continue
                    v = vote(i, source, target, chains[name])
                    try:
                        states[name] = count_vote(state, v, v.signer, lookup(chains[name]),
                                                  fixed_set(n))
                    except BlockInvalid:
                        continue
                    signed[i].append(v)
                    own[i] = (source, target)
        fm, fs = states["main"].finalized, states["side"].finalized
        # The branches share heights 0-4: final blocks conflict when both are above.
        if fm[0] >= 5 and fs[0] >= 5:
            seen_conflicts += 1
            culprits = [i for i, vs in signed.items()
                        if any(votes_conflict(a, b) for a in vs for b in vs)]
            assert culprits, f"seed {seed}: conflicting finality without evidence"
            assert set(culprits) <= liars, f"seed {seed}: an honest validator equivocated"
    assert seen_conflicts, f"seed {seed}: no run finalized conflicting blocks (test too weak)"


# ---------------------------------------------------------------- encodings
def test_state_roundtrip():
    state = count(count(genesis(), vote(0, 0, 1)), vote(1, 0, 1))
    state = count(state, vote(2, 1, 3))
    ev = Evidence.of(vote(0, 0, 6), vote(0, 0, 6, SIDE))
    state = apply_block_finality(state, [], [ev], CHAIN, lookup(MAIN), fixed_set(3),
                                 fixed_set(3)(0))
    assert FinalityState.from_bytes(state.to_bytes()) == state


def test_a_state_stays_bounded_and_decodable_when_justification_skips_heights():
    """Votes that always skip a height justify blocks but finalize none (the
    targets move on before the votes for the next height are in).  The list
    of justified blocks grew without bound, and past MAX_LINKS + 1 entries the
    stored state no longer decoded: the node could not read it back."""
    from o2ocli.consensus.finality import MAX_LINKS

    chain = [h("skip", i) for i in range(2 * MAX_LINKS + 10)]
    key = KEYS[0]
    state = FinalityState.genesis(chain[0])
    for source in range(0, 2 * MAX_LINKS + 6, 2):
        digest = vote_digest(CHAIN, source, chain[source], source + 2, chain[source + 2])
        v = FinalityVote(key.public_key.to_bytes(), source, chain[source], source + 2,
                         chain[source + 2], key.sign(digest))
        state = count_vote(state, v, ADDR[0], lookup(chain), fixed_set(1))
    assert state.finalized == (0, chain[0])
    assert state.best_justified == (2 * MAX_LINKS + 6, chain[2 * MAX_LINKS + 6])
    assert len(state.justified) <= MAX_LINKS + 1
    assert state.justified[0] == state.finalized
    assert FinalityState.from_bytes(state.to_bytes()) == state


def test_vote_golden_vector():
    """The vote encoding and digest, byte for byte (documented in docs/protocol.rst)."""
    key = PrivateKey(bytes([1]) * 32)
    source_hash, target_hash = bytes([0xAA]) * 32, bytes([0xBB]) * 32
    digest = vote_digest("o2o-devnet", 7, source_hash, 8, target_hash)
    v = FinalityVote(key.public_key.to_bytes(), 7, source_hash, 8, target_hash, key.sign(digest))
    raw = v.to_bytes()
    assert len(raw) == VOTE_SIZE == 169
    assert raw[:33] == key.public_key.to_bytes()
    assert raw[33:37] == (7).to_bytes(4, "little") and raw[69:73] == (8).to_bytes(4, "little")
    assert digest.hex() == GOLDEN_DIGEST
    assert raw.hex() == GOLDEN_VOTE
    assert FinalityVote.from_bytes(raw) == v


    # The digest rebuilt by hand from docs/protocol.rst with hashlib alone.
    preimage = (bytes([len(b"o2o/vote/v1")]) + b"o2o/vote/v1" + bytes([10]) + b"o2o-devnet"
                + (7).to_bytes(4, "little") + source_hash + (8).to_bytes(4, "little")
                + target_hash)
    assert hashlib.sha256(hashlib.sha256(preimage).digest()).digest() == digest


GOLDEN_DIGEST = "d589a0bf8c612ce57e8cab295020a25fa51d730d7a7344155bd3e43e556a1412"
GOLDEN_VOTE = (
    "031b84c5567b126440995d3ed5aaba0565d71e1834604819ff9c17f5e9d5dd078f"
    "07000000" + "aa" * 32 + "08000000" + "bb" * 32
    + "56dc2d178aa72ada78996cdceacdc2ee1473300eaef36b564fa350d5df642d82"
    "0da5efbc4830d8c4f6124971abc67e4880818e0f6240325d297f66088e339113"
)
