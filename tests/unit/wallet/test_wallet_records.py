"""Traceability and consent records from the wallet (o2ocli.wallet.records).

A mining devnet node in this process (real LevelDB, real RPC server and
client, see ``wallet_node``); real wallets with real keys; the node's
``gettrace``/``checkconsent`` say what the chain recorded.
"""

from __future__ import annotations

import hashlib

import pytest
from wallet_node import PASS, address, mined

from o2ocli.core.payloads import MAX_TRACE_DATA
from o2ocli.wallet.errors import O2OError
from o2ocli.wallet.records import (
    check_item_id,
    document_hash,
    get_trace,
    grant_consent,
    register_item,
    revoke_consent,
    trace_event,
)


@pytest.mark.parametrize("item_id", ["LOT-1", "a", "gs1:01/0950.1234_x", "Z" * 64])
def test_item_ids_in_the_alphabet_and_length_are_accepted(item_id):
    assert check_item_id(item_id) == item_id.encode()


@pytest.mark.parametrize("item_id", ["", "Z" * 65, "lot 1", "lot#1", "olé", "a\nb"])
def test_item_ids_outside_the_alphabet_or_length_are_refused(item_id):
    with pytest.raises(O2OError, match="item id"):
        check_item_id(item_id)


def test_document_hash_is_the_files_sha256(tmp_path):
    doc = tmp_path / "certificate.pdf"
    doc.write_bytes(b"%PDF-1.7 " + bytes(range(256)) * 700)  # more than one 64 KiB chunk
    assert document_hash(doc) == hashlib.sha256(doc.read_bytes()).digest()


def test_item_registered_then_shipped_and_received_with_custody_checked(tmp_path, mining, wallets):
    alice, bob = wallets
    a_key, b_key = alice.unlock(PASS), bob.unlock(PASS)
    tx, plan, asset = register_item(alice, mining.client, a_key, "LOT-1", "Olive oil",
                                    [("origin", "Crete"), ("harvest", "2026")])
    txid = mined(mining, alice, (tx, plan))
    trace = get_trace(mining.client, asset)
    assert (trace["item"], trace["product"], trace["txid"]) == ("LOT-1", "Olive oil", txid)
    assert trace["merchant"] == address(alice)
    assert trace["data"] == [{"key": "origin", "value": "Crete"},
                             {"key": "harvest", "value": "2026"}]
    assert trace["verified"] is True
    assert address(alice) in str(trace["custodian"])

    # Registered once per merchant namespace.
    with pytest.raises(O2OError, match="already registered"):
        register_item(alice, mining.client, a_key, "LOT-1", "Olive oil", [])

    # Only the custodian can move it, with a known event.
    with pytest.raises(O2OError, match="not the custodian"):
        trace_event(bob, mining.client, b_key, asset, "received", None, "Athens", "", None)
    with pytest.raises(O2OError, match="unknown event"):
        trace_event(alice, mining.client, a_key, asset, "teleported", None, "", "", None)
    doc = tmp_path / "bill-of-lading.txt"
    doc.write_text("container 42\n")
    shipped = mined(mining, alice, trace_event(
        alice, mining.client, a_key, asset, "shipped", bob.primary_pkh(), "Heraklion port",
        "reefer 4 °C", document_hash(doc)))
    step = get_trace(mining.client, asset)["timeline"][-1]
    assert (step["txid"], step["event"], step["location"], step["note"]) == (
        shipped, "shipped", "Heraklion port", "reefer 4 °C")
    assert step["document"] == hashlib.sha256(doc.read_bytes()).hexdigest()
    assert address(bob) in str(step["custodian"])

    # Now bob holds it and alice no longer can move it.
    with pytest.raises(O2OError, match="not the custodian"):
        trace_event(alice, mining.client, a_key, asset, "sold", None, "", "", None)
    mined(mining, bob, trace_event(bob, mining.client, b_key, asset, "received", None, "Athens",
                                 "", None))
    trace = get_trace(mining.client, asset)
    assert [s["event"] for s in trace["timeline"]] == ["registered", "shipped", "received"]
    assert trace["verified"] is True


def test_bad_registrations_are_refused_before_anything_is_sent(mining, wallets):
    alice, _ = wallets
    key = alice.unlock(PASS)
    too_many = [(f"k{i}", "v") for i in range(MAX_TRACE_DATA + 1)]
    for product, data, fragment in [
        ("", [], "product"),
        ("Oil", [("origin", "a"), ("origin", "b")], "appears twice"),
        ("Oil", [("Origin Country", "x")], "data key"),
        ("Oil", [("origin", "line\nbreak")], "data value of origin"),
        ("Oil", too_many, f"at most {MAX_TRACE_DATA}"),
    ]:
        with pytest.raises(O2OError, match=fragment):
            register_item(alice, mining.client, key, "LOT-2", product, data)
    with pytest.raises(O2OError, match="item id"):
        register_item(alice, mining.client, key, "LOT 2", "Oil", [])
    assert mining.call("getmempool") == []


def test_unknown_item_is_an_o2o_error(mining, wallets):
    with pytest.raises(O2OError, match="no item"):
        get_trace(mining.client, bytes(32))


def test_consent_granted_checked_and_revoked(mining, wallets):
    alice, bob = wallets
    key = alice.unlock(PASS)
    until = mining.call("getblockcount") + 1000
    grant = mined(mining, alice, grant_consent(alice, mining.client, key, bob.primary_pkh(),
                                             "health.read", until))
    check = mining.call("checkconsent", address(alice), address(bob), "health.read")
    assert (check["granted"], check["proof"], check["until"]) == (True, grant, until)
    other = mining.call("checkconsent", address(alice), address(bob), "health.write")
    assert other["granted"] is False and other["reason"] == "no grant"

    revoke = mined(mining, alice, revoke_consent(alice, mining.client, key, bytes.fromhex(grant)))
    check = mining.call("checkconsent", address(alice), address(bob), "health.read")
    assert check["granted"] is False and check["reason"] == "the latest grant is revoked"
    (listed,) = mining.call("listconsents", address(alice))
    assert (listed["txid"], listed["status"], listed["revoked_by"]) == (grant, "revoked", revoke)


def test_bad_consents_are_refused_before_anything_is_sent(mining, wallets):
    alice, bob = wallets
    key = alice.unlock(PASS)
    until = mining.call("getblockcount") + 10
    with pytest.raises(O2OError, match="yourself"):
        grant_consent(alice, mining.client, key, alice.primary_pkh(), "health.read", until)
    for scope in ("", "Health", "health read", "x" * 200):
        with pytest.raises(O2OError, match="scope"):
            grant_consent(alice, mining.client, key, bob.primary_pkh(), scope, until)
    assert mining.call("getmempool") == []
