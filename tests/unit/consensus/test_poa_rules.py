"""PoA header rules (:mod:`o2ocli.consensus.poa`): each rule once valid and
once for every way to break it, with real keys and real seals.

The default network has three validators ``V[0] < V[1] < V[2]`` (by address);
``V[h % 3]`` is in turn for block ``h``.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from poa_helpers import (
    CHAIN_ID,
    GENESIS_TIME,
    MAX_FUTURE,
    NO_ADDRESS,
    OTHER_CHAIN_ID,
    PARAMS,
    PERIOD,
    Tip,
    address,
    child_header,
    extend,
    extend_many,
    genesis_header,
    genesis_tip,
    sorted_keys,
)

from o2ocli.consensus.errors import BlockInvalid
from o2ocli.consensus.poa import (
    DIFF_IN_TURN,
    DIFF_NO_TURN,
    MAX_PENDING_VOTES_PER_SIGNER,
    MAX_VALIDATORS,
    PoAParams,
    Snapshot,
    Vote,
    check_checkpoint,
    check_difficulty,
    check_header_time,
    seal_header,
    seal_signer,
    signer_limit,
    validate_header,
)
from o2ocli.core.block import VOTE_ADD, VOTE_NONE, VOTE_REMOVE, BlockHeader
from o2ocli.core.encoding import DecodeError
from o2ocli.core.limits import MAX_CHECKPOINT_VALIDATORS
from o2ocli.crypto.backends import SECP256K1_N

V = sorted_keys(b"poa-rules", 3)
A = [address(k) for k in V]
OUTSIDER = sorted_keys(b"poa-rules-outsider", 1)[0]
EPOCH = 4
EPOCH_PARAMS = PoAParams(CHAIN_ID, period=PERIOD, epoch=EPOCH, max_future=MAX_FUTURE)


def genesis() -> Tip:
    return genesis_tip(A)


def reason(exc_info: pytest.ExceptionInfo[BlockInvalid]) -> str:
    return exc_info.value.reason


def rejected(header: BlockHeader, tip: Tip, params: PoAParams = PARAMS, now: int | None = None):
    """The reason validate_header gives for ``header`` on ``tip``."""
    with pytest.raises(BlockInvalid) as info:
        validate_header(
            header, tip.header, tip.snapshot, params, header.time if now is None else now
        )
    return reason(info)


def accepted(header: BlockHeader, tip: Tip, params: PoAParams = PARAMS, now: int | None = None):
    return validate_header(
        header, tip.header, tip.snapshot, params, header.time if now is None else now
    )


# ---------------------------------------------------------------------------
# signer limit
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "limit"), [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3), (8, 5), (9, 5)])
def test_signer_limit_is_floor_half_plus_one(n, limit):
    assert signer_limit(n) == limit
    assert Snapshot.genesis([bytes([i]) * 20 for i in range(n)]).limit() == limit


# ---------------------------------------------------------------------------
# seal_signer
# ---------------------------------------------------------------------------


def test_seal_signer_returns_the_sealing_validator():
    tip = genesis()
    header = child_header(tip.header, tip.snapshot, V[1])
    assert seal_signer(header, CHAIN_ID) == A[1]
    assert accepted(header, tip).recents == ((1, A[1]),)


def test_seal_is_deterministic_and_covers_the_chain_id():
    tip = genesis()
    header = child_header(tip.header, tip.snapshot, V[1])
    assert child_header(tip.header, tip.snapshot, V[1]) == header
    assert seal_signer(header, CHAIN_ID) == A[1]
    with pytest.raises(BlockInvalid) as info:
        seal_signer(header, OTHER_CHAIN_ID)
    assert reason(info) == "bad-poa-seal"


def test_seal_over_another_chain_id_is_rejected():
    tip = genesis()
    header = child_header(tip.header, tip.snapshot, V[1], chain_id=OTHER_CHAIN_ID)
    with pytest.raises(BlockInvalid) as info:
        seal_signer(header, CHAIN_ID)
    assert reason(info) == "bad-poa-seal"
    assert rejected(header, tip) == "bad-poa-seal"


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda h: replace(h, time=h.time + 1), id="time"),
        pytest.param(lambda h: replace(h, difficulty=DIFF_NO_TURN), id="difficulty"),
        pytest.param(lambda h: replace(h, merkle_root=b"\x01" * 32), id="merkle_root"),
        pytest.param(
            lambda h: replace(h, vote_kind=VOTE_ADD, vote_address=b"\x07" * 20), id="vote"
        ),
    ],
)
def test_header_changed_after_sealing_is_rejected(tamper):
    tip = genesis()
    header = child_header(tip.header, tip.snapshot, V[1])
    changed = tamper(header)
    assert changed.seal_signature == header.seal_signature
    with pytest.raises(BlockInvalid) as info:
        seal_signer(changed, CHAIN_ID)
    assert reason(info) == "bad-poa-seal"
    assert rejected(changed, tip) == "bad-poa-seal"


def test_seal_pubkey_replaced_by_another_validators_key_is_rejected():
    """V[2]'s signature presented as V[1]'s (in turn for block 1): impersonation."""
    tip = genesis()
    header = child_header(tip.header, tip.snapshot, V[2], difficulty=DIFF_IN_TURN)
    forged = replace(header, seal_pubkey=V[1].public_key.to_bytes())
    with pytest.raises(BlockInvalid) as info:
        seal_signer(forged, CHAIN_ID)
    assert reason(info) == "bad-poa-seal"
    assert rejected(forged, tip) == "bad-poa-seal"


@pytest.mark.parametrize(
    "signature",
    [
        pytest.param(bytes(range(64)), id="garbage"),
        pytest.param(b"\xff" * 64, id="all-ff"),
        pytest.param(bytes(64), id="zero"),
        pytest.param(SECP256K1_N.to_bytes(32, "big") * 2, id="r-s-equal-n"),
    ],
)
def test_garbage_signature_is_rejected(signature):
    tip = genesis()
    header = replace(child_header(tip.header, tip.snapshot, V[1]), seal_signature=signature)
    with pytest.raises(BlockInvalid) as info:
        seal_signer(header, CHAIN_ID)
    assert reason(info) == "bad-poa-seal"
    assert rejected(header, tip) == "bad-poa-seal"


def test_high_s_twin_of_a_valid_seal_is_rejected():
    tip = genesis()
    header = child_header(tip.header, tip.snapshot, V[1])
    r, s = header.seal_signature[:32], int.from_bytes(header.seal_signature[32:], "big")
    twin = replace(header, seal_signature=r + (SECP256K1_N - s).to_bytes(32, "big"))
    with pytest.raises(BlockInvalid) as info:
        seal_signer(twin, CHAIN_ID)
    assert reason(info) == "bad-poa-seal"


@pytest.mark.parametrize(
    "pubkey",
    [
        pytest.param(bytes(33), id="zero"),
        pytest.param(b"\x02" + b"\xff" * 32, id="x-not-on-curve"),
        pytest.param(b"\x04" + bytes(32), id="bad-prefix"),
    ],
)
def test_seal_pubkey_that_is_not_a_point_is_rejected(pubkey):
    tip = genesis()
    header = replace(child_header(tip.header, tip.snapshot, V[1]), seal_pubkey=pubkey)
    with pytest.raises(BlockInvalid) as info:
        seal_signer(header, CHAIN_ID)
    assert reason(info) == "bad-poa-seal"


def test_unsealed_header_is_rejected():
    tip = genesis()
    sealed = child_header(tip.header, tip.snapshot, V[1])
    unsealed = BlockHeader(
        sealed.height, sealed.prev_hash, sealed.merkle_root, sealed.time, sealed.difficulty
    )
    assert unsealed.seal_pubkey == bytes(33) and unsealed.seal_signature == bytes(64)
    with pytest.raises(BlockInvalid) as info:
        seal_signer(unsealed, CHAIN_ID)
    assert reason(info) == "bad-poa-seal"
    assert rejected(unsealed, tip) == "bad-poa-seal"


def test_genesis_header_carries_no_valid_seal():
    with pytest.raises(BlockInvalid) as info:
        seal_signer(genesis_header(A), CHAIN_ID)
    assert reason(info) == "bad-poa-seal"


# ---------------------------------------------------------------------------
# check_header_time
# ---------------------------------------------------------------------------


def test_time_exactly_parent_plus_period_is_ok():
    tip = genesis()
    header = child_header(tip.header, tip.snapshot, V[1], time=GENESIS_TIME + PERIOD)
    check_header_time(header, tip.header, PARAMS, now=header.time)
    accepted(header, tip)


@pytest.mark.parametrize("early", [1, PERIOD, PERIOD + 1])
def test_time_before_parent_plus_period_is_rejected(early):
    """One second early, the parent's own time, and before the parent."""
    tip = genesis()
    header = child_header(tip.header, tip.snapshot, V[1], time=GENESIS_TIME + PERIOD - early)
    with pytest.raises(BlockInvalid) as info:
        check_header_time(header, tip.header, PARAMS, now=GENESIS_TIME + 100)
    assert reason(info) == "bad-poa-time-too-early"
    assert rejected(header, tip, now=GENESIS_TIME + 100) == "bad-poa-time-too-early"


def test_time_exactly_now_plus_max_future_is_ok():
    tip = genesis()
    header = child_header(tip.header, tip.snapshot, V[1], time=GENESIS_TIME + 1000)
    now = header.time - MAX_FUTURE
    check_header_time(header, tip.header, PARAMS, now=now)
    accepted(header, tip, now=now)


@pytest.mark.parametrize("beyond", [1, 3600])
def test_time_beyond_max_future_is_rejected(beyond):
    tip = genesis()
    header = child_header(tip.header, tip.snapshot, V[1], time=GENESIS_TIME + 1000)
    now = header.time - MAX_FUTURE - beyond
    with pytest.raises(BlockInvalid) as info:
        check_header_time(header, tip.header, PARAMS, now=now)
    assert reason(info) == "bad-poa-time-future"
    assert rejected(header, tip, now=now) == "bad-poa-time-future"


def test_max_future_comes_from_params():
    tip = genesis()
    header = child_header(tip.header, tip.snapshot, V[1])
    strict = PoAParams(CHAIN_ID, period=PERIOD, epoch=PARAMS.epoch, max_future=0)
    check_header_time(header, tip.header, strict, now=header.time)
    with pytest.raises(BlockInvalid) as info:
        check_header_time(header, tip.header, strict, now=header.time - 1)
    assert reason(info) == "bad-poa-time-future"


# ---------------------------------------------------------------------------
# check_checkpoint (epoch = 4)
# ---------------------------------------------------------------------------


def before_epoch_block() -> Tip:
    """Blocks 1..3 in turn; block 4 is an epoch block (in turn: V[1])."""
    return extend_many(genesis(), [V[1], V[2], V[0]], EPOCH_PARAMS)


def test_epoch_block_with_the_validator_list_is_ok():
    tip = before_epoch_block()
    header = child_header(tip.header, tip.snapshot, V[1], EPOCH_PARAMS)
    assert header.checkpoint == tuple(A)
    check_checkpoint(header, tip.snapshot, EPOCH_PARAMS)
    accepted(header, tip, EPOCH_PARAMS)


@pytest.mark.parametrize(
    "checkpoint",
    [
        pytest.param(lambda: (A[0], A[1]), id="one-missing"),
        pytest.param(lambda: (*A, address(OUTSIDER)), id="outsider-added"),
        pytest.param(lambda: (A[0], A[1], address(OUTSIDER)), id="one-replaced"),
        pytest.param(lambda: (A[2], A[1], A[0]), id="not-ascending"),
        pytest.param(lambda: (A[0], A[0], A[1], A[2]), id="duplicate"),
        pytest.param(lambda: (), id="missing"),
    ],
)
def test_epoch_block_with_a_wrong_list_is_rejected(checkpoint):
    tip = before_epoch_block()
    header = child_header(tip.header, tip.snapshot, V[1], EPOCH_PARAMS, checkpoint=checkpoint())
    with pytest.raises(BlockInvalid) as info:
        check_checkpoint(header, tip.snapshot, EPOCH_PARAMS)
    assert reason(info) == "bad-poa-checkpoint"
    assert rejected(header, tip, EPOCH_PARAMS) == "bad-poa-checkpoint"


@pytest.mark.parametrize(
    ("kind", "target"),
    [(VOTE_ADD, lambda: address(OUTSIDER)), (VOTE_REMOVE, lambda: A[0])],
    ids=["add", "remove"],
)
def test_vote_on_epoch_block_is_rejected(kind, target):
    tip = before_epoch_block()
    header = child_header(
        tip.header, tip.snapshot, V[1], EPOCH_PARAMS, vote_kind=kind, vote_address=target()
    )
    assert header.checkpoint == tuple(A)
    with pytest.raises(BlockInvalid) as info:
        check_checkpoint(header, tip.snapshot, EPOCH_PARAMS)
    assert reason(info) == "bad-poa-checkpoint-vote"
    assert rejected(header, tip, EPOCH_PARAMS) == "bad-poa-checkpoint-vote"


@pytest.mark.parametrize("height", [1, 2, 3, 5])
def test_list_on_non_epoch_block_is_rejected(height):
    tip = extend_many(genesis(), [V[h % 3] for h in range(1, height)], EPOCH_PARAMS)
    header = child_header(tip.header, tip.snapshot, V[height % 3], EPOCH_PARAMS, checkpoint=A)
    assert header.height == height and height % EPOCH != 0
    with pytest.raises(BlockInvalid) as info:
        check_checkpoint(header, tip.snapshot, EPOCH_PARAMS)
    assert reason(info) == "bad-poa-checkpoint"
    assert rejected(header, tip, EPOCH_PARAMS) == "bad-poa-checkpoint"


def test_epoch_block_clears_pending_votes_and_lists_the_voted_set():
    """A vote pending before the epoch block is forgotten at it; the list on
    the epoch block is the set after all votes that passed."""
    tip = genesis()
    tip = extend(tip, V[1], EPOCH_PARAMS, vote_kind=VOTE_ADD, vote_address=address(OUTSIDER))
    assert tip.snapshot.votes == (Vote(A[1], address(OUTSIDER), True, 1),)
    tip = extend_many(tip, [V[2], V[0]], EPOCH_PARAMS)
    tip = extend(tip, V[1], EPOCH_PARAMS)
    assert tip.header.checkpoint == tuple(A)
    assert tip.snapshot.votes == ()
    # A second vote after the epoch block does not reach a majority (2 of 3).
    tip = extend(tip, V[2], EPOCH_PARAMS, vote_kind=VOTE_ADD, vote_address=address(OUTSIDER))
    assert tip.snapshot.validators == tuple(A)


# ---------------------------------------------------------------------------
# check_difficulty
# ---------------------------------------------------------------------------


def test_in_turn_block_with_difficulty_2_is_ok():
    tip = genesis()
    assert tip.snapshot.in_turn(1) == A[1]
    header = child_header(tip.header, tip.snapshot, V[1])
    assert header.difficulty == DIFF_IN_TURN == 2
    check_difficulty(header, A[1], tip.snapshot)
    accepted(header, tip)


@pytest.mark.parametrize("sealer", [0, 2])
def test_out_of_turn_block_with_difficulty_1_is_ok(sealer):
    tip = genesis()
    header = child_header(tip.header, tip.snapshot, V[sealer])
    assert header.difficulty == DIFF_NO_TURN == 1
    check_difficulty(header, A[sealer], tip.snapshot)
    accepted(header, tip)


@pytest.mark.parametrize("difficulty", [1, 0, 3])
def test_in_turn_block_with_wrong_difficulty_is_rejected(difficulty):
    tip = genesis()
    header = child_header(tip.header, tip.snapshot, V[1], difficulty=difficulty)
    with pytest.raises(BlockInvalid) as info:
        check_difficulty(header, A[1], tip.snapshot)
    assert reason(info) == "bad-poa-difficulty"
    assert rejected(header, tip) == "bad-poa-difficulty"


@pytest.mark.parametrize("difficulty", [2, 0, 3])
def test_out_of_turn_block_with_wrong_difficulty_is_rejected(difficulty):
    tip = genesis()
    header = child_header(tip.header, tip.snapshot, V[2], difficulty=difficulty)
    with pytest.raises(BlockInvalid) as info:
        check_difficulty(header, A[2], tip.snapshot)
    assert reason(info) == "bad-poa-difficulty"
    assert rejected(header, tip) == "bad-poa-difficulty"


def test_turn_follows_height_modulo_set_size():
    tip = genesis()
    for height in range(1, 10):
        key = V[height % 3]
        tip = extend(tip, key)
        assert tip.header.difficulty == DIFF_IN_TURN
        assert tip.total_difficulty == 2 * height


# ---------------------------------------------------------------------------
# authorisation
# ---------------------------------------------------------------------------


def test_block_sealed_by_a_non_validator_is_rejected():
    tip = genesis()
    header = child_header(tip.header, tip.snapshot, OUTSIDER)
    assert seal_signer(header, CHAIN_ID) == address(OUTSIDER)
    assert rejected(header, tip) == "bad-poa-unauthorized"


def test_voted_out_validator_may_no_longer_seal():
    tip = genesis()
    tip = extend(tip, V[1], vote_kind=VOTE_REMOVE, vote_address=A[0])
    tip = extend(tip, V[2], vote_kind=VOTE_REMOVE, vote_address=A[0])
    assert tip.snapshot.validators == (A[1], A[2])
    header = child_header(tip.header, tip.snapshot, V[0])
    assert rejected(header, tip) == "bad-poa-unauthorized"


def test_voted_in_validator_may_seal():
    tip = genesis()
    tip = extend(tip, V[1], vote_kind=VOTE_ADD, vote_address=address(OUTSIDER))
    header = child_header(tip.header, tip.snapshot, OUTSIDER)
    assert rejected(header, tip) == "bad-poa-unauthorized"
    tip = extend(tip, V[2], vote_kind=VOTE_ADD, vote_address=address(OUTSIDER))
    assert address(OUTSIDER) in tip.snapshot.validators
    extend(tip, OUTSIDER)


# ---------------------------------------------------------------------------
# recently signed
# ---------------------------------------------------------------------------


def test_three_validators_cannot_seal_two_consecutive_blocks():
    tip = extend(genesis(), V[1])
    header = child_header(tip.header, tip.snapshot, V[1])
    assert rejected(header, tip) == "bad-poa-recently-signed"


def test_three_validators_can_seal_again_after_one_other_block():
    tip = extend_many(genesis(), [V[1], V[2]])
    tip = extend(tip, V[1])
    assert tip.height == 3


def test_four_validators_cannot_seal_within_two_blocks():
    keys = sorted_keys(b"poa-rules-four", 4)
    tip = genesis_tip([address(k) for k in keys])
    tip = extend_many(tip, [keys[1], keys[2]])
    header = child_header(tip.header, tip.snapshot, keys[1])
    assert rejected(header, tip) == "bad-poa-recently-signed"
    tip = extend(tip, keys[3])
    header = child_header(tip.header, tip.snapshot, keys[2])
    assert rejected(header, tip) == "bad-poa-recently-signed"
    tip = extend(tip, keys[1])  # two other blocks in between: allowed
    assert tip.sealers[-1] == (4, address(keys[1]))


def test_single_validator_seals_every_block():
    key = V[0]
    tip = extend_many(genesis_tip([A[0]]), [key] * 5)
    assert tip.total_difficulty == 10


def test_recent_window_shrinks_when_a_validator_is_removed():
    """4 validators (limit 3) → 3 (limit 2): after the removal the sealer of two
    blocks back may seal again, which the limit of 3 forbade."""
    keys = sorted_keys(b"poa-rules-four", 4)
    addrs = [address(k) for k in keys]
    tip = genesis_tip(addrs)
    tip = extend(tip, keys[1], vote_kind=VOTE_REMOVE, vote_address=addrs[3])
    tip = extend(tip, keys[2], vote_kind=VOTE_REMOVE, vote_address=addrs[3])
    assert tip.snapshot.validators == tuple(addrs)
    # Without the removal, keys[2] (block 2) may not seal block 4.
    plain = extend(tip, keys[0])
    header = child_header(plain.header, plain.snapshot, keys[2])
    assert rejected(header, plain) == "bad-poa-recently-signed"
    # With it, the window is 2 blocks and keys[2] may.
    tip = extend(tip, keys[0], vote_kind=VOTE_REMOVE, vote_address=addrs[3])
    assert tip.snapshot.validators == tuple(addrs[:3])
    assert tip.snapshot.recents == ((2, addrs[2]), (3, addrs[0]))
    tip = extend(tip, keys[2])
    header = child_header(tip.header, tip.snapshot, keys[2])
    assert rejected(header, tip) == "bad-poa-recently-signed"


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(1, 8),
    attempts=st.lists(st.integers(0, 7), min_size=1, max_size=40),
)
def test_a_validator_seals_at_most_once_per_signer_limit_window(n, attempts):
    """Random sealing attempts on a fixed set: apply accepts exactly those whose
    sealer is not among the last ``limit - 1`` sealers, and in the resulting
    chain every ``limit`` consecutive blocks have distinct sealers."""
    validators = [bytes([i + 1]) * 20 for i in range(n)]
    snapshot = Snapshot.genesis(validators)
    limit = signer_limit(n)
    chain: list[bytes] = []
    for choice in attempts:
        signer = validators[choice % n]
        height = snapshot.height + 1
        too_recent = signer in chain[max(0, len(chain) - (limit - 1)) :] if limit > 1 else False
        if too_recent:
            with pytest.raises(BlockInvalid) as info:
                snapshot.apply(height, signer, VOTE_NONE, NO_ADDRESS, PARAMS.epoch)
            assert reason(info) == "bad-poa-recently-signed"
            continue
        snapshot = snapshot.apply(height, signer, VOTE_NONE, NO_ADDRESS, PARAMS.epoch)
        chain.append(signer)
        assert len(snapshot.recents) <= limit
    for start in range(len(chain)):
        window = chain[start : start + limit]
        assert len(set(window)) == len(window)


@settings(max_examples=50, deadline=None)
@given(n=st.integers(2, 8), data=st.data())
def test_a_validator_can_always_seal_after_limit_minus_one_others(n, data):
    """Liveness side of the window: round-robin over any ``limit`` validators never trips it."""
    validators = [bytes([i + 1]) * 20 for i in range(n)]
    limit = signer_limit(n)
    rotation = data.draw(st.permutations(validators))[:limit]
    snapshot = Snapshot.genesis(validators)
    for height in range(1, 3 * limit + 1):
        signer = rotation[(height - 1) % limit]
        snapshot = snapshot.apply(height, signer, VOTE_NONE, NO_ADDRESS, PARAMS.epoch)
    assert snapshot.height == 3 * limit


# ---------------------------------------------------------------------------
# validate_header: height and parent
# ---------------------------------------------------------------------------


def test_valid_chain_of_headers():
    tip = extend_many(genesis(), [V[1], V[0], V[1], V[2]])
    assert [s for _, s in tip.sealers] == [A[1], A[0], A[1], A[2]]
    assert tip.total_difficulty == 2 + 1 + 1 + 1  # only block 1 is in turn


@pytest.mark.parametrize("height", [0, 1, 3, 7])
def test_header_height_must_be_parent_plus_one(height):
    tip = extend(genesis(), V[1])
    header = child_header(tip.header, tip.snapshot, V[2], height=height)
    assert header.height != tip.height + 1
    assert rejected(header, tip) == "bad-blk-height"


def test_header_checked_against_the_wrong_parent_is_rejected():
    """The parent handed in is the grandparent: heights do not follow."""
    root = genesis()
    tip = extend(root, V[1])
    header = child_header(tip.header, tip.snapshot, V[2])
    with pytest.raises(BlockInvalid) as info:
        validate_header(header, root.header, root.snapshot, PARAMS, header.time)
    assert reason(info) == "bad-blk-height"


def test_snapshot_not_taken_after_the_parent_is_rejected():
    root = genesis()
    tip = extend(root, V[1])
    header = child_header(tip.header, tip.snapshot, V[2])
    with pytest.raises(BlockInvalid) as info:
        validate_header(header, tip.header, root.snapshot, PARAMS, header.time)
    assert reason(info) == "bad-blk-height"


def test_validate_header_returns_the_next_snapshot_and_leaves_the_old_one():
    tip = genesis()
    header = child_header(
        tip.header, tip.snapshot, V[1], vote_kind=VOTE_ADD, vote_address=address(OUTSIDER)
    )
    after = accepted(header, tip)
    assert after == tip.snapshot.apply(1, A[1], VOTE_ADD, address(OUTSIDER), PARAMS.epoch)
    assert after.height == 1 and tip.snapshot.height == 0
    assert tip.snapshot.votes == ()


def test_apply_refuses_a_block_that_does_not_follow_the_snapshot():
    snapshot = Snapshot.genesis(A)
    with pytest.raises(ValueError):
        snapshot.apply(2, A[1], VOTE_NONE, NO_ADDRESS, PARAMS.epoch)


# ---------------------------------------------------------------------------
# Snapshot: genesis and storage
# ---------------------------------------------------------------------------


def test_genesis_snapshot_sorts_the_validators():
    snapshot = Snapshot.genesis([A[2], A[0], A[1]])
    assert snapshot == Snapshot(0, tuple(A))
    assert snapshot.recents == () and snapshot.votes == ()


def test_genesis_rejects_an_empty_set():
    with pytest.raises(ValueError):
        Snapshot.genesis([])


@pytest.mark.parametrize(
    "validators", [[b"\x01" * 20] * 2, [b"\x01" * 20, b"\x02" * 20, b"\x01" * 20]]
)
def test_genesis_rejects_duplicates(validators):
    with pytest.raises(ValueError):
        Snapshot.genesis(validators)


def voted_snapshot() -> Snapshot:
    """A snapshot with recents and pending votes in both directions."""
    tip = genesis()
    tip = extend(tip, V[1], vote_kind=VOTE_ADD, vote_address=address(OUTSIDER))
    tip = extend(tip, V[2], vote_kind=VOTE_REMOVE, vote_address=A[0])
    tip = extend(tip, V[0], vote_kind=VOTE_REMOVE, vote_address=A[1])
    return tip.snapshot


def test_snapshot_round_trips_through_bytes():
    snapshot = voted_snapshot()
    assert snapshot.recents and snapshot.votes
    assert {v.authorize for v in snapshot.votes} == {True, False}
    assert Snapshot.from_bytes(snapshot.to_bytes()) == snapshot
    genesis_snapshot = Snapshot.genesis(A)
    assert Snapshot.from_bytes(genesis_snapshot.to_bytes()) == genesis_snapshot


addresses20 = st.binary(min_size=20, max_size=20)


@settings(max_examples=100, deadline=None)
@given(
    height=st.integers(0, 2**32 - 1),
    validators=st.lists(addresses20, max_size=12, unique=True),
    recents=st.lists(st.tuples(st.integers(0, 2**32 - 1), addresses20), max_size=6),
    votes=st.lists(
        st.builds(Vote, addresses20, addresses20, st.booleans(), st.integers(0, 2**32 - 1)),
        max_size=8,
    ),
)
def test_snapshot_round_trip_property(height, validators, recents, votes):
    snapshot = Snapshot(height, tuple(sorted(validators)), tuple(recents), tuple(votes))
    assert Snapshot.from_bytes(snapshot.to_bytes()) == snapshot


def test_snapshot_decoding_rejects_truncated_and_trailing_bytes():
    data = voted_snapshot().to_bytes()
    with pytest.raises(DecodeError):
        Snapshot.from_bytes(data[:-1])
    with pytest.raises(DecodeError):
        Snapshot.from_bytes(data + b"\x00")


def test_tally_counts_live_votes_per_target():
    snapshot = voted_snapshot()
    assert snapshot.tally() == {address(OUTSIDER): (True, 1), A[0]: (False, 1), A[1]: (False, 1)}


def test_seal_header_keeps_every_unsealed_field():
    tip = genesis()
    unsealed = BlockHeader(
        1, tip.header.hash, b"\x05" * 32, GENESIS_TIME + 9, 1, VOTE_ADD, b"\x09" * 20
    )
    sealed = seal_header(unsealed, V[2], CHAIN_ID)
    assert sealed.unsealed_bytes() == unsealed.unsealed_bytes()
    assert sealed.seal_pubkey == V[2].public_key.to_bytes()
    assert seal_signer(sealed, CHAIN_ID) == A[2]


# ---------------------------------------------------------------------------
# Limits: states that valid chains can reach must stay storable and checkpointable.
# These two tests fail against the current library (see their docstrings).
# ---------------------------------------------------------------------------


def test_pending_votes_grow_by_one_per_block_until_the_epoch():
    """Votes for distinct targets that never reach a majority all stay pending
    until the next epoch block: their number is bounded only by ``epoch``."""
    snapshot = Snapshot.genesis(A)
    for height in range(1, 31):
        target = (10**9 + height).to_bytes(20, "big")
        snapshot = snapshot.apply(height, A[height % 3], VOTE_ADD, target, 10**6)
    assert len(snapshot.votes) == 30
    assert snapshot.validators == tuple(A)


def test_pending_votes_per_signer_are_capped_and_snapshots_round_trip():
    """A validator voting for a new address in each of its blocks keeps at most
    MAX_PENDING_VOTES_PER_SIGNER live votes, so the stored snapshot stays
    bounded and decodable whatever the epoch length."""
    snapshot = Snapshot.genesis(A)
    for height in range(1, 3 * (MAX_PENDING_VOTES_PER_SIGNER + 10)):
        signer = A[height % 3]
        target = (2**100 + height).to_bytes(20, "big")
        snapshot = snapshot.apply(height, signer, VOTE_ADD, target, 10**9)
    per_signer = {s: sum(1 for v in snapshot.votes if v.signer == s) for s in A}
    assert max(per_signer.values()) == MAX_PENDING_VOTES_PER_SIGNER
    assert Snapshot.from_bytes(snapshot.to_bytes()) == snapshot


def test_validator_set_full_ignores_add_votes():
    validators = [(i + 1).to_bytes(20, "big") for i in range(MAX_VALIDATORS)]
    snapshot = Snapshot.genesis(validators)
    snapshot = snapshot.apply(1, validators[0], VOTE_ADD, (10**6).to_bytes(20, "big"), 30_000)
    assert snapshot.votes == ()


def test_validator_set_never_outgrows_an_epoch_checkpoint():
    """BUG: ``Snapshot.apply`` lets votes grow the set past
    ``MAX_CHECKPOINT_VALIDATORS`` (255), but an epoch block must list the whole
    set and a header cannot hold more than 255 addresses, so no valid epoch
    block can ever be made again: the chain halts at the next epoch."""
    validators = [(i + 1).to_bytes(20, "big") for i in range(MAX_CHECKPOINT_VALIDATORS)]
    newcomer = (10**6).to_bytes(20, "big")
    snapshot = Snapshot.genesis(validators)
    for height in range(1, MAX_CHECKPOINT_VALIDATORS // 2 + 2):
        snapshot = snapshot.apply(height, validators[height - 1], VOTE_ADD, newcomer, 30_000)
    if len(snapshot.validators) > MAX_CHECKPOINT_VALIDATORS:
        with pytest.raises(ValueError):
            BlockHeader(30_000, bytes(32), bytes(32), 0, 1, checkpoint=snapshot.validators)
    assert len(snapshot.validators) <= MAX_CHECKPOINT_VALIDATORS
