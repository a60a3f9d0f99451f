"""Builders for the consensus rule tests.

Everything is real: deterministic secp256k1 keys, real signatures over the real
sighash, and a UTXO view that is a plain ``dict`` ``{Outpoint: Coin}`` (the rules
only call ``view.get``).  Helpers are exposed through fixtures (the ``kit``
object) rather than imported, so this conftest never clashes with the other
``conftest`` modules of the suite.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytest

from o2ocli.consensus.block import genesis_effects
from o2ocli.consensus.params import ConsensusParams
from o2ocli.core.block import Block, BlockHeader
from o2ocli.core.locks import Lock, Multisig
from o2ocli.core.payloads import NO_PAYLOAD, Coinbase, Payload
from o2ocli.core.tx import NATIVE_ASSET, TX_VERSION, Coin, Outpoint, Tx, TxIn, TxOut
from o2ocli.crypto.hashes import sha256
from o2ocli.crypto.keys import PrivateKey
from o2ocli.testing.chaingen import deterministic_key, make_block, make_genesis, p2a, sign_tx

CHAIN_ID = "o2o-test"
N_KEYS = 16
GENESIS_COIN = 1_000_000
GENESIS_COINS = 8


class Kit:
    """A UTXO view plus builders for coins, signed spends and blocks.

    ``keys[i]`` is a fixed deterministic key; ``view`` is the dict the rules read.
    """

    def __init__(self, params: ConsensusParams, keys: list[PrivateKey]) -> None:
        self.params = params
        self.chain_id = params.chain_id
        self.keys = keys
        self.view: dict[Outpoint, Coin] = {}
        self._funding = itertools.count()

    # -- locks and outputs ------------------------------------------------
    def p2a(self, i: int = 0) -> Lock:
        """Pay-to-address lock of ``keys[i]``."""
        return p2a(self.keys[i])

    def sorted_keys(self, n: int, start: int = 0) -> list[PrivateKey]:
        """``keys[start:start+n]`` sorted by HASH160, i.e. in multisig lock order."""
        return sorted(self.keys[start : start + n], key=lambda k: k.public_key.hash160())

    def multisig(self, m: int, keys: Sequence[PrivateKey]) -> Multisig:
        """An m-of-len(keys) lock over ``keys``."""
        return Multisig.of(m, [k.public_key.hash160() for k in keys])

    def out(self, amount: int, lock: Lock | None = None, asset: bytes = NATIVE_ASSET) -> TxOut:
        """An output (default lock: ``keys[1]``)."""
        return TxOut(asset, amount, self.p2a(1) if lock is None else lock)

    # -- coins ------------------------------------------------------------
    def fund(
        self,
        amount: int = 1_000,
        lock: Lock | None = None,
        asset: bytes = NATIVE_ASSET,
        *,
        height: int = 0,
    ) -> Outpoint:
        """Put a fresh coin (default lock: ``keys[0]``) into the view; return its outpoint."""
        n = next(self._funding)
        outpoint = Outpoint(sha256(b"o2o-consensus-tests/funding" + n.to_bytes(4, "big")), n % 3)
        output = TxOut(asset, amount, self.p2a(0) if lock is None else lock)
        self.view[outpoint] = Coin(output, height)
        return outpoint

    # -- transactions -----------------------------------------------------
    def unsigned(
        self,
        prevouts: Sequence[Outpoint],
        outputs: Sequence[TxOut],
        *,
        lock_height: int = 0,
        payload: Payload = NO_PAYLOAD,
        version: int = TX_VERSION,
    ) -> Tx:
        """A transaction with empty witnesses."""
        inputs = tuple(TxIn(p) for p in prevouts)
        return Tx(inputs, tuple(outputs), lock_height, payload, version)

    def sign(
        self, tx: Tx, signers: Sequence[Sequence[PrivateKey]], chain_id: str | None = None
    ) -> Tx:
        """``tx`` with input ``i`` signed by ``signers[i]`` (default chain: the params')."""
        return sign_tx(tx, signers, self.chain_id if chain_id is None else chain_id)

    def spend(
        self,
        prevouts: Sequence[Outpoint],
        outputs: Sequence[TxOut],
        signers: Sequence[Sequence[PrivateKey]] | None = None,
        **kwargs: object,
    ) -> Tx:
        """A signed spend; by default every input is signed by ``keys[0]``."""
        tx = self.unsigned(prevouts, outputs, **kwargs)  # type: ignore[arg-type]
        if signers is None:
            signers = [[self.keys[0]]] * len(prevouts)
        return self.sign(tx, signers)

    def claim(self, height: int, *amounts: int) -> Tx:
        """A fee claim for block ``height`` paying ``amounts`` to ``keys[0]``."""
        outs = tuple(TxOut(NATIVE_ASSET, a, self.p2a(0)) for a in amounts)
        return Tx((), outs, payload=Coinbase(height))

    # -- blocks -----------------------------------------------------------
    def genesis(self) -> Block:
        """A genesis block of ``GENESIS_COINS`` coins of ``GENESIS_COIN``; coin ``i``
        belongs to ``keys[i % 4]``.  The view is reset to exactly its coins."""
        outputs = [TxOut(NATIVE_ASSET, GENESIS_COIN, self.p2a(i % 4)) for i in range(GENESIS_COINS)]
        block = make_genesis(self.chain_id, outputs)
        self.view.clear()
        self.view.update(genesis_effects(block).created)
        return block

    @staticmethod
    def block(parent: BlockHeader, txs: Sequence[Tx]) -> Block:
        """A block on ``parent`` holding exactly ``txs`` (correct merkle root)."""
        return make_block(parent, txs)


@pytest.fixture(scope="session")
def params() -> ConsensusParams:
    """The test chain's parameters (library defaults)."""
    return ConsensusParams(CHAIN_ID)


@pytest.fixture(scope="session")
def keys() -> list[PrivateKey]:
    """``N_KEYS`` deterministic keys."""
    return [deterministic_key(b"consensus-tests", i) for i in range(N_KEYS)]


@pytest.fixture
def kit(params: ConsensusParams, keys: list[PrivateKey]) -> Kit:
    """A fresh builder with an empty UTXO view."""
    return Kit(params, keys)


@pytest.fixture
def view(kit: Kit) -> dict[Outpoint, Coin]:
    """The kit's UTXO view (a plain dict)."""
    return kit.view
