"""Escrow contracts from the wallet (o2ocli.wallet.escrow).

alice pays, bob and dave are payees, carol arbitrates; a mining devnet node
in this process (real LevelDB, real RPC server and client, see
``wallet_node``) with real wallets and keys; the node's ``getescrow`` says
what the chain recorded, and its mempool has the last word on signatures.
"""

from __future__ import annotations

import pytest
from wallet_node import COIN, PASS, SPEC, address, mined, new_wallet

from o2ocli.core.locks import BPS_TOTAL
from o2ocli.core.tx import NATIVE_ASSET, Outpoint, Tx
from o2ocli.rpc.errors import TX_REJECTED, RpcError
from o2ocli.wallet.errors import O2OError
from o2ocli.wallet.escrow import (
    cosign,
    describe_ruling,
    dispute,
    get_escrow,
    open_escrow,
    parse_escrow_id,
    refund,
    release,
)
from o2ocli.wallet.service import balances

TXID = "ab" * 32


def test_escrow_ids_parse_as_txid_and_index():
    assert parse_escrow_id(f"{TXID}:3") == Outpoint(bytes.fromhex(TXID), 3)
    assert parse_escrow_id(TXID) == Outpoint(bytes.fromhex(TXID), 0)


@pytest.mark.parametrize("text", ["", "ab" * 31, "zz" * 32, f"{TXID}:-1", f"{TXID}:x",
                                  f"{TXID}:\u0661", f"{TXID}:1:2"])
def test_bad_escrow_ids_are_refused(text):
    with pytest.raises(O2OError, match="invalid escrow id"):
        parse_escrow_id(text)


@pytest.fixture
def parties(tmp_path, wallets):
    alice, bob = wallets
    carol, _ = new_wallet(tmp_path / "w", "carol")
    dave, _ = new_wallet(tmp_path / "w", "dave")
    yield alice, bob, carol, dave
    dave.close()
    carol.close()


def open_one(mining, alice, payees, *, units: int = 5 * COIN, arbiter=None,
             timeout_in: int = 1000) -> Outpoint:
    timeout = mining.call("getblockcount") + timeout_in
    tx, plan = open_escrow(alice, mining.client, alice.unlock(PASS), payees, units, NATIVE_ASSET,
                           arbiter, timeout)
    return Outpoint(bytes.fromhex(mined(mining, alice, (tx, plan))), 0)


def settle(mining, tx: Tx) -> str:
    txid = mining.call("sendrawtx", tx.to_bytes().hex())
    mining.wait_mined(txid)
    return txid


def native_total(mining, wallet) -> int:
    first = balances(wallet, mining.client)[0]
    assert first.asset == NATIVE_ASSET
    return first.confirmed + first.unconfirmed


def test_payer_releases_the_shares_and_only_the_payer_can(mining, parties):
    alice, bob, carol, dave = parties
    escrow = open_one(mining, alice, [(bob.primary_pkh(), 7000), (dave.primary_pkh(), 3000)],
                      arbiter=carol.primary_pkh())
    info = get_escrow(mining.client, escrow)
    assert (info["state"], info["units"], info["arbiter"]) == ("open", 5 * COIN, address(carol))
    assert [p["bps"] for p in info["payees"]] == [7000, 3000]

    with pytest.raises(O2OError, match="only the payer"):
        release(bob, mining.client, bob.unlock(PASS), escrow)
    with pytest.raises(O2OError, match="neither a payee nor the payer"):
        refund(carol, mining.client, carol.unlock(PASS), escrow, mining.call("getblockcount"))
    with pytest.raises(O2OError, match="only from height"):
        refund(alice, mining.client, alice.unlock(PASS), escrow, mining.call("getblockcount"))

    bob_before = native_total(mining, bob)
    txid = settle(mining, release(alice, mining.client, alice.unlock(PASS), escrow))
    info = get_escrow(mining.client, escrow)
    assert info["settlement"]["txid"] == txid and info["settlement"]["path"] == "release"
    bob_got = native_total(mining, bob) - bob_before
    dave_got = native_total(mining, dave)
    fee = 5 * COIN - bob_got - dave_got
    assert 0 < fee <= 5 * COIN // 100  # the release fee is capped at 1%
    # Shares of what is left after the fee; the rounding remainder goes to the first payee.
    assert dave_got == (bob_got + dave_got) * 3000 // BPS_TOTAL
    with pytest.raises(O2OError, match="already"):
        release(alice, mining.client, alice.unlock(PASS), escrow)


def test_a_payee_refunds_everything_to_the_payer(mining, parties):
    alice, bob, _, dave = parties
    escrow = open_one(mining, alice, [(bob.primary_pkh(), BPS_TOTAL)])
    tx, path = refund(bob, mining.client, bob.unlock(PASS), escrow,
                      mining.call("getblockcount"))
    assert path == "refund"
    settle(mining, tx)
    info = get_escrow(mining.client, escrow)
    assert info["settlement"]["path"] == "refund"
    assert [SPEC.address(o.lock.addresses()[0]) for o in tx.outputs] == [info["payer"]]
    assert sum(o.amount for o in tx.outputs) > 5 * COIN * 99 // 100
    with pytest.raises(O2OError, match="already"):
        refund(bob, mining.client, bob.unlock(PASS), escrow, mining.call("getblockcount"))


def test_arbiter_ruling_needs_a_party_cosigner(mining, parties):
    alice, bob, carol, dave = parties
    escrow = open_one(mining, alice, [(bob.primary_pkh(), BPS_TOTAL)],
                      arbiter=carol.primary_pkh())
    with pytest.raises(O2OError, match="not a party"):
        dispute(dave, mining.client, dave.unlock(PASS), escrow, [(bob.primary_pkh(), BPS_TOTAL)])
    ruling, complete = dispute(carol, mining.client, carol.unlock(PASS), escrow,
                               [(bob.primary_pkh(), 6000), (alice.primary_pkh(), 4000)])
    assert complete is False
    raw = ruling.to_bytes().hex()
    # One signature is not enough for the node.
    with pytest.raises(RpcError) as info:
        mining.call("sendrawtx", raw)
    assert info.value.code == TX_REJECTED
    described = describe_ruling(bob, mining.client, raw)
    assert f"to {address(bob)}" in described and f"to {address(alice)}" in described
    assert SPEC.native_symbol in described

    with pytest.raises(O2OError, match="no missing signature"):
        cosign(dave, mining.client, dave.unlock(PASS), raw)
    with pytest.raises(O2OError, match="no missing signature"):
        cosign(carol, mining.client, carol.unlock(PASS), raw)  # already signed
    with pytest.raises(O2OError, match="not a transaction"):
        cosign(bob, mining.client, bob.unlock(PASS), "00ff")
    signed, complete = cosign(bob, mining.client, bob.unlock(PASS), raw)
    assert complete is True
    settle(mining, signed)
    assert get_escrow(mining.client, escrow)["settlement"]["path"] == "dispute"


def test_escrow_without_arbiter_cannot_be_disputed(mining, parties):
    alice, bob, _, _ = parties
    escrow = open_one(mining, alice, [(bob.primary_pkh(), BPS_TOTAL)])
    with pytest.raises(O2OError, match="no arbiter"):
        dispute(bob, mining.client, bob.unlock(PASS), escrow, [(bob.primary_pkh(), BPS_TOTAL)])


def test_bad_escrows_are_refused_before_anything_is_sent(mining, parties):
    alice, bob, carol, _ = parties
    key = alice.unlock(PASS)
    height = mining.call("getblockcount")
    with pytest.raises(O2OError, match="invalid escrow"):
        open_escrow(alice, mining.client, key, [(bob.primary_pkh(), 5000)], COIN, NATIVE_ASSET,
                    None, height + 10)
    with pytest.raises(O2OError, match="must hold at least"):
        open_escrow(alice, mining.client, key, [(bob.primary_pkh(), BPS_TOTAL)], 1000,
                    NATIVE_ASSET, carol.primary_pkh(), height + 10)
    with pytest.raises(O2OError, match="no escrow"):
        get_escrow(mining.client, Outpoint(bytes.fromhex(TXID), 0))
    assert mining.call("getmempool") == []
