"""Build real signed payments for functional tests (until the wallet lands,
tests sign with the devnet's public funds key directly)."""

from __future__ import annotations

from typing import Any

from o2ocli.chainspec import ChainSpec, load_spec
from o2ocli.core.locks import PayToAddress
from o2ocli.core.tx import NATIVE_ASSET, Outpoint, Tx, TxIn, TxOut
from o2ocli.crypto.address import decode_wif
from o2ocli.crypto.keys import PrivateKey
from o2ocli.testing.chaingen import sign_tx

FEE = 10_000  # base units; above the devnet's minimum relay fee for small txs


def devnet() -> ChainSpec:
    return load_spec("devnet")


def funds_key(spec: ChainSpec) -> PrivateKey:
    secret, _ = decode_wif(spec.dev_keys["funds"], version=spec.wif_version)
    return PrivateKey(secret)


class Payer:
    """Spends one key's coins, following its own change (unconfirmed chains work)."""

    def __init__(self, spec: ChainSpec, key: PrivateKey) -> None:
        self.spec = spec
        self.key = key
        self.address = spec.address(key.public_key.hash160())
        self.lock = PayToAddress(key.public_key.hash160())
        self.coin: tuple[Outpoint, int] | None = None

    def refresh(self, node: Any) -> None:
        """Pick the largest spendable coin of this key (mempool included)."""
        utxos = node.rpc("getutxos", self.address)
        native = [u for u in utxos if u["asset"] == self.spec.native_symbol]
        best = max(native, key=lambda u: self.spec.amount(u["amount"]))
        self.coin = (Outpoint(bytes.fromhex(best["txid"]), best["index"]),
                     self.spec.amount(best["amount"]))

    def pay(self, to_pkh: bytes, amount: int, fee: int = FEE) -> Tx:
        """A signed tx paying ``amount`` to ``to_pkh``; change (output 1) stays ours."""
        assert self.coin is not None, "call refresh() first"
        outpoint, value = self.coin
        change = value - amount - fee
        outputs = [TxOut(NATIVE_ASSET, amount, PayToAddress(to_pkh))]
        if change > 0:
            outputs.append(TxOut(NATIVE_ASSET, change, self.lock))
        tx = sign_tx(Tx((TxIn(outpoint),), tuple(outputs)), [[self.key]], self.spec.chain_id)
        self.coin = (Outpoint(tx.txid, 1), change) if change > 0 else None
        return tx
