"""A deterministic generator of valid, fully signed chains.

Used by the test suite and by ``benchmarks/``: it owns a ring of keys derived
from a seed, a pool of coins those keys can spend, and builds blocks of
payment transactions on top of each other.  :meth:`ChainGenerator.fork`
copies the state so tests can build competing branches.
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from o2ocli.core.block import Block, BlockHeader, tx_merkle_root
from o2ocli.core.locks import Lock, PayToAddress
from o2ocli.core.payloads import Coinbase, GenesisAlloc
from o2ocli.core.tx import NATIVE_ASSET, Outpoint, SigPair, Tx, TxIn, TxOut
from o2ocli.crypto.hashes import sha256
from o2ocli.crypto.keys import PrivateKey

__all__ = [
    "deterministic_key",
    "p2a",
    "sign_tx",
    "make_genesis",
    "make_block",
    "Spendable",
    "ChainGenerator",
]


def deterministic_key(seed: bytes, index: int) -> PrivateKey:
    """Key number ``index`` of the ring named ``seed`` (never use for real funds)."""
    return PrivateKey(sha256(b"o2o-test-key" + seed + index.to_bytes(4, "big")))


def p2a(key: PrivateKey) -> PayToAddress:
    """A pay-to-address lock for ``key``."""
    return PayToAddress(key.public_key.hash160())


def sign_tx(tx: Tx, signers: Sequence[Sequence[PrivateKey]], chain_id: str) -> Tx:
    """``tx`` with input ``i`` signed by every key in ``signers[i]`` (in that order)."""
    digest = tx.sighash(chain_id)
    witnesses = [
        tuple(SigPair(key.public_key.to_bytes(), key.sign(digest)) for key in keys)
        for keys in signers
    ]
    return tx.with_witnesses(witnesses)


def make_genesis(chain_id: str, outputs: Sequence[TxOut], time: int = 1_700_000_000) -> Block:
    """A genesis block allocating ``outputs`` (split into txs of ≤ 1000 outputs)."""
    txs = []
    for start in range(0, max(len(outputs), 1), 1000):
        chunk = tuple(outputs[start : start + 1000])
        if chunk:
            note = f"{chain_id}/{start // 1000}".encode()
            txs.append(Tx((), chunk, payload=GenesisAlloc(note)))
    header = BlockHeader(0, bytes(32), tx_merkle_root(txs), time)
    return Block(header, tuple(txs))


def make_block(
    parent: BlockHeader,
    txs: Sequence[Tx],
    *,
    fees: int = 0,
    fee_lock: Lock | None = None,
    time: int | None = None,
    difficulty: int = 2,
) -> Block:
    """A block on ``parent`` holding ``txs``; if ``fees`` and ``fee_lock`` are
    given, a fee claim paying ``fees`` to ``fee_lock`` comes first."""
    height = parent.height + 1
    body = list(txs)
    if fees and fee_lock is not None:
        body.insert(0, Tx((), (TxOut(NATIVE_ASSET, fees, fee_lock),), payload=Coinbase(height)))
    header = BlockHeader(
        height,
        parent.hash,
        tx_merkle_root(body),
        parent.time + 1 if time is None else time,
        difficulty,
    )
    return Block(header, tuple(body))


@dataclass(frozen=True, slots=True)
class Spendable:
    """A coin the generator can spend."""

    outpoint: Outpoint
    output: TxOut
    key: PrivateKey


class ChainGenerator:
    """Builds a valid chain of signed payment transactions.

    ``n_keys`` keys each get ``coins_per_key`` genesis coins of ``coin_value``.
    Each generated tx pays a fixed ``fee``; txs alternate between 1-in/2-out
    and 2-in/2-out so the coin pool grows slowly.
    """

    def __init__(
        self,
        chain_id: str = "o2o-test",
        *,
        seed: bytes = b"gen",
        n_keys: int = 50,
        coins_per_key: int = 4,
        coin_value: int = 1_000_000_000,
        fee: int = 1_000,
        miner_seed: bytes = b"miner",
    ) -> None:
        self.chain_id = chain_id
        self.fee = fee
        self.keys = [deterministic_key(seed, i) for i in range(n_keys)]
        self.miner = deterministic_key(miner_seed, 0)
        outputs = [
            TxOut(NATIVE_ASSET, coin_value, p2a(key))
            for _ in range(coins_per_key)
            for key in self.keys
        ]
        self.genesis = make_genesis(chain_id, outputs)
        self.pool: deque[Spendable] = deque()
        for tx in self.genesis.txs:
            for index, out in enumerate(tx.outputs):
                key = self.keys[(len(self.pool)) % n_keys]
                self.pool.append(Spendable(Outpoint(tx.txid, index), out, key))
        self.tip = self.genesis.header
        self._counter = 0

    def fork(self) -> ChainGenerator:
        """An independent copy of this generator's state (for competing branches)."""
        return copy.deepcopy(self)

    def _next_key(self) -> PrivateKey:
        self._counter += 1
        return self.keys[self._counter % len(self.keys)]

    def payment(self, n_inputs: int, n_outputs: int = 2) -> tuple[Tx, list[Spendable]]:
        """A signed payment spending ``n_inputs`` pool coins (not yet applied)."""
        spent = [self.pool.popleft() for _ in range(n_inputs)]
        total = sum(s.output.amount for s in spent) - self.fee
        share = total // n_outputs
        amounts = [share] * (n_outputs - 1) + [total - share * (n_outputs - 1)]
        outputs = tuple(TxOut(NATIVE_ASSET, a, p2a(self._next_key())) for a in amounts)
        tx = Tx(tuple(TxIn(s.outpoint) for s in spent), outputs)
        return sign_tx(tx, [[s.key] for s in spent], self.chain_id), spent

    def _credit(self, tx: Tx) -> None:
        by_hash = {k.public_key.hash160(): k for k in self.keys}
        by_hash[self.miner.public_key.hash160()] = self.miner
        for index, out in enumerate(tx.outputs):
            key = by_hash.get(out.lock.pubkey_hash) if isinstance(out.lock, PayToAddress) else None
            if key is not None:
                self.pool.append(Spendable(Outpoint(tx.txid, index), out, key))

    def next_block(
        self,
        n_txs: int,
        *,
        claim_fees: bool = True,
        extra_txs: Sequence[Tx] = (),
        extra_fees: int = 0,
    ) -> Block:
        """Build the next block with ``n_txs`` payments (then ``extra_txs``, whose
        fees total ``extra_fees``) and advance the generator's tip and pool to it."""
        txs = []
        for i in range(n_txs):
            n_inputs = 1 if i % 2 == 0 else 2
            if len(self.pool) < n_inputs:
                break
            tx, _ = self.payment(n_inputs)
            txs.append(tx)
        fees = self.fee * len(txs) + extra_fees if claim_fees else 0
        txs.extend(extra_txs)
        block = make_block(self.tip, txs, fees=fees, fee_lock=p2a(self.miner))
        for tx in block.txs:
            self._credit(tx)
        self.tip = block.header
        return block
