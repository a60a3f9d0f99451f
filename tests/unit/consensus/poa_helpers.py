"""Builders for the proof-of-authority tests (``test_poa*.py``).

Everything is real: deterministic secp256k1 validator keys, headers sealed with
:func:`o2ocli.consensus.poa.seal_header`, and every constructed block checked
with :func:`o2ocli.consensus.poa.validate_header` (nothing is mocked).

Difficulties are computed honestly from the parent snapshot: 2 when the sealer
is ``snapshot.in_turn(height)``, 1 otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from o2ocli.consensus.poa import (
    DIFF_IN_TURN,
    DIFF_NO_TURN,
    ForkChoiceKey,
    PoAParams,
    Snapshot,
    seal_header,
    validate_header,
)
from o2ocli.core.block import VOTE_NONE, BlockHeader
from o2ocli.crypto.keys import PrivateKey
from o2ocli.testing.chaingen import deterministic_key

CHAIN_ID = "o2o-poa-test"
OTHER_CHAIN_ID = "o2o-poa-other"
GENESIS_TIME = 1_700_000_000
PERIOD = 5
EPOCH = 30_000
MAX_FUTURE = 15
PARAMS = PoAParams(CHAIN_ID, period=PERIOD, epoch=EPOCH, max_future=MAX_FUTURE)
NO_ADDRESS = bytes(20)
ROOT = bytes(32)


def address(key: PrivateKey) -> bytes:
    """The validator address of ``key`` (HASH160 of its compressed pubkey)."""
    return key.public_key.hash160()


def sorted_keys(seed: bytes, n: int, start: int = 0) -> list[PrivateKey]:
    """``n`` deterministic keys sorted by address, i.e. in validator-set order."""
    return sorted((deterministic_key(seed, start + i) for i in range(n)), key=address)


def genesis_header(validators: Sequence[bytes], time: int = GENESIS_TIME) -> BlockHeader:
    """A genesis header listing ``validators`` (ascending) with an all-zero seal."""
    return BlockHeader(0, bytes(32), ROOT, time, 0, checkpoint=tuple(sorted(validators)))


def honest_difficulty(snapshot: Snapshot, height: int, signer: bytes) -> int:
    """2 if ``signer`` is in turn for ``height`` under ``snapshot``, else 1."""
    return DIFF_IN_TURN if snapshot.in_turn(height) == signer else DIFF_NO_TURN


def child_header(
    parent: BlockHeader,
    snapshot: Snapshot,
    key: PrivateKey,
    params: PoAParams = PARAMS,
    *,
    vote_kind: int = VOTE_NONE,
    vote_address: bytes = NO_ADDRESS,
    time: int | None = None,
    difficulty: int | None = None,
    checkpoint: Sequence[bytes] | None = None,
    height: int | None = None,
    chain_id: str | None = None,
) -> BlockHeader:
    """A header on ``parent`` sealed by ``key``.

    Defaults make it valid: time ``parent.time + period``, honest difficulty,
    and on epoch heights the snapshot's validators as checkpoint.  Any field
    can be overridden to break one rule.
    """
    h = parent.height + 1 if height is None else height
    if difficulty is None:
        difficulty = honest_difficulty(snapshot, h, address(key))
    if checkpoint is None:
        checkpoint = snapshot.validators if h % params.epoch == 0 else ()
    unsealed = BlockHeader(
        h,
        parent.hash,
        ROOT,
        parent.time + params.period if time is None else time,
        difficulty,
        vote_kind,
        vote_address,
        tuple(checkpoint),
    )
    return seal_header(unsealed, key, params.chain_id if chain_id is None else chain_id)


@dataclass(frozen=True)
class Tip:
    """A validated chain head: its header, the snapshot after it and fork-choice data."""

    header: BlockHeader
    snapshot: Snapshot
    total_difficulty: int
    signer_index: int
    """Index of the sealer in the validator set of the parent snapshot (0 for genesis)."""
    validator_count: int
    sealers: tuple[tuple[int, bytes], ...] = ()
    """(height, sealer) of every block above genesis, ascending."""

    @property
    def height(self) -> int:
        return self.header.height

    def fork_key(self) -> ForkChoiceKey:
        """What the EIP-3436 fork choice compares about this head."""
        return ForkChoiceKey(
            self.total_difficulty,
            self.header.height,
            self.signer_index,
            self.validator_count,
            self.header.hash,
        )


def genesis_tip(validators: Sequence[bytes], time: int = GENESIS_TIME) -> Tip:
    """The tip of a chain holding only a genesis header for ``validators``."""
    snapshot = Snapshot.genesis(validators)
    return Tip(genesis_header(validators, time), snapshot, 0, 0, len(snapshot.validators))


def extend(
    tip: Tip,
    key: PrivateKey,
    params: PoAParams = PARAMS,
    *,
    vote_kind: int = VOTE_NONE,
    vote_address: bytes = NO_ADDRESS,
) -> Tip:
    """``tip`` extended by a valid block sealed by ``key``; the header goes through
    :func:`validate_header` (so a block breaking a rule raises BlockInvalid)."""
    header = child_header(
        tip.header, tip.snapshot, key, params, vote_kind=vote_kind, vote_address=vote_address
    )
    snapshot = validate_header(header, tip.header, tip.snapshot, params, header.time)
    signer = address(key)
    parent_set = tip.snapshot.validators
    return Tip(
        header,
        snapshot,
        tip.total_difficulty + header.difficulty,
        parent_set.index(signer),
        len(parent_set),
        tip.sealers + ((header.height, signer),),
    )


def extend_many(tip: Tip, keys: Sequence[PrivateKey], params: PoAParams = PARAMS) -> Tip:
    """``tip`` extended by one plain block per key, in order."""
    for key in keys:
        tip = extend(tip, key, params)
    return tip
