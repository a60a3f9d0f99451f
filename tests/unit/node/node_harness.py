"""A real devnet node in this process for the RPC method tests: LevelDB in a
temp dir, the RPC server on a free port, no peers.  Blocks are sealed on
demand with the devnet's validator key (no background producer), so every
test decides exactly what the chain holds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from o2ocli.chainspec import ChainSpec, load_spec
from o2ocli.core.block import Block
from o2ocli.core.locks import PayToAddress
from o2ocli.core.payloads import NO_PAYLOAD, Payload
from o2ocli.core.tx import NATIVE_ASSET, Outpoint, Tx, TxIn, TxOut
from o2ocli.crypto.address import decode_wif
from o2ocli.crypto.keys import PrivateKey
from o2ocli.node.datadir import init_datadir
from o2ocli.node.producer import build_block
from o2ocli.node.runtime import Node, NodeConfig
from o2ocli.rpc.errors import RpcError
from o2ocli.testing.chaingen import deterministic_key, sign_tx

COIN_UNITS = 100_000_000
"""Base units of one devnet coin."""
FEE = 100_000
"""Base units; well above the devnet's minimum relay fee for the txs built here."""


def dev_key(spec: ChainSpec, role: str) -> PrivateKey:
    secret, _ = decode_wif(spec.dev_keys[role], version=spec.wif_version)
    return PrivateKey(secret)


class NodeHarness:
    """A started :class:`Node` and helpers to fill its chain and call methods."""

    def __init__(self, tmp_path: Path, *, p2p: bool = False) -> None:
        self.spec = load_spec("devnet")
        init_datadir(tmp_path, self.spec)
        self.node = Node(NodeConfig(
            datadir=tmp_path, spec=self.spec, rpc_port=0,
            p2p_listen=("127.0.0.1", 0) if p2p else None,
            use_bootstrap=False, discover=False))
        self.validator = dev_key(self.spec, "validator")
        self.funds = dev_key(self.spec, "funds")
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(self.node.start())

    def close(self) -> None:
        self.loop.run_until_complete(self.node.shutdown())
        self.loop.close()

    # -- calling ------------------------------------------------------------
    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on the node's event loop (as the RPC server runs it)."""

        async def call() -> Any:
            return fn(*args)

        return self.loop.run_until_complete(call())

    def call(self, method: Callable[..., Any], *args: Any) -> Any:
        """An RPC method function, run directly on the node."""
        return self.run(method, self.node, *args)

    def error(self, method: Callable[..., Any], *args: Any) -> RpcError:
        """The :class:`RpcError` an RPC method function raises."""
        with pytest.raises(RpcError) as info:
            self.call(method, *args)
        return info.value

    # -- chain content ------------------------------------------------------
    def address(self, key: PrivateKey) -> str:
        return self.spec.address(key.public_key.hash160())

    def send(self, tx: Tx) -> Tx:
        """Hand ``tx`` to the node (the mempool), as ``sendrawtx`` does."""
        self.run(self.node.submit_tx, tx)
        return tx

    def mine(self, txs: Sequence[Tx] = ()) -> Block:
        """Submit ``txs`` to the mempool, then seal and connect the next block."""
        for tx in txs:
            self.run(self.node.submit_tx, tx)
        chain = self.node.chain
        block = build_block(chain, self.node.mempool, self.validator, int(time.time()))
        change = self.run(self.node.submit_block, block, block.header.time)
        assert change and chain.tip.hash == block.hash
        return block

    def coin(self, key: PrivateKey, minimum: int = 0) -> tuple[Outpoint, int]:
        """The largest confirmed native coin of ``key`` no mempool tx spends."""
        pkh = key.public_key.hash160()
        best = max(
            ((op, c.output.amount) for op, c in self.node.chain.state.address_coins(pkh)
             if c.output.asset == NATIVE_ASSET and c.output.lock == PayToAddress(pkh)
             and self.node.mempool.spender_of(op) is None),
            key=lambda item: item[1], default=None)
        assert best is not None and best[1] >= minimum, "no coin big enough"
        return best

    def spend(
        self,
        key: PrivateKey,
        outputs: Sequence[TxOut],
        payload: Payload | Callable[[list[Outpoint]], Payload] = NO_PAYLOAD,
        *,
        extra: Sequence[tuple[Outpoint, PrivateKey]] = (),
        first: Outpoint | None = None,
        burn: int = 0,
    ) -> Tx:
        """A signed tx spending a native coin of ``key`` (or ``first``) and
        ``extra`` inputs to ``outputs``, native change back to ``key``;
        ``payload`` may be a function of the inputs (payloads signed over them);
        ``burn`` native units are burned (a token issue's fee)."""
        needed = sum(o.amount for o in outputs if o.asset == NATIVE_ASSET) + FEE + burn
        outpoint = first if first is not None else self.coin(key, needed)[0]
        prevouts = [outpoint] + [op for op, _ in extra]
        value = sum(self.value_of(op) for op in prevouts)
        if callable(payload):
            payload = payload(prevouts)
        outs = list(outputs)
        change = value - needed
        if change > 0:
            outs.append(TxOut(NATIVE_ASSET, change, PayToAddress(key.public_key.hash160())))
        tx = Tx(tuple(TxIn(op) for op in prevouts), tuple(outs), payload=payload)
        return sign_tx(tx, [[key]] + [[k] for _, k in extra], self.spec.chain_id)

    def value_of(self, outpoint: Outpoint) -> int:
        """Native units of a confirmed coin (0 for another asset)."""
        coin = self.node.chain.state.get(outpoint)
        assert coin is not None
        return coin.output.amount if coin.output.asset == NATIVE_ASSET else 0

    def pay(self, key: PrivateKey, to: PrivateKey, amount: int) -> Tx:
        return self.spend(key, [TxOut(NATIVE_ASSET, amount,
                                      PayToAddress(to.public_key.hash160()))])


def p2a(key: PrivateKey) -> PayToAddress:
    return PayToAddress(key.public_key.hash160())


def wire(prevouts: Sequence[Outpoint]) -> list[bytes]:
    """Outpoints in wire form (txid ‖ u32 LE index), as payload digests bind them."""
    return [op.txid + op.index.to_bytes(4, "little") for op in prevouts]


MERCHANT = deterministic_key(b"rpc-methods", 1)
CUSTOMER = deterministic_key(b"rpc-methods", 2)
STRANGER = deterministic_key(b"rpc-methods", 3)
PAYEE = deterministic_key(b"rpc-methods", 4)
