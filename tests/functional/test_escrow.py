"""Escrow for services end to end against a real --dev node process: open,
release, refund, reclaim after the timeout, the arbiter's ruling with a
co-signature, token escrows, and the consensus path rules that hold even
when the wallet's own checks are bypassed with hand-built raw transactions."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest

from .framework import wait_until

COIN = 10**8  # chaindata/devnet.json: native decimals 8
BPS = 10_000
PARTIES = ("alice", "fixit", "platform", "arb")
FUNDS = Decimal(100)


# --------------------------------------------------------------------------- helpers
@pytest.fixture
def market(node_factory):
    """A --dev node (a block whenever txs wait) with unencrypted wallets alice
    (the payer), fixit and platform (payees) and arb (the arbiter), each funded
    with 100 O2O by one payment from ``dev``."""
    node = node_factory()
    node.start("--dev", "--dev-period", "0")
    node.addr = {
        name: node.cli_json("wallet", "create", name, "--no-passphrase")["address"]
        for name in PARTIES
    }
    pay = [x for address in node.addr.values() for x in ("--to", address, "--amount", "100")]
    mined(node, node.cli_json("-w", "dev", "wallet", "send", *pay)["txid"])
    return node


def mined(node, txid: str) -> dict[str, Any]:
    """Wait until ``txid`` is in a block; returns its ``gettx``."""
    def check() -> dict[str, Any] | None:
        tx = node.rpc("gettx", txid)
        # Final, not just mined: the dev node seals one more (empty) block for
        # that, so block heights are settled when this returns.
        return tx if tx["final"] else None

    return wait_until(check, timeout=60, what=f"tx {txid[:16]} to be mined")


def coins(units: int) -> Decimal:
    return Decimal(units) / COIN


def fee_of(node, txid: str) -> int:
    """The native fee (base units) of a mined tx."""
    return mined(node, txid)["fee_units"]


def balances(node, wallet: str) -> dict[str, Decimal]:
    """Confirmed balance per asset symbol (nothing may be pending)."""
    rows = node.cli_json("-w", wallet, "wallet", "balance")["balances"]
    assert all(r["unconfirmed"] == "0" for r in rows), rows
    return {r["asset"]: Decimal(r["confirmed"]) for r in rows if Decimal(r["confirmed"])}


def all_balances(node) -> dict[str, dict[str, Decimal]]:
    with ThreadPoolExecutor(len(PARTIES)) as pool:
        got = list(pool.map(lambda w: balances(node, w), PARTIES))
    return dict(zip(PARTIES, got, strict=True))


def snapshot(node, escrow_id: str) -> dict[str, Any]:
    """What a refused command must leave untouched."""
    return {
        "balances": all_balances(node),
        "escrow": node.rpc("getescrow", escrow_id),
        "mempool": node.rpc("getmempool"),
        "utxos": node.rpc("getutxosetinfo"),
        "height": node.height(),
    }


def refused(node, *args: str, code: int = 1) -> str:
    """Run a command that must fail with one ``error:`` line; returns stderr."""
    out = node.cli(*args)
    assert out.returncode == code, (args, out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    assert out.stderr.startswith("error: ") and out.stderr.count("\n") == 1, out.stderr
    return out.stderr


def open_escrow(node, amount: str = "10", *extra: str, payees: tuple[tuple[str, int], ...] = (
        ("fixit", 9000), ("platform", 1000)), timeout: int = 50) -> dict[str, Any]:
    """``alice`` opens an escrow (arbiter ``arb``); waits until it is mined."""
    flags = [x for name, bps in payees for x in ("--payee", f"{node.addr[name]}={bps}")]
    out = node.cli_json("-w", "alice", "escrow", "open", *flags, "--amount", amount,
                        "--arbiter", node.addr["arb"], "--timeout", str(timeout), *extra)
    assert out["escrow"] == f"{out['txid']}:0"
    out["tx"] = mined(node, out["txid"])
    return out


def split(base: int, shares: list[int]) -> list[int]:
    """The wallet's split of ``base`` units: floor of each share, the rounding
    remainder to the first recipient."""
    parts = [base * bps // BPS for bps in shares]
    parts[0] += base - sum(parts)
    return parts


def make_blocks(node, count: int) -> None:
    """Mine ``count`` blocks (the --dev node seals one per waiting payment)."""
    for _ in range(count):
        height = node.height()
        sent = node.cli_json("-w", "dev", "wallet", "send", "--to", node.addr["arb"],
                             "--amount", "0.01")
        mined(node, sent["txid"])
        assert node.height() > height


# --------------------------------------------------------------------------- tests
def test_open_list_and_release_by_the_payer(market):
    node = market
    addr = node.addr
    height = node.height()
    out = open_escrow(node)
    assert out["timeout_height"] == height + 1 + 50
    open_fee = out["tx"]["fee_units"]
    escrow_id = out["escrow"]

    info = node.cli_json("escrow", "show", escrow_id)
    assert info["state"] == "open"
    assert info["escrow"] == escrow_id and info["txid"] == out["txid"] and info["index"] == 0
    assert info["asset"] == "O2O" and info["asset_id"] == "00" * 32
    assert info["amount"] == "10" and info["units"] == 10 * COIN
    assert info["payer"] == addr["alice"] and info["arbiter"] == addr["arb"]
    assert info["payees"] == [{"address": addr["fixit"], "bps": 9000},
                              {"address": addr["platform"], "bps": 1000}]
    assert info["timeout"] == out["timeout_height"]
    assert info["height"] == out["tx"]["height"]
    assert info["settlement"] is None and info["pending_spend"] is None
    human = node.cli("escrow", "show", escrow_id)
    assert human.returncode == 0 and "open" in human.stdout and addr["fixit"] in human.stdout

    # The escrowed coins left alice's spendable balance; nobody else's changed.
    assert all_balances(node) == {
        "alice": {"O2O": FUNDS - 10 - coins(open_fee)},
        "fixit": {"O2O": FUNDS}, "platform": {"O2O": FUNDS}, "arb": {"O2O": FUNDS},
    }
    for party in PARTIES:
        listed = node.cli_json("-w", party, "escrow", "list")["escrows"]
        assert [(e["escrow"], e["state"]) for e in listed] == [(escrow_id, "open")], party
    assert node.cli_json("-w", "dev", "escrow", "list") == {"escrows": []}

    # Payees and the arbiter cannot release; the arbiter cannot refund either.
    before = snapshot(node, escrow_id)
    assert f"only the payer ({addr['alice']})" in refused(
        node, "-w", "fixit", "escrow", "release", escrow_id)
    assert "only the payer" in refused(node, "-w", "arb", "escrow", "release", escrow_id)
    assert "neither a payee nor the payer" in refused(
        node, "-w", "arb", "escrow", "refund", escrow_id)
    assert "invalid escrow id" in refused(node, "-w", "alice", "escrow", "release", "nope:0")
    assert snapshot(node, escrow_id) == before

    released = node.cli_json("-w", "alice", "escrow", "release", escrow_id)
    assert released["state"] == "released"
    fee = fee_of(node, released["txid"])
    assert 0 < fee <= 10 * COIN // 100
    to_fixit, to_platform = split(10 * COIN - fee, [9000, 1000])
    assert all_balances(node) == {
        "alice": {"O2O": FUNDS - 10 - coins(open_fee)},
        "fixit": {"O2O": FUNDS + coins(to_fixit)},
        "platform": {"O2O": FUNDS + coins(to_platform)},
        "arb": {"O2O": FUNDS},
    }
    info = node.cli_json("escrow", "show", escrow_id)
    assert info["state"] == "released"
    assert info["settlement"] == {"txid": released["txid"], "path": "release",
                                  "height": mined(node, released["txid"])["height"]}
    assert info["pending_spend"] is None
    for party in PARTIES:
        listed = node.cli_json("-w", party, "escrow", "list")["escrows"]
        assert [(e["escrow"], e["state"]) for e in listed] == [(escrow_id, "released")], party

    # Settled once and for all.
    before = snapshot(node, escrow_id)
    assert "already released" in refused(node, "-w", "alice", "escrow", "release", escrow_id)
    assert "already released" in refused(node, "-w", "fixit", "escrow", "refund", escrow_id)
    assert snapshot(node, escrow_id) == before


def test_refund_by_a_payee_and_reclaim_after_the_timeout(market):
    node = market
    first = open_escrow(node)
    escrow_id = first["escrow"]
    alice = FUNDS - 10 - coins(first["tx"]["fee_units"])
    assert balances(node, "alice") == {"O2O": alice}

    refund = node.cli_json("-w", "fixit", "escrow", "refund", escrow_id)
    assert refund["state"] == "refunded" and refund["path"] == "refund"
    fee = fee_of(node, refund["txid"])
    assert 0 < fee <= 10 * COIN // 100
    alice += 10 - coins(fee)
    assert all_balances(node) == {"alice": {"O2O": alice}, "fixit": {"O2O": FUNDS},
                                  "platform": {"O2O": FUNDS}, "arb": {"O2O": FUNDS}}
    info = node.cli_json("escrow", "show", escrow_id)
    assert info["state"] == "refunded"
    assert info["settlement"]["path"] == "refund"
    assert info["settlement"]["txid"] == refund["txid"]

    # A short timeout: the payer may not take it back before it, may after.
    second = open_escrow(node, "5", timeout=3)  # the dev node seals 2 blocks per tx
    escrow_id = second["escrow"]
    timeout = second["timeout_height"]
    alice -= 5 + coins(second["tx"]["fee_units"])
    assert node.cli_json("escrow", "show", escrow_id)["state"] == "open"
    before = snapshot(node, escrow_id)
    err = refused(node, "-w", "alice", "escrow", "refund", escrow_id)
    assert f"only from height {timeout}" in err, err
    assert snapshot(node, escrow_id) == before

    make_blocks(node, timeout - 1 - node.height())
    info = node.cli_json("escrow", "show", escrow_id)
    assert info["state"] == "expired-refundable" and info["settlement"] is None
    reclaim = node.cli_json("-w", "alice", "escrow", "refund", escrow_id)
    assert reclaim["state"] == "refunded" and reclaim["path"] == "reclaim"
    fee = fee_of(node, reclaim["txid"])
    assert 0 < fee <= 5 * COIN // 100
    alice += 5 - coins(fee)
    assert balances(node, "alice") == {"O2O": alice}
    info = node.cli_json("escrow", "show", escrow_id)
    assert info["state"] == "refunded"
    assert info["settlement"]["path"] == "reclaim"
    assert info["settlement"]["txid"] == reclaim["txid"]
    assert info["settlement"]["height"] >= timeout


def test_dispute_needs_the_arbiter_and_a_party(market):
    node = market
    addr = node.addr
    opened = open_escrow(node)
    escrow_id = opened["escrow"]
    before = snapshot(node, escrow_id)

    ruling = node.cli_json("-w", "arb", "escrow", "dispute", escrow_id,
                           "--pay", f"{addr['alice']}=5000", "--pay", f"{addr['fixit']}=5000")
    assert ruling["complete"] is False and set(ruling) == {"txid", "complete", "raw"}
    assert snapshot(node, escrow_id) == before  # nothing broadcast

    # The arbiter's signature alone is not enough, whoever broadcasts it.
    err = refused(node, "chain", "broadcast", ruling["raw"])
    assert "bad-escrow-arbiter-alone" in err, err
    assert snapshot(node, escrow_id) == before
    assert "add up to 10000" in refused(
        node, "-w", "arb", "escrow", "dispute", escrow_id, "--pay", f"{addr['alice']}=5000")
    assert snapshot(node, escrow_id) == before

    # Without --yes the co-signer is shown who gets what, and nothing is sent.
    shown = refused(node, "-w", "alice", "escrow", "dispute", "--cosign", ruling["raw"])
    assert "this ruling pays" in shown and addr["alice"] in shown and addr["fixit"] in shown
    assert snapshot(node, escrow_id) == before
    done = node.cli_json("-w", "alice", "escrow", "dispute", "--cosign", ruling["raw"], "--yes")
    assert done["complete"] is True and done["state"] == "disputed"
    assert done["txid"] == ruling["txid"]
    fee = fee_of(node, done["txid"])
    assert 0 < fee <= 10 * COIN // 100
    to_alice, to_fixit = split(10 * COIN - fee, [5000, 5000])
    assert all_balances(node) == {
        "alice": {"O2O": FUNDS - 10 - coins(opened["tx"]["fee_units"]) + coins(to_alice)},
        "fixit": {"O2O": FUNDS + coins(to_fixit)},
        "platform": {"O2O": FUNDS}, "arb": {"O2O": FUNDS},
    }
    info = node.cli_json("escrow", "show", escrow_id)
    assert info["state"] == "disputed"
    assert info["settlement"]["path"] == "dispute" and info["settlement"]["txid"] == done["txid"]


def test_token_escrow_pays_token_shares_and_native_fee(market):
    node = market
    issued = node.cli_json("-w", "alice", "token", "issue", "--symbol", "PTS", "--name", "Points",
                           "--supply", "1000", "--mintable")
    mined(node, issued["txid"])
    alice = balances(node, "alice")
    assert alice["PTS"] == 1000 and alice["PTS!"] == 1  # PTS! is the mint authority

    opened = open_escrow(node, "100", "--asset", "PTS",
                         payees=(("fixit", 6667), ("platform", 3333)))
    escrow_id = opened["escrow"]
    info = node.cli_json("escrow", "show", escrow_id)
    assert info["state"] == "open" and info["asset"] == "PTS"
    assert info["asset_id"] == issued["asset"]
    assert info["amount"] == "100" and info["units"] == 100
    alice_native = alice["O2O"] - coins(opened["tx"]["fee_units"])
    assert balances(node, "alice") == {"O2O": alice_native, "PTS": Decimal(900),
                                       "PTS!": Decimal(1)}

    released = node.cli_json("-w", "alice", "escrow", "release", escrow_id)
    fee = fee_of(node, released["txid"])
    assert fee > 0
    # floor(100 * 6667 / 10000) = 66 and floor(100 * 3333 / 10000) = 33; the
    # remaining unit goes to the first payee.
    assert all_balances(node) == {
        "alice": {"O2O": alice_native - coins(fee), "PTS": Decimal(900), "PTS!": Decimal(1)},
        "fixit": {"O2O": FUNDS, "PTS": Decimal(67)},
        "platform": {"O2O": FUNDS, "PTS": Decimal(33)},
        "arb": {"O2O": FUNDS},
    }
    info = node.cli_json("escrow", "show", escrow_id)
    assert info["state"] == "released" and info["settlement"]["path"] == "release"


def test_reward_for_a_disputed_escrow_goes_to_its_payer(market):
    """The arbiter rules for the merchant and the payer co-signs: the
    arbiter's signature comes first in the witness, but the customer a
    merchant's token reward pays is the buyer, the escrow's payer."""
    node = market
    addr = node.addr
    issued = node.cli_json("-w", "fixit", "token", "issue", "--symbol", "FIX", "--name", "Fix",
                           "--supply", "1000")
    mined(node, issued["txid"])
    opened = open_escrow(node, payees=(("fixit", 10_000),))
    ruling = node.cli_json("-w", "arb", "escrow", "dispute", opened["escrow"],
                           "--pay", f"{addr['fixit']}=10000")
    done = node.cli_json("-w", "alice", "escrow", "dispute", "--cosign", ruling["raw"], "--yes")
    tx = mined(node, done["txid"])
    payer = node.cli_json("escrow", "show", opened["escrow"])["payer"]
    assert tx["inputs"][0]["signers"][0] == addr["arb"]
    assert tx["buyers"] == [payer]
    rewards = node.cli_json("-w", "fixit", "token", "reward", "FIX", "--rate", "1",
                            "--since", str(tx["height"]), "--dry-run")["rewards"]
    assert [(r["customer"], r["refs"]) for r in rewards] == [(payer, [done["txid"]])]


def test_consensus_refuses_forbidden_escrow_spends(market):
    from o2ocli.chainspec import load_spec
    from o2ocli.core.locks import Escrow, PayToAddress
    from o2ocli.core.tx import NATIVE_ASSET, Outpoint, Tx, TxIn, TxOut
    from o2ocli.crypto.address import decode_wif
    from o2ocli.crypto.keys import PrivateKey
    from o2ocli.testing.chaingen import sign_tx

    node = market
    spec = load_spec("devnet")
    addr = node.addr
    pkh = {name: spec.decode_address(a) for name, a in addr.items()}
    opened = open_escrow(node)
    escrow_id = opened["escrow"]
    amount = 10 * COIN

    def key(wallet: str) -> PrivateKey:
        wif = node.cli_json("-w", wallet, "wallet", "export-key", addr[wallet])["wif"]
        return PrivateKey(decode_wif(wif, version=spec.wif_version)[0])

    keys = {name: key(name) for name in ("alice", "fixit")}
    assert keys["alice"].public_key.hash160() == pkh["alice"]
    # The lock on chain is exactly the one the test expects.
    raw_open = bytes.fromhex(node.rpc("getrawtx", opened["txid"]))
    lock = Tx.from_bytes(raw_open).outputs[0].lock
    assert lock == Escrow(pkh["alice"], ((pkh["fixit"], 9000), (pkh["platform"], 1000)),
                          pkh["arb"], opened["timeout_height"])

    fee = 10_000  # well under the 1 % allowance, well over the relay minimum
    base = amount - fee
    fixit_share, platform_share = base * 9000 // BPS, base * 1000 // BPS
    assert fixit_share + platform_share == base

    def raw(pay: dict[str, int], *signers: str) -> str:
        outputs = tuple(TxOut(NATIVE_ASSET, units, PayToAddress(pkh[name]))
                        for name, units in pay.items())
        tx = Tx((TxIn(Outpoint(bytes.fromhex(opened["txid"]), 0)),), outputs)
        assert sum(pay.values()) == base
        return sign_tx(tx, [[keys[s] for s in signers]], spec.chain_id).to_bytes().hex()

    before = snapshot(node, escrow_id)
    cases = [
        # The payer releases one unit less than fixit's share.
        (raw({"fixit": fixit_share - 1, "platform": platform_share, "alice": 1}, "alice"),
         "bad-escrow-release-short"),
        # The payer takes everything back before the timeout.
        (raw({"alice": base}, "alice"), "bad-escrow-release-short"),
        # A payee alone pays itself.
        (raw({"fixit": base}, "fixit"), "bad-escrow-refund-short"),
        # Payer and payee together, without the arbiter.
        (raw({"fixit": base}, "alice", "fixit"), "bad-escrow-signers"),
    ]
    for tx_hex, reason in cases:
        err = refused(node, "chain", "broadcast", tx_hex)
        assert reason in err, (reason, err)
        assert node.cli_json("escrow", "show", escrow_id)["state"] == "open"
        assert snapshot(node, escrow_id) == before

    # The same hand-built release paying the exact shares is valid.
    good = raw({"fixit": fixit_share, "platform": platform_share}, "alice")
    sent = json.loads(node.cli("--json", "chain", "broadcast", good).stdout)
    assert fee_of(node, sent["txid"]) == fee
    info = node.cli_json("escrow", "show", escrow_id)
    assert info["state"] == "released" and info["settlement"]["txid"] == sent["txid"]
    got = all_balances(node)
    assert got["fixit"] == {"O2O": FUNDS + coins(fixit_share)}
    assert got["platform"] == {"O2O": FUNDS + coins(platform_share)}
