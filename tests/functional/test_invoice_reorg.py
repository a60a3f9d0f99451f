"""A payment reorganised away before finality takes its invoice back from
``confirmed`` to ``new``: 3 validators through the test proxy, the one holding the
payment cut off from the other 2, which mine a double spend of its coin on a
longer chain that wins when the partition heals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from o2ocli.chainspec import load_spec
from o2ocli.core.locks import PayToAddress
from o2ocli.core.tx import NATIVE_ASSET, Outpoint, Tx, TxIn, TxOut
from o2ocli.node.datadir import read_key_file
from o2ocli.testing.chaingen import sign_tx

from .faultnet import ProxiedNetwork
from .framework import run_cli, wait_until
from .netproxy import NetProxy

FEE = 100_000
COIN = 10**8


def payment(node, spec, funds, address: str, amount: int = 2 * COIN) -> Tx:
    """Pays ``amount`` to ``address`` from the funds key's biggest coin (two
    payments built from one state spend the same coin: a double spend)."""
    coins = node.rpc("getutxos", spec.address(funds.public_key.hash160()))
    best = max(coins, key=lambda c: c["units"])
    outs = (TxOut(NATIVE_ASSET, amount, PayToAddress(spec.decode_address(address))),
            TxOut(NATIVE_ASSET, best["units"] - amount - FEE,
                  PayToAddress(funds.public_key.hash160())))
    return sign_tx(Tx((TxIn(Outpoint(bytes.fromhex(best["txid"]), best["index"])),), outs),
                   [[funds]], spec.chain_id)


def show(node, wallet: str, invoice_id: str) -> dict:
    out = run_cli(node.datadir, "--json", "-w", wallet, "invoice", "show", invoice_id)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def attempt(net, proxy, spec, funds, index_of, n: int) -> bool:
    """One try (False when the partition did not line up with the next block)."""
    invoices = []
    for node in net.nodes:
        assert run_cli(node.datadir, "wallet", "create", f"shop{n}",
                       "--no-passphrase").returncode == 0
        out = run_cli(node.datadir, "--json", "-w", f"shop{n}", "invoice", "create",
                      "--amount", "2", "--no-qr")
        invoices.append(json.loads(out.stdout))
    start = net.nodes[0].height()
    wait_until(lambda: all(x.height() > start for x in net.nodes) and len(net.net.tips()) == 1,
               30, "a fresh common tip")
    tip = net.nodes[0].height()
    in_turn = index_of[net.nodes[0].rpc("getinfo")["validators"][(tip + 1) % len(net.nodes)]]
    if in_turn == index_of[net.nodes[0].rpc("getblock", tip)["validator"]]:
        return False
    names = [x.name for x in net.nodes]
    lone = net.nodes[in_turn]
    others = [x for x in net.nodes if x is not lone]
    proxy.partition([[names[in_turn]], [m for m in names if m != names[in_turn]]])
    if any(x.height() != tip for x in net.nodes):
        proxy.heal()
        return False
    pay = payment(lone, spec, funds, invoices[in_turn]["address"])
    lone.rpc("sendrawtx", pay.to_bytes().hex())
    wait_until(lambda: lone.height() == tip + 1, 30, "the lone validator's block")
    if lone.rpc("gettx", pay.txid.hex())["height"] != tip + 1:
        proxy.heal()
        return False
    wallet, inv_id = f"shop{n}", invoices[in_turn]["id"]
    confirmed = show(lone, wallet, inv_id)
    assert (confirmed["state"], confirmed["height"]) == ("confirmed", tip + 1)
    # The majority side mines a double spend of the same coin and goes on.
    spend = payment(others[0], spec, funds, spec.address(funds.public_key.hash160()), COIN)
    others[0].rpc("sendrawtx", spend.to_bytes().hex())
    wait_until(lambda: all(x.height() >= tip + 3 for x in others)
               and others[0].rpc("gettx", spend.txid.hex())["height"] is not None, 30,
               "the majority's longer chain with the double spend")
    proxy.heal()
    back = wait_until(lambda: (s := show(lone, wallet, inv_id))["state"] == "new" and s, 60,
                      "the invoice back to new on the lone node")
    assert back["txids"] == [] and back["paid"] == "0"
    wait_until(lambda: lone.rpc("gettx", spend.txid.hex())["final"], 60, "the double spend final")
    assert show(lone, wallet, inv_id)["state"] == "new"
    return True


@pytest.mark.slow
def test_double_spent_payment_reorganised_away_takes_invoice_back_to_new(tmp_path, node_factory):
    proxy = NetProxy(seed=17).start()
    try:
        net = ProxiedNetwork(tmp_path / "net", lambda n: node_factory(f"r-{n}"), 3, proxy)
        net.start_all()
        net.wait_mesh()
        wait_until(lambda: min(net.finalized(x) for x in net.nodes) >= 2, 60, "finality")
        spec = load_spec(str(net.net.spec_path))
        funds = read_key_file(net.net.spec_path.parent / "genesis-funds.key", spec.wif_version)
        index_of = {spec.address(read_key_file(Path(net.net.key(i)), spec.wif_version)
                                 .public_key.hash160()): i for i in range(len(net.nodes))}
        for n in range(4):
            if attempt(net, proxy, spec, funds, index_of, n):
                return
        pytest.fail("the partition never lined up with the next block in 4 attempts")
    finally:
        proxy.stop()
