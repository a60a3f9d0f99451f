"""Loyalty tokens end to end against a real --dev node process: issue, mint,
burn, send, authority hand-over, freeze, rewards, and the consensus rules
that hold even when the wallet's own checks are bypassed."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest

from .framework import wait_until

ISSUE_FEE = Decimal(10)  # chaindata/devnet.json: fees.token_issue_fee
WALLETS = ("shop", "alice", "bob")


# --------------------------------------------------------------------------- helpers
@pytest.fixture
def market(node_factory):
    """A --dev node (a block whenever txs wait) with unencrypted wallets shop,
    alice and bob, each funded with 100 O2O by one payment from ``dev``."""
    node = node_factory()
    node.start("--dev", "--dev-period", "0")
    node.addr = {
        name: node.cli_json("wallet", "create", name, "--no-passphrase")["address"]
        for name in WALLETS
    }
    pay = [x for address in node.addr.values() for x in ("--to", address, "--amount", "100")]
    funding = node.cli_json("-w", "dev", "wallet", "send", *pay)
    mined(node, funding["txid"])
    node.funding = funding["txid"]
    return node


def mined(node, txid: str) -> dict[str, Any]:
    """Wait until ``txid`` is in a block; returns its ``gettx``."""
    def check() -> dict[str, Any] | None:
        tx = node.rpc("gettx", txid)
        # Final, not just mined: the dev node seals one more (empty) block for
        # that, so block heights are settled when this returns.
        return tx if tx["final"] else None

    return wait_until(check, timeout=30, what=f"tx {txid[:16]} to be mined")


def balances(node, wallet: str) -> dict[str, Decimal]:
    """Confirmed balance per asset symbol (nothing may be pending)."""
    rows = node.cli_json("-w", wallet, "wallet", "balance")["balances"]
    assert all(r["unconfirmed"] == "0" for r in rows), rows
    return {r["asset"]: Decimal(r["confirmed"]) for r in rows}


def refused(node, *args: str, code: int = 1) -> str:
    """Run a command that must fail with one ``error:`` line; returns stderr."""
    out = node.cli(*args)
    assert out.returncode == code, (args, out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    assert out.stderr.startswith("error: ") and out.stderr.count("\n") == 1, out.stderr
    return out.stderr


def snapshot(node, symbols: tuple[str, ...] = ("BEANS",)) -> dict[str, Any]:
    """Everything a refused command must leave untouched: every wallet's ``wallet
    balance`` (run in parallel), the tokens' registry entries (``gettoken`` is
    what ``token info`` shows, and more), the mempool and the UTXO set."""
    with ThreadPoolExecutor(len(WALLETS)) as pool:
        wallets = list(pool.map(lambda w: node.cli_json("-w", w, "wallet", "balance"), WALLETS))
    return {
        "balances": dict(zip(WALLETS, wallets, strict=True)),
        "tokens": {s: node.rpc("gettoken", s) for s in symbols},
        "mempool": node.rpc("getmempool"),
        "utxos": node.rpc("getutxosetinfo"),
    }


def issue(node, wallet: str, symbol: str = "beans", supply: str = "1000", decimals: str = "2",
          mintable: bool = True) -> dict[str, Any]:
    """Issue a token with ``token issue`` and wait until it is mined."""
    flags = ("--mintable",) if mintable else ()
    out = node.cli_json("-w", wallet, "token", "issue", "--symbol", symbol, "--name",
                        "Bean Points", "--supply", supply, "--decimals", decimals, *flags)
    mined(node, out["txid"])
    return out


def owns(node, wallet: str, address: str) -> bool:
    """True if ``address`` belongs to ``wallet`` (read in-process, wallet closed)."""
    from o2ocli.chainspec import load_spec
    from o2ocli.wallet.wallet import Wallet

    spec = load_spec("devnet")
    with Wallet.open(node.datadir, wallet, spec) as w:
        return w.owns(spec.decode_address(address))


def start_issue(node, wallet: str, symbol: str, name: str, supply: int) -> str:
    """Step 1 of an issue only (the commitment), through the wallet's Python API:
    the CLI reveals as soon as the commitment is mined.  Returns the commit txid."""
    from o2ocli.chainspec import load_spec
    from o2ocli.wallet import o2o
    from o2ocli.wallet.wallet import Wallet

    with Wallet.open(node.datadir, wallet, load_spec("devnet")) as w:
        return o2o.start_issue(w, node.client(), w.unlock(None), symbol, name, 0, supply, False)


def token_flow(tx: dict[str, Any], symbol: str) -> tuple[Decimal, Decimal]:
    """(in, out) amounts of ``symbol`` in a ``gettx`` result."""
    def total(items: list[dict[str, Any]]) -> Decimal:
        return sum((Decimal(i["amount"]) for i in items if i["asset"] == symbol), Decimal(0))

    return total(tx["inputs"]), total(tx["outputs"])


# --------------------------------------------------------------------------- tests
def test_issue_mintable_token_burns_the_fee(market):
    node = market
    totals_before = node.rpc("getutxosetinfo")["totals"]
    assert totals_before == {"O2O": "100000000"}
    before = balances(node, "shop")
    assert before == {"O2O": Decimal(100)}
    assert node.cli_json("token", "list") == {"tokens": []}

    out = node.cli_json("-w", "shop", "token", "issue", "--symbol", "beans", "--name",
                        "Bean Points", "--supply", "1000", "--decimals", "2", "--mintable")
    assert out["symbol"] == "BEANS"
    assert re.fullmatch("[0-9a-f]{64}", out["txid"]) and re.fullmatch("[0-9a-f]{64}", out["asset"])
    reveal = mined(node, out["txid"])
    commit = node.rpc("gettx", out["commit"])
    assert commit["payload"]["type"] == "token-commit"
    assert commit["height"] < reveal["height"]  # commit mined first, then revealed
    assert reveal["payload"]["type"] == "token-issue"
    assert reveal["payload"]["symbol"] == "BEANS" and reveal["payload"]["asset"] == out["asset"]
    assert reveal["burned"] == "10"

    info = node.cli_json("token", "info", "BEANS")
    assert info["symbol"] == "BEANS" and info["name"] == "Bean Points"
    assert info["asset"] == out["asset"] and info["txid"] == out["txid"]
    assert info["supply"] == "1000" and info["decimals"] == 2 and info["mintable"] is True
    assert info["holders"] == 1 and info["height"] == reveal["height"]
    assert info["issuer"] == commit["outputs"][0]["address"] and owns(node, "shop", info["issuer"])
    assert owns(node, "shop", info["authority_holder"])
    # Symbols are case-insensitive; the asset id works too.
    assert node.cli_json("token", "info", "beans") == info
    assert node.cli_json("token", "info", out["asset"]) == info
    assert node.cli_json("token", "list") == {"tokens": [info]}

    after = balances(node, "shop")
    assert after["BEANS"] == 1000 and after["BEANS!"] == 1
    spent = before["O2O"] - after["O2O"]
    assert spent == ISSUE_FEE + Decimal(commit["fee"]) + Decimal(reveal["fee"])
    assert spent > ISSUE_FEE

    # The issuance fee is destroyed: the native coin in the UTXO set shrank by exactly 10
    # (ordinary fees go to the validator and stay in the set).
    totals = node.rpc("getutxosetinfo")["totals"]
    assert Decimal(totals_before["O2O"]) - Decimal(totals["O2O"]) == ISSUE_FEE
    assert totals["BEANS"] == "1000" and totals["BEANS!"] == "1"
    supply = node.cli_json("chain", "info")["supply"]
    assert Decimal(supply["O2O"]) == Decimal(totals_before["O2O"]) - ISSUE_FEE


def test_mint_send_burn_and_decimals(market):
    node = market
    addr = node.addr
    issue(node, "shop")

    minted = node.cli_json("-w", "shop", "token", "mint", "BEANS", "--amount", "50")
    mint_tx = mined(node, minted["txid"])
    assert mint_tx["payload"]["type"] == "token-mint" and mint_tx["payload"]["units"] == 5000
    info = node.cli_json("token", "info", "BEANS")
    assert info["supply"] == "1050" and info["mintable"] is True
    assert owns(node, "shop", info["authority_holder"])
    shop = balances(node, "shop")
    assert shop["BEANS"] == 1050 and shop["BEANS!"] == 1
    assert node.rpc("getutxosetinfo")["totals"]["BEANS"] == "1050"

    # token send: fee in native coin, the token change comes back to the shop.
    sent = node.cli_json("-w", "shop", "token", "send", "BEANS", "--to", addr["alice"],
                         "--amount", "100")
    tx = mined(node, sent["txid"])
    assert tx["fee"] == sent["fee"]
    beans_in, beans_out = token_flow(tx, "BEANS")
    assert beans_in == beans_out
    to_alice = [o for o in tx["outputs"] if o["address"] == addr["alice"]]
    assert [(o["asset"], o["amount"]) for o in to_alice] == [("BEANS", "100")]
    change = [o for o in tx["outputs"] if o["asset"] == "BEANS" and o["address"] != addr["alice"]]
    assert change and all(owns(node, "shop", o["address"]) for o in change)
    after = balances(node, "shop")
    assert after == {"O2O": shop["O2O"] - Decimal(sent["fee"]), "BEANS": Decimal(950),
                     "BEANS!": Decimal(1)}
    assert balances(node, "alice") == {"O2O": Decimal(100), "BEANS": Decimal(100)}

    # wallet send --asset (any case) does the same.
    shop = after
    sent = node.cli_json("-w", "shop", "wallet", "send", "--asset", "beans", "--to", addr["bob"],
                         "--amount", "12.34")
    tx = mined(node, sent["txid"])
    beans_in, beans_out = token_flow(tx, "BEANS")
    assert beans_in == beans_out >= Decimal("12.34")
    assert balances(node, "shop") == {"O2O": shop["O2O"] - Decimal(sent["fee"]),
                                      "BEANS": Decimal("937.66"), "BEANS!": Decimal(1)}
    assert balances(node, "bob") == {"O2O": Decimal(100), "BEANS": Decimal("12.34")}

    # A customer burns some of what it received: the supply shrinks with it.
    burned = node.cli_json("-w", "alice", "token", "burn", "BEANS", "--amount", "25")
    tx = mined(node, burned["txid"])
    assert tx["payload"]["type"] == "token-burn" and tx["payload"]["units"] == 2500
    assert token_flow(tx, "BEANS") == (Decimal(100), Decimal(75))
    assert balances(node, "alice") == {"O2O": Decimal(100) - Decimal(tx["fee"]),
                                       "BEANS": Decimal(75)}
    assert node.cli_json("token", "info", "BEANS")["supply"] == "1025"
    assert node.rpc("getutxosetinfo")["totals"]["BEANS"] == "1025"

    # Amounts the token cannot express, or that the wallet does not have: nothing changes.
    state = snapshot(node)
    for args in (
        ("-w", "shop", "token", "send", "BEANS", "--to", addr["alice"], "--amount", "0.001"),
        ("-w", "shop", "wallet", "send", "--asset", "BEANS", "--to", addr["alice"],
         "--amount", "1.005"),
        ("-w", "shop", "token", "mint", "BEANS", "--amount", "0.001"),
        ("-w", "alice", "token", "burn", "BEANS", "--amount", "0.125"),
    ):
        err = refused(node, *args)
        assert "bad amount" in err and "more than 2 decimal places" in err, (args, err)
    for args in (
        ("-w", "shop", "token", "mint", "BEANS", "--amount", "0"),
        ("-w", "alice", "token", "burn", "BEANS", "--amount", "-5"),
        ("-w", "alice", "token", "send", "BEANS", "--to", addr["bob"], "--amount", "1e2"),
    ):
        assert "bad amount" in refused(node, *args), args
    assert "insufficient funds" in refused(node, "-w", "alice", "token", "burn", "BEANS",
                                           "--amount", "75.01")
    assert "insufficient funds" in refused(node, "-w", "alice", "token", "send", "BEANS",
                                           "--to", addr["bob"], "--amount", "76")
    assert "NOPE" in refused(node, "-w", "shop", "wallet", "send", "--asset", "NOPE",
                             "--to", addr["bob"], "--amount", "1")
    assert snapshot(node) == state


def test_transfer_authority(market):
    node = market
    addr = node.addr
    issue(node, "shop")
    moved = node.cli_json("-w", "shop", "token", "transfer-authority", "BEANS", "--to", addr["bob"])
    tx = mined(node, moved["txid"])
    assert tx["fee"] == moved["fee"]
    assert [(o["asset"], o["amount"], o["address"]) for o in tx["outputs"]
            if o["asset"] == "BEANS!"] == [("BEANS!", "1", addr["bob"])]
    info = node.cli_json("token", "info", "BEANS")
    assert info["authority_holder"] == addr["bob"]
    assert info["mintable"] is True and info["supply"] == "1000"
    assert balances(node, "shop").get("BEANS!", 0) == 0
    assert balances(node, "bob") == {"O2O": Decimal(100), "BEANS!": Decimal(1)}

    # The old holder can no longer mint, freeze or hand it on.
    state = snapshot(node)
    for args in (("token", "mint", "BEANS", "--amount", "5"),
                 ("token", "freeze", "BEANS", "--yes")):
        err = refused(node, "-w", "shop", *args)
        assert "does not hold the mint authority of BEANS" in err and addr["bob"] in err, err
    refused(node, "-w", "shop", "token", "transfer-authority", "BEANS", "--to", addr["alice"])
    assert snapshot(node) == state

    # The new holder can, and keeps the authority.
    minted = node.cli_json("-w", "bob", "token", "mint", "BEANS", "--amount", "5",
                           "--to", addr["alice"])
    mined(node, minted["txid"])
    info = node.cli_json("token", "info", "BEANS")
    assert info["supply"] == "1005" and info["authority_holder"] == addr["bob"]
    assert balances(node, "alice") == {"O2O": Decimal(100), "BEANS": Decimal(5)}
    assert balances(node, "bob")["BEANS!"] == 1
    assert balances(node, "shop")["BEANS"] == 1000


def test_fixed_supply_and_freeze(market):
    node = market
    addr = node.addr
    fixed = issue(node, "bob", "fixed", supply="500", decimals="0", mintable=False)
    info = node.cli_json("token", "info", "FIXED")
    assert info["asset"] == fixed["asset"]
    assert info["mintable"] is False and info["authority_holder"] is None
    assert info["supply"] == "500" and info["decimals"] == 0
    assert "FIXED!" not in balances(node, "bob") and balances(node, "bob")["FIXED"] == 500
    assert "FIXED!" not in node.rpc("getutxosetinfo")["totals"]

    state = snapshot(node, ("FIXED",))
    assert "fixed supply" in refused(node, "-w", "bob", "token", "mint", "FIXED", "--amount", "1")
    assert "fixed supply" in refused(node, "-w", "bob", "token", "freeze", "FIXED", "--yes")
    assert "fixed supply" in refused(node, "-w", "bob", "token", "transfer-authority", "FIXED",
                                     "--to", addr["alice"])
    assert snapshot(node, ("FIXED",)) == state

    # Freezing a mintable token: only with --yes, and then nobody can mint again.
    issue(node, "shop")
    state = snapshot(node, ("BEANS", "FIXED"))
    assert "--yes" in refused(node, "-w", "shop", "token", "freeze", "BEANS")
    assert snapshot(node, ("BEANS", "FIXED")) == state
    frozen = node.cli_json("-w", "shop", "token", "freeze", "BEANS", "--yes")
    tx = mined(node, frozen["txid"])
    assert tx["payload"]["type"] == "token-freeze"
    assert token_flow(tx, "BEANS!") == (Decimal(1), Decimal(0))
    info = node.cli_json("token", "info", "BEANS")
    assert info["mintable"] is False and info["authority_holder"] is None
    assert info["supply"] == "1000"
    shop = balances(node, "shop")
    assert "BEANS!" not in shop and shop["BEANS"] == 1000
    assert "BEANS!" not in node.rpc("getutxosetinfo")["totals"]

    state = snapshot(node, ("BEANS", "FIXED"))
    assert "fixed supply" in refused(node, "-w", "shop", "token", "mint", "BEANS", "--amount", "1")
    assert "fixed supply" in refused(node, "-w", "shop", "token", "freeze", "BEANS", "--yes")
    assert snapshot(node, ("BEANS", "FIXED")) == state


def test_duplicate_and_invalid_symbols(market):
    node = market
    issue(node, "shop")
    state = snapshot(node)
    for symbol in ("Beans", "bEaNs"):
        err = refused(node, "-w", "bob", "token", "issue", "--symbol", symbol, "--name",
                      "Bob's Beans", "--supply", "5")
        assert "BEANS is already issued" in err, err
    for symbol in ("ab", "", "ABCDEFGHIJKLM", "BE-ANS", "ÄBC", "beans!"):
        err = refused(node, "-w", "bob", "token", "issue", "--symbol", symbol, "--name", "x",
                      "--supply", "5")
        assert "invalid symbol" in err and "3-12" in err, (symbol, err)
    assert snapshot(node) == state  # no commitment sent, no fee spent

    # A race decided by consensus: bob commits to CORN first but alice reveals first.
    bob_before = balances(node, "bob")
    totals_before = node.rpc("getutxosetinfo")["totals"]
    commit = mined(node, start_issue(node, "bob", "CORN", "Bob Corn", 5))
    assert commit["payload"]["type"] == "token-commit"
    won = issue(node, "alice", "Corn", supply="7", decimals="0", mintable=False)
    assert won["symbol"] == "CORN"
    info = node.cli_json("token", "info", "CORN")
    assert owns(node, "alice", info["issuer"]) and info["supply"] == "7"
    state = snapshot(node, ("BEANS", "CORN"))
    # The same command finishes bob's pending issue: the node refuses the reveal.
    err = refused(node, "-w", "bob", "token", "issue", "--symbol", "corn", "--name", "Bob Corn",
                  "--supply", "5")
    assert "bad-token-symbol-taken" in err and "CORN" in err
    assert snapshot(node, ("BEANS", "CORN")) == state
    # Bob paid only the commitment's fee; only alice's issuance fee was burned.
    assert balances(node, "bob") == {"O2O": bob_before["O2O"] - Decimal(commit["fee"])}
    totals = node.rpc("getutxosetinfo")["totals"]
    assert Decimal(totals_before["O2O"]) - Decimal(totals["O2O"]) == ISSUE_FEE


def test_rewards_pay_each_purchase_once(market):
    node = market
    addr = node.addr
    issue(node, "shop")
    purchase = node.cli_json("-w", "alice", "wallet", "send", "--to", addr["shop"],
                             "--amount", "12.5")
    since = str(mined(node, purchase["txid"])["height"])  # leaves out dev's funding payment
    reward = ("-w", "shop", "token", "reward", "BEANS", "--rate", "2", "--since", since)

    state = snapshot(node)
    dry = node.cli_json(*reward, "--dry-run")
    assert dry == {"txid": None, "symbol": "BEANS", "total": "25", "rewards": [
        {"customer": addr["alice"], "amount": "25", "refs": [purchase["txid"]], "basis": "12.5"},
    ]}
    assert snapshot(node) == state  # a dry run sends nothing

    alice_before = balances(node, "alice")
    paid = node.cli_json(*reward)
    assert paid["rewards"] == dry["rewards"] and paid["total"] == "25"
    tx = mined(node, paid["txid"])
    assert tx["payload"]["type"] == "token-reward" and tx["payload"]["refs"] == [purchase["txid"]]
    alice = balances(node, "alice")
    assert alice == {"O2O": alice_before["O2O"], "BEANS": Decimal(25)}
    assert balances(node, "shop")["BEANS"] == 975

    # Again: that purchase was rewarded already, so nobody is paid.
    state = snapshot(node)
    assert "nobody to reward" in refused(node, *reward)
    assert node.cli_json(*reward, "--dry-run")["rewards"] == []
    assert snapshot(node) == state
    # Rates the token cannot express change nothing either.
    rate = ("-w", "shop", "token", "reward", "BEANS", "--since", since, "--rate")
    assert "more than 2 decimals" in refused(node, *rate, "0.001")
    assert "positive" in refused(node, *rate, "0")
    assert snapshot(node) == state

    # A new purchase is rewarded on the next run, and only it.
    again = node.cli_json("-w", "alice", "wallet", "send", "--to", addr["shop"], "--amount", "3")
    mined(node, again["txid"])
    dry = node.cli_json(*reward, "--dry-run")
    assert [(r["amount"], r["refs"], r["basis"]) for r in dry["rewards"]] == [
        ("6", [again["txid"]], "3")]
    assert owns(node, "alice", dry["rewards"][0]["customer"])
    paid = node.cli_json(*reward)
    mined(node, paid["txid"])
    assert balances(node, "alice")["BEANS"] == 31
    assert balances(node, "shop")["BEANS"] == 969
    assert "nobody to reward" in refused(node, *reward)

    # Without --since only the older, never rewarded payment is left: dev's funding.
    rest = node.cli_json("-w", "shop", "token", "reward", "BEANS", "--rate", "2",
                         "--dry-run")["rewards"]
    assert [(r["refs"], r["amount"], r["basis"]) for r in rest] == [([node.funding], "200", "100")]


def test_consensus_refuses_tokens_without_authority(market):
    """Raw transactions built and signed in-test (no wallet checks involved):
    the node itself refuses to create or destroy tokens against the rules."""
    from o2ocli.chainspec import load_spec
    from o2ocli.core.locks import PayToAddress
    from o2ocli.core.payloads import NO_PAYLOAD, TokenBurn, TokenMint
    from o2ocli.core.tx import NATIVE_ASSET, Outpoint, Tx, TxIn, TxOut
    from o2ocli.crypto.address import decode_wif
    from o2ocli.crypto.keys import PrivateKey
    from o2ocli.testing.chaingen import sign_tx

    node = market
    addr = node.addr
    spec = load_spec("devnet")
    asset = bytes.fromhex(issue(node, "shop")["asset"])
    mined(node, node.cli_json("-w", "shop", "token", "send", "BEANS", "--to", addr["alice"],
                              "--amount", "100")["txid"])

    wif = node.cli_json("-w", "alice", "wallet", "export-key", addr["alice"])["wif"]
    key = PrivateKey(decode_wif(wif, version=spec.wif_version)[0])
    mine = PayToAddress(spec.decode_address(addr["alice"]))
    utxos = node.rpc("getutxos", addr["alice"])
    coins = {u["asset"]: u for u in utxos}
    assert len(utxos) == 2 and set(coins) == {"O2O", "BEANS"}
    assert coins["BEANS"]["units"] == 10_000  # 100 BEANS at 2 decimals
    native, beans = (TxIn(Outpoint(bytes.fromhex(coins[a]["txid"]), coins[a]["index"]))
                     for a in ("O2O", "BEANS"))
    change = TxOut(NATIVE_ASSET, coins["O2O"]["units"] - 10_000, mine)

    def raw(inputs: list[TxIn], outputs: list[TxOut], payload: Any = NO_PAYLOAD) -> str:
        tx = Tx(tuple(inputs), tuple(outputs), payload=payload)
        return sign_tx(tx, [[key]] * len(inputs), spec.chain_id).to_bytes().hex()

    state = snapshot(node)
    cases = [
        # Mint without spending the authority output (alice never held it).
        (raw([native], [TxOut(asset, 500, mine), change], TokenMint(asset, 500)),
         "bad-token-no-authority"),
        (raw([native, beans], [TxOut(asset, 10_500, mine), change], TokenMint(asset, 500)),
         "bad-token-no-authority"),
        # Tokens out of thin air, with no payload at all.
        (raw([native], [TxOut(asset, 500, mine), change]), "bad-txns-in-belowout"),
        (raw([native, beans], [TxOut(asset, 10_001, mine), change]), "bad-txns-in-belowout"),
        # Burning more than the inputs hold; burning without saying so.
        (raw([native, beans], [change], TokenBurn(asset, 10_001)),
         "bad-token-burn-exceeds-inputs"),
        (raw([native, beans], [TxOut(asset, 9_000, mine), change]), "bad-txns-asset-unbalanced"),
    ]
    for hex_tx, reason in cases:
        err = refused(node, "chain", "broadcast", hex_tx)
        assert f"transaction rejected: {reason}" in err, (reason, err)
    assert snapshot(node) == state
    assert node.cli_json("token", "info", "BEANS")["supply"] == "1000"

    # The same construction with an honest payload goes through: the refusals above
    # were the token rules, not a badly built transaction.
    honest = raw([native, beans], [TxOut(asset, 9_000, mine), change], TokenBurn(asset, 1_000))
    txid = node.cli_json("chain", "broadcast", honest)["txid"]
    mined(node, txid)
    assert node.cli_json("token", "info", "BEANS")["supply"] == "990"
    assert balances(node, "alice")["BEANS"] == 90
