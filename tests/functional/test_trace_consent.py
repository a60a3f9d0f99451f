"""Traceability and consent records end to end against a real --dev node
process: an item's chain of custody from farm to shop (documents, QR labels,
a custody break), and customers granting, checking and revoking merchants'
access to their data."""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest

from .framework import wait_until

WALLETS = ("farm", "shop", "alice")


# --------------------------------------------------------------------------- helpers
@pytest.fixture
def market(node_factory):
    """A --dev node (a block whenever txs wait) with unencrypted wallets farm,
    shop and alice, each funded with 100 O2O by one payment from ``dev``."""
    node = node_factory()
    node.start("--dev", "--dev-period", "0")
    node.addr = {
        name: node.cli_json("wallet", "create", name, "--no-passphrase")["address"]
        for name in WALLETS
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


def balances(node) -> dict[str, Any]:
    """Every wallet's ``wallet balance`` (run in parallel)."""
    with ThreadPoolExecutor(len(WALLETS)) as pool:
        got = list(pool.map(lambda w: node.cli_json("-w", w, "wallet", "balance"), WALLETS))
    return dict(zip(WALLETS, got, strict=True))


def refused(node, *args: str, code: int = 1) -> str:
    """Run a command that must fail with one ``error:`` line; returns stderr."""
    out = node.cli(*args)
    assert out.returncode == code, (args, out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    assert out.stderr.startswith("error: ") and out.stderr.count("\n") == 1, out.stderr
    return out.stderr


def json_result(node, *args: str, code: int) -> dict[str, Any]:
    """Run ``--json ARGS``: exit ``code`` and exactly one JSON document on stdout."""
    out = node.cli(*args, json_out=True)
    assert out.returncode == code, (args, out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    return json.loads(out.stdout)  # fails on anything but a single document


def make_blocks(node, count: int) -> None:
    """Mine ``count`` blocks (the --dev node seals one per waiting payment)."""
    for _ in range(count):
        height = node.height()
        sent = node.cli_json("-w", "dev", "wallet", "send", "--to", node.addr["farm"],
                             "--amount", "0.01")
        mined(node, sent["txid"])
        assert node.height() > height


# --------------------------------------------------------------------------- tests
def test_item_chain_of_custody_from_farm_to_shop(market, tmp_path):
    node = market
    farm, shop, alice = node.addr["farm"], node.addr["shop"], node.addr["alice"]

    reg = node.cli_json("-w", "farm", "trace", "register", "TEA-001", "--product", "Pu'er, 20 kg",
                        "--data", "origin=yunnan", "--data", "harvest=2026-04")
    assert reg["item"] == "TEA-001" and reg["merchant"] == farm
    asset = reg["asset"]
    mined(node, reg["txid"])

    processed = node.cli_json("-w", "farm", "trace", "event", "TEA-001", "--event", "processed",
                              "--location", "Menghai", "--note", "sun-dried")
    mined(node, processed["txid"])
    doc = tmp_path / "bill-of-lading.txt"
    doc.write_bytes(b"bill of lading: 1 pallet, TEA-001\n")
    doc_hash = hashlib.sha256(doc.read_bytes()).hexdigest()
    shipped = node.cli_json("-w", "farm", "trace", "event", "TEA-001", "--event", "shipped",
                            "--to", shop, "--location", "Kunming depot", "--doc", str(doc))
    assert shipped["document"] == doc_hash and shipped["asset"] == asset
    mined(node, shipped["txid"])
    received = node.cli_json("-w", "shop", "trace", "event", "TEA-001", "--merchant", farm,
                             "--event", "received", "--location", "Shanghai")
    mined(node, received["txid"])

    info = node.cli_json("-w", "farm", "trace", "show", "TEA-001")
    assert info["asset"] == asset and info["item"] == "TEA-001"
    assert info["product"] == "Pu'er, 20 kg" and info["merchant"] == farm
    assert info["txid"] == reg["txid"]
    assert info["data"] == [{"key": "origin", "value": "yunnan"},
                            {"key": "harvest", "value": "2026-04"}]
    steps = [(s["txid"], s["event"], s["from"], s["custodian"], s["location"], s["document"])
             for s in info["timeline"]]
    assert steps == [
        (reg["txid"], "registered", None, farm, "", None),
        (processed["txid"], "processed", farm, farm, "Menghai", None),
        (shipped["txid"], "shipped", farm, shop, "Kunming depot", doc_hash),
        (received["txid"], "received", shop, shop, "Shanghai", None),
    ]
    assert info["timeline"][1]["note"] == "sun-dried"
    heights = [s["height"] for s in info["timeline"]]
    assert heights == sorted(heights) and len(set(heights)) == 4
    assert info["custodian"] == shop and info["verified"] is True and info["break"] is None
    # Anyone can look it up by merchant and item id, or by asset id.
    assert node.cli_json("trace", "show", "TEA-001", "--merchant", farm) == info
    assert node.cli_json("trace", "show", asset) == info
    verify = node.cli("trace", "verify", "TEA-001", "--merchant", farm)
    assert verify.returncode == 0 and "verified over 4 steps" in verify.stdout, verify

    # The QR label: a block of text in human mode, the payload in JSON mode.
    human = node.cli("trace", "show", asset, "--qr")
    assert human.returncode == 0, human.stderr
    with pytest.raises(ValueError):
        json.loads(human.stdout)
    assert "chain of custody verified" in human.stdout
    qr_lines = [line for line in human.stdout.splitlines() if "█" in line]
    assert len(qr_lines) >= 10, human.stdout
    assert node.cli_json("trace", "show", asset, "--qr") == dict(info, qr=f"o2o:item:{asset}")

    # Refusals change nothing.
    def state() -> Any:
        return (node.rpc("gettrace", asset), node.rpc("getmempool"),
                node.rpc("getutxosetinfo"), balances(node))

    before = state()
    err = refused(node, "-w", "farm", "trace", "event", "TEA-001", "--event", "note",
                  "--note", "still mine?")
    assert "not the custodian" in err and shop in err, err
    assert "already registered" in refused(node, "-w", "farm", "trace", "register", "TEA-001",
                                           "--product", "again")
    assert "item id" in refused(node, "-w", "farm", "trace", "register", "bad id!",
                                "--product", "x")
    assert "item id" in refused(node, "-w", "farm", "trace", "register", "X" * 65,
                                "--product", "x")
    assert "no item" in refused(node, "trace", "show", "TEA-002", "--merchant", farm)
    assert state() == before

    # A plain payment of the item breaks the chain of custody, and says where.
    moved = node.cli_json("-w", "shop", "wallet", "send", "--to", alice, "--asset", asset,
                          "--amount", "1")
    mined(node, moved["txid"])
    err = refused(node, "trace", "verify", "TEA-001", "--merchant", farm)
    assert moved["txid"] in err and "without a trace event" in err, err
    result = json_result(node, "trace", "verify", asset, code=1)
    assert result["verified"] is False and moved["txid"] in result["break"]
    assert result["custodian"] == alice and result["steps"] == 5
    assert result["item"] == "TEA-001" and result["asset"] == asset
    shown = node.cli_json("trace", "show", asset)
    assert shown["verified"] is False and shown["break"] == result["break"]
    assert shown["timeline"][-1]["event"] == "moved"
    assert shown["timeline"][-1]["txid"] == moved["txid"]


def test_consent_grant_check_revoke_and_expiry(market):
    node = market
    alice, shop, farm = node.addr["alice"], node.addr["shop"], node.addr["farm"]
    assert node.cli_json("-w", "alice", "wallet", "address")["address"] == alice

    height = node.height()
    grant = node.cli_json("-w", "alice", "consent", "grant", shop, "purchase-history",
                          "--blocks", "50")
    assert grant["user"] == alice and grant["grantee"] == shop
    assert grant["scope"] == "purchase-history" and grant["until"] == height + 1 + 50
    granted_at = mined(node, grant["txid"])["height"]

    ok = json_result(node, "consent", "check", alice, shop, "purchase-history", code=0)
    assert ok["granted"] is True and ok["proof"] == grant["txid"]
    assert ok["until"] == height + 1 + 50 and ok["grant"]["status"] == "active"
    human = node.cli("consent", "check", alice, shop, "purchase-history")
    assert human.returncode == 0 and grant["txid"] in human.stdout
    denied = json_result(node, "consent", "check", alice, shop, "contact", code=1)
    assert denied["granted"] is False and denied["proof"] is None
    assert denied["reason"] == "no grant"
    assert "denied" in refused(node, "consent", "check", alice, shop, "contact")
    assert json_result(node, "consent", "check", alice, farm, "purchase-history",
                       code=1)["granted"] is False
    assert json_result(node, "consent", "check", shop, alice, "purchase-history",
                       code=1)["granted"] is False

    record = {"txid": grant["txid"], "user": alice, "grantee": shop,
              "scope": "purchase-history", "until": height + 1 + 50, "height": granted_at,
              "status": "active", "revoked_by": None, "profile": None}
    assert node.cli_json("-w", "alice", "consent", "list") == {"consents": [record]}
    assert node.cli_json("-w", "shop", "consent", "list", "--grantee") == {"consents": [record]}
    assert node.cli_json("consent", "list", "--address", alice) == {"consents": [record]}
    assert node.cli_json("-w", "shop", "consent", "list") == {"consents": []}

    def state() -> Any:
        return (node.rpc("listconsents", alice), node.rpc("getmempool"),
                node.rpc("getutxosetinfo"), balances(node))

    # Only the user can revoke.
    before = state()
    assert "no grant with that txid" in refused(node, "-w", "shop", "consent", "revoke",
                                                grant["txid"])
    assert state() == before

    revoke = node.cli_json("-w", "alice", "consent", "revoke", grant["txid"])
    mined(node, revoke["txid"])
    denied = json_result(node, "consent", "check", alice, shop, "purchase-history", code=1)
    assert denied["granted"] is False and "revoked" in denied["reason"]
    assert denied["grant"]["revoked_by"] == revoke["txid"]
    listed = node.cli_json("-w", "alice", "consent", "list")["consents"]
    assert [(c["txid"], c["status"], c["revoked_by"]) for c in listed] == [
        (grant["txid"], "revoked", revoke["txid"])]
    before = state()
    assert "already revoked" in refused(node, "-w", "alice", "consent", "revoke", grant["txid"])
    assert state() == before

    # A short grant runs out.  --blocks 3: active for the three blocks after the
    # one that recorded it; once final (one more block) two of them are left.
    short = node.cli_json("-w", "alice", "consent", "grant", shop, "contact", "--blocks", "3")
    mined(node, short["txid"])
    assert json_result(node, "consent", "check", alice, shop, "contact", code=0)["granted"]
    make_blocks(node, 2)
    denied = json_result(node, "consent", "check", alice, shop, "contact", code=1)
    assert denied["granted"] is False and "expired" in denied["reason"]
    assert denied["grant"]["txid"] == short["txid"]
    listed = node.cli_json("-w", "shop", "consent", "list", "--grantee")["consents"]
    assert [(c["scope"], c["status"]) for c in listed] == [
        ("purchase-history", "revoked"), ("contact", "expired")]

    # Bad grants are refused before anything is sent.
    before = state()
    assert "yourself" in refused(node, "-w", "alice", "consent", "grant", alice, "contact")
    for scope in ("Purchase History", "x" * 33, "naïve"):
        assert "scope" in refused(node, "-w", "alice", "consent", "grant", shop, scope), scope
    assert "not above the chain height" in refused(
        node, "-w", "alice", "consent", "grant", shop, "contact", "--until", "1")
    assert state() == before
    assert Decimal(before[3]["alice"]["balances"][0]["confirmed"]) < 100  # fees were paid
