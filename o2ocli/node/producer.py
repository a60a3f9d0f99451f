"""Block production for a validator: templates, sealing, and the timing loop.

:func:`build_block` is deterministic given its inputs (tip, mempool template,
key, time, vote).  :class:`Producer` decides *when*: in turn as soon as the
period has passed since the parent; out of turn after an extra random delay
so that in-turn validators normally win: at least
:data:`MIN_OUT_OF_TURN_WAIT`, or twice the measured lag of in-turn blocks
(how long after their due time they were connected here: build, send and
check), plus Clique's random "wiggle" of up to ``signer_limit × 500 ms``;
never when this validator sealed too recently.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from o2ocli.consensus.errors import BlockInvalid
from o2ocli.consensus.poa import DIFF_IN_TURN, DIFF_NO_TURN, seal_header, signer_limit
from o2ocli.core.block import (
    BLOCK_VERSION_VOTES,
    VOTE_ADD,
    VOTE_NONE,
    VOTE_REMOVE,
    Block,
    BlockHeader,
    block_commitment,
)
from o2ocli.core.locks import PayToAddress
from o2ocli.core.payloads import Coinbase
from o2ocli.core.tx import NATIVE_ASSET, Tx, TxOut
from o2ocli.crypto.keys import PrivateKey
from o2ocli.storage.chainstate import TipChange

from .chain import ChainManager
from .mempool import Mempool

__all__ = ["Proposals", "build_block", "Producer", "WIGGLE_STEP"]

log = logging.getLogger("o2ocli.producer")

WIGGLE_STEP = 0.5
"""Seconds of out-of-turn delay per signer-limit slot (Clique uses 500 ms)."""
MIN_OUT_OF_TURN_WAIT = 0.5
"""Seconds an out-of-turn validator always waits past the due time, before
the measured arrival lag and the random wiggle are added."""
MAX_OUT_OF_TURN_WAIT = 10.0
"""Cap on the lag-based part of the out-of-turn wait (a stalled in-turn
validator must not stop the chain for long)."""
HEADER_RESERVE = 2_000
"""Bytes kept free in a block template for the header and the fee claim."""


@dataclass
class Proposals:
    """This validator's standing votes: address → True (add) / False (remove)."""

    votes: dict[bytes, bool] = field(default_factory=dict)

    def pick(self, validators: tuple[bytes, ...], rng: random.Random) -> tuple[int, bytes]:
        """A meaningful proposal to carry in the next block, or (VOTE_NONE, zero)."""
        meaningful = [
            (addr, add) for addr, add in sorted(self.votes.items()) if (addr in validators) != add
        ]
        if not meaningful:
            return VOTE_NONE, bytes(20)
        addr, add = rng.choice(meaningful)
        return (VOTE_ADD if add else VOTE_REMOVE), addr


def build_block(
    chain: ChainManager,
    mempool: Mempool,
    key: PrivateKey,
    now: int,
    proposals: Proposals | None = None,
    rng: random.Random | None = None,
) -> Block:
    """Assemble and seal the next block on the tip: mempool txs by fee rate, a
    fee claim paying this validator, the finality votes and evidence not yet
    on the chain, the validator-set vote or epoch checkpoint, the difficulty
    for this validator's turn, and time ``max(parent + period, now)``."""
    params = chain.spec.consensus_params
    tip = chain.tip
    height = tip.height + 1
    snap = chain.tip_snapshot()
    signer = key.public_key.hash160()
    epoch_block = height % chain.poa.epoch == 0
    # Room for the header (an epoch block lists every validator), the seal, the
    # tx-count varint and the fee claim.
    votes, evidence = chain.finality.votes_for_block(tip)
    reserve = (HEADER_RESERVE + (20 * len(snap.validators) if epoch_block else 0)
               + 8 + sum(len(v.to_bytes()) for v in votes)
               + sum(len(e.to_bytes()) for e in evidence))
    entries = mempool.block_template(params.max_block_size - reserve, params.max_block_txs - 1)
    fees = sum(e.fee for e in entries)
    txs: list[Tx] = [e.tx for e in entries]
    if fees:
        claim = Tx((), (TxOut(NATIVE_ASSET, fees, PayToAddress(signer)),), payload=Coinbase(height))
        txs.insert(0, claim)
    vote_kind, vote_address = VOTE_NONE, bytes(20)
    if not epoch_block and proposals is not None:
        vote_kind, vote_address = proposals.pick(snap.validators, rng or random.Random())
    header = BlockHeader(
        height,
        tip.hash,
        block_commitment(BLOCK_VERSION_VOTES, txs, votes, evidence),
        max(tip.header.time + chain.poa.period, now),
        DIFF_IN_TURN if snap.in_turn(height) == signer else DIFF_NO_TURN,
        vote_kind,
        vote_address,
        snap.validators if epoch_block else (),
        version=BLOCK_VERSION_VOTES,
    )
    return Block(seal_header(header, key, chain.spec.chain_id), tuple(txs), votes, evidence)


class Producer:
    """The sealing loop of one validator.

    ``submit(block, now)`` hands a sealed block to the node, which connects it,
    updates the mempool and relays it, and returns the tip change.  The node
    calls :meth:`poke` whenever the tip moves or a transaction arrives, so the
    loop re-plans at once.  With ``only_with_txs`` (``--dev-period 0``) a block
    is sealed only while transactions wait in the mempool; ``interval`` spaces
    blocks further apart than the spec's period (``--dev-period N``).
    """

    def __init__(
        self,
        chain: ChainManager,
        mempool: Mempool,
        key: PrivateKey,
        *,
        submit: Callable[[Block, int], TipChange],
        proposals: Proposals | None = None,
        only_with_txs: bool = False,
        interval: int = 0,
        can_seal: Callable[[], bool] | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        lock: asyncio.Lock | None = None,
    ) -> None:
        self.chain = chain
        self.mempool = mempool
        self.key = key
        self.address = key.public_key.hash160()
        self.proposals = proposals or Proposals()
        self.submit = submit
        self.only_with_txs = only_with_txs
        self.interval = interval
        self.can_seal = can_seal or (lambda: True)
        self.clock = clock
        self.rng = rng or random.Random()
        self.wake = asyncio.Event()
        self.lock = lock or asyncio.Lock()
        self.sealed = 0
        self.arrival_lag = 0.0
        """Smoothed seconds between an in-turn block's due time and its connect
        here (see :meth:`note_arrival`)."""

    def note_arrival(self, lag: float) -> None:
        """An in-turn block from a peer was connected ``lag`` seconds after its
        due time (parent time + period).  Rises at once, decays slowly, so a
        slow block raises the out-of-turn wait for the next ones."""
        lag = min(max(lag, 0.0), MAX_OUT_OF_TURN_WAIT)
        self.arrival_lag = lag if lag > self.arrival_lag else 0.9 * self.arrival_lag + 0.1 * lag

    def out_of_turn_wait(self) -> float:
        """The fixed part of the out-of-turn wait (the wiggle comes on top)."""
        return min(max(MIN_OUT_OF_TURN_WAIT, 2 * self.arrival_lag), MAX_OUT_OF_TURN_WAIT)

    def _unfinal_txs(self) -> bool:
        """True if a block above the finalized one carries transactions: with
        ``only_with_txs`` an empty block is still sealed so those become final
        (finality needs a child block to vote for)."""
        chain = self.chain
        height = chain.height
        final = chain.finalized_height
        for h in range(height, max(final, height - 4), -1):
            block_hash = chain.state.get_block_hash(h)
            block = chain.state.get_block(block_hash) if block_hash else None
            if block is not None and any(tx.inputs for tx in block.txs):
                return True
        return False

    def poke(self) -> None:
        """Re-plan now (the tip moved or a transaction arrived)."""
        self.wake.set()

    def _delay(self) -> float | None:
        """Seconds to wait before sealing the next block, or None if this
        validator may not seal it now."""
        tip = self.chain.tip
        snap = self.chain.tip_snapshot()
        height = tip.height + 1
        if not snap.is_validator(self.address) or not self.can_seal():
            return None
        limit = signer_limit(len(snap.validators))
        if any(s == self.address and h > height - limit for h, s in snap.recents):
            return None
        if self.only_with_txs and len(self.mempool) == 0 and not self._unfinal_txs():
            return None
        due = tip.header.time + max(self.chain.poa.period, self.interval)
        delay = max(0.0, due - self.clock())
        if snap.in_turn(height) != self.address:
            delay += self.out_of_turn_wait() + self.rng.uniform(0, limit * WIGGLE_STEP)
        return delay

    async def run(self) -> None:
        """Seal blocks until cancelled."""
        while True:
            self.wake.clear()
            delay = self._delay()
            try:
                await asyncio.wait_for(self.wake.wait(), timeout=delay if delay is not None else 5)
                continue  # something changed: plan again
            except TimeoutError:
                if delay is None:
                    continue
            await self._seal_once()

    async def _seal_once(self) -> None:
        async with self.lock:
            now = int(self.clock())
            if self._delay() is None:
                return
            block = build_block(self.chain, self.mempool, self.key, now, self.proposals, self.rng)
            if block.header.time > now + self.chain.poa.max_future:
                return
            try:
                change = self.submit(block, max(now, block.header.time))
            except BlockInvalid as exc:  # a bug or a race with an incoming block
                log.error("own block %d refused: %s", block.height, exc)
                if exc.txid is not None and exc.txid in self.mempool:
                    # Never build the same invalid template again: drop the tx
                    # (and what depends on it) so the chain keeps moving.
                    dropped = self.mempool.drop([exc.txid])
                    log.warning("dropped %d mempool txs that made the block invalid",
                                len(dropped))
                    self.poke()
                return
            if change:
                self.sealed += 1
                log.info(
                    "sealed block %d (%s, %d txs)", block.height, block.hash.hex()[:16],
                    len(block.txs),
                )
