"""Wallet operations over JSON-RPC (o2ocli.wallet.service) against a real node.

A devnet node in this process (real LevelDB, real RPC server and client, see
``wallet_node``); real wallets with real keys.  The node without a validator
key never mines, so mempool states stay put while they are checked.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from wallet_node import MNEMONICS, PASS, SPEC, DevNode, address, dev_key, new_wallet

from o2ocli.core.locks import PayToAddress
from o2ocli.core.tx import NATIVE_ASSET, TxOut
from o2ocli.rpc.errors import TX_REJECTED, RpcError
from o2ocli.wallet.builder import InsufficientFunds
from o2ocli.wallet.hd import ExtendedKey, mnemonic_to_seed
from o2ocli.wallet.service import (
    balances,
    broadcast,
    history,
    prepare_payment,
    record_change,
    sync,
    wallet_coins,
)
from o2ocli.wallet.wallet import Wallet, create_wallet

COIN = 10**SPEC.native_decimals


@pytest.fixture
def node(tmp_path: Path) -> Iterator[DevNode]:
    """A node that never mines (no validator key)."""
    dev = DevNode(tmp_path / "node", validator=False)
    yield dev
    dev.stop()


def funded_wallet(datadir: Path, name: str = "alice") -> Wallet:
    """``name`` with the devnet funds key imported (the genesis coins)."""
    return create_wallet(datadir, name, SPEC, MNEMONICS[name], PASS,
                         imported=[dev_key("funds")], scrypt_n=2**10)


def funds_total(node: DevNode) -> int:
    funds = SPEC.address(dev_key("funds").public_key.hash160())
    return sum(u["units"] for u in node.call("listunspent", [funds], False))


def native(wallet: Wallet, node: DevNode) -> tuple[int, int]:
    (first, *_) = balances(wallet, node.client)
    assert first.asset == NATIVE_ASSET
    return first.confirmed, first.unconfirmed


def pay(wallet: Wallet, node: DevNode, to: bytes, units: int, **kwargs) -> tuple[str, int]:
    tx, plan = prepare_payment(wallet, node.client, [TxOut(NATIVE_ASSET, units,
                                                           PayToAddress(to))],
                               wallet.unlock(PASS), **kwargs)
    txid = broadcast(node.client, tx)
    record_change(wallet, plan)
    return txid, plan.fee


def test_payment_moves_unconfirmed_balances_and_history_both_ways(tmp_path, node):
    alice = funded_wallet(tmp_path / "w")
    bob, _ = new_wallet(tmp_path / "w", "bob")
    total = funds_total(node)
    assert total > 0
    assert native(alice, node) == (total, 0)
    assert native(bob, node) == (0, 0)

    txid, fee = pay(alice, node, bob.primary_pkh(), 5 * COIN)
    assert node.call("getmempool") == [txid]
    assert fee > 0
    # The confirmed coin is spent in the mempool, the change comes back: net -(5 + fee).
    assert native(alice, node) == (total, -(5 * COIN + fee))
    assert native(bob, node) == (0, 5 * COIN)
    assert [c.output.amount for c in wallet_coins(bob, node.client)] == [5 * COIN]
    assert wallet_coins(bob, node.client, include_mempool=False) == []

    genesis, sent = history(alice, node.client)  # oldest first: the genesis funds, then ours
    assert (genesis.kind, genesis.delta, genesis.height) == ("receive", total, 0)
    assert (sent.txid, sent.kind, sent.delta, sent.fee, sent.height) == (
        txid, "send", -(5 * COIN + fee), fee, None)
    assert sent.counterparties == [address(bob)]
    (got,) = history(bob, node.client)
    assert (got.txid, got.kind, got.delta, got.fee) == (txid, "receive", 5 * COIN, None)
    assert got.counterparties == [SPEC.address(dev_key("funds").public_key.hash160())]
    bob.close()
    alice.close()


def test_payment_to_oneself_is_self_and_costs_only_the_fee(tmp_path, node):
    alice = funded_wallet(tmp_path / "w")
    total = funds_total(node)
    txid, fee = pay(alice, node, alice.primary_pkh(), 3 * COIN)
    _, entry = history(alice, node.client)
    assert (entry.txid, entry.kind, entry.delta, entry.counterparties) == (txid, "self", -fee, [])
    assert native(alice, node) == (total, -fee)
    alice.close()


def test_more_than_the_balance_is_refused_before_anything_is_signed(tmp_path, node):
    alice = funded_wallet(tmp_path / "w")
    bob, _ = new_wallet(tmp_path / "w", "bob")
    total = funds_total(node)
    change = alice.peek_change()
    with pytest.raises(InsufficientFunds) as info:
        pay(alice, node, bob.primary_pkh(), total)  # the fee is missing
    assert info.value.available == total
    with pytest.raises(InsufficientFunds):
        pay(bob, node, alice.primary_pkh(), 1)  # nothing at all
    assert node.call("getmempool") == []
    assert alice.peek_change() == change  # no change address used up
    bob.close()
    alice.close()


def test_payment_the_node_refuses_is_an_rpc_error_and_nothing_is_recorded(tmp_path, node):
    alice = funded_wallet(tmp_path / "w")
    bob, _ = new_wallet(tmp_path / "w", "bob")
    change = alice.peek_change()
    tx, _ = prepare_payment(alice, node.client, [TxOut(NATIVE_ASSET, COIN,
                                                       PayToAddress(bob.primary_pkh()))],
                            alice.unlock(PASS), fixed_fee=0)  # below the relay fee
    with pytest.raises(RpcError) as info:
        broadcast(node.client, tx)
    assert info.value.code == TX_REJECTED
    assert node.call("getmempool") == []
    assert alice.peek_change() == change
    assert native(bob, node) == (0, 0)
    bob.close()
    alice.close()


def bip44_pkh(mnemonic: str, index: int) -> bytes:
    master = ExtendedKey.from_seed(mnemonic_to_seed(mnemonic))
    return master.derive_path(f"m/44'/7171'/0'/0/{index}").pubkey_hash


def test_sync_finds_used_addresses_within_the_gap_limit_only(tmp_path, node):
    """A restored wallet finds payments to address 15 and, through it, 30;
    one to address 60 is more than 20 unused addresses past 30: not found."""
    alice = funded_wallet(tmp_path / "w")
    far = {i: bip44_pkh(MNEMONICS["bob"], i) for i in (15, 30, 60)}
    for pkh in far.values():
        pay(alice, node, pkh, COIN)
    restored, _ = new_wallet(tmp_path / "restored", "bob")
    assert not any(restored.owns(p) for p in far.values())
    entries = sync(restored, node.client)
    assert restored.owns(far[15]) and restored.owns(far[30])
    assert not restored.owns(far[60])
    assert len(entries) == 2
    assert native(restored, node) == (0, 2 * COIN)
    # A fresh receiving address is never one already used.
    assert SPEC.decode_address(restored.receive_address()) not in (far[15], far[30])
    restored.close()
    alice.close()
