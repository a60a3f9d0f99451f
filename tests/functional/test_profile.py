"""Profile commitments and selective disclosure through the CLI on a
two-validator network: alice commits on one validator's node, grants the shop
its scope, discloses, and the shop verifies with the other validator's node
(what one node mined, the other relayed and agrees on).  A merchant the file
was not addressed to is refused with the check that failed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .framework import Network, wait_until
from .test_p2p_network import funds_payer, wait_mesh


def mined_everywhere(net: Network, txid: str) -> None:
    wait_until(lambda: all(n.rpc("gettx", txid)["height"] is not None for n in net.nodes), 60,
               f"tx {txid[:16]} mined on every node")


def refused(node, *args: str) -> str:
    out = node.cli(*args)
    assert out.returncode == 1, (args, out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    assert out.stderr.startswith("error: ") and out.stderr.count("\n") == 1, out.stderr
    return out.stderr


@pytest.mark.slow
def test_commit_grant_disclose_verify_across_validators(tmp_path: Path, node_factory):
    net = Network(tmp_path, node_factory, validators=2, period=1)
    net.start_all()
    wait_mesh(net.nodes)
    v1, v2 = net.nodes
    secret = tmp_path / "pass.txt"
    secret.write_text("alice's passphrase\n")
    alice = v1.cli_json("wallet", "create", "alice", "--passphrase-file", str(secret))["address"]
    shop = v2.cli_json("wallet", "create", "shop", "--no-passphrase")["address"]
    other = v2.cli_json("wallet", "create", "other", "--no-passphrase")["address"]
    spec, payer = funds_payer(net, v1)
    fund = payer.pay(spec.decode_address(alice), spec.amount("10"))
    mined_everywhere(net, v1.rpc("sendrawtx", fund.to_bytes().hex()))

    pw = ("--passphrase-file", str(secret))
    data = tmp_path / "me.txt"
    data.write_text("# alice\ncity=Athens\nage=34\n")
    commit = v1.cli_json("-w", "alice", "profile", "commit", "--data", "phone=+30 210 555 0100",
                         "--data", "email=alice@example.org", "--data-file", str(data), *pw)
    assert commit["keys"] == ["age", "city", "email", "phone"] and commit["leaves"] == 4
    mined_everywhere(net, commit["txid"])
    on_chain = v2.rpc("getprofile", alice)
    assert (on_chain["txid"], on_chain["root"], on_chain["current"]) == (
        commit["txid"], commit["root"], True)
    assert b"Athens".hex() not in v2.rpc("getrawtx", commit["txid"])
    shown = v1.cli_json("-w", "alice", "profile", "show", *pw)
    assert shown["attributes"]["city"] == "Athens" and shown["txid"] == commit["txid"]

    g1 = v1.cli_json("-w", "alice", "consent", "grant", shop, "phone", *pw)
    g2 = v1.cli_json("-w", "alice", "consent", "grant", shop, "city", "--profile", "current",
                     *pw)
    assert g2["profile"] == commit["txid"]
    g3 = v1.cli_json("-w", "alice", "consent", "grant", other, "phone", *pw)
    for grant in (g1, g2, g3):
        mined_everywhere(net, grant["txid"])

    out = tmp_path / "for-shop.json"
    told = v1.cli_json("-w", "alice", "profile", "disclose", "--to", shop, "--keys", "phone,city",
                       "--out", str(out), *pw)
    assert told["commitment"] == commit["txid"] and out.stat().st_mode & 0o077 == 0
    doc = json.loads(out.read_text())
    assert {a["key"] for a in doc["attributes"]} == {"phone", "city"}
    assert "alice@example.org" not in out.read_text()
    assert refused(v1, "-w", "alice", "profile", "disclose", "--to", shop, "--keys", "email",
                   "--out", str(tmp_path / "x.json"), *pw).startswith(
        "error: no active grant of 'email'")

    verified = v2.cli_json("-w", "shop", "profile", "verify", str(out))
    assert verified["verified"] is True and verified["user"] == alice
    assert verified["attributes"] == {"phone": "+30 210 555 0100", "city": "Athens"}
    human = v2.cli("-w", "shop", "profile", "verify", str(out))
    assert human.returncode == 0 and "Athens" in human.stdout

    err = refused(v2, "-w", "other", "profile", "verify", str(out))
    assert err.startswith(f"error: refused: recipient: the file is addressed to {shop}")
    tampered = tmp_path / "tampered.json"
    doc["attributes"][0]["value"] += "0"
    tampered.write_text(json.dumps(doc))
    err = refused(v2, "-w", "shop", "profile", "verify", str(tampered))
    assert err.startswith(f"error: refused: proof: attribute {doc['attributes'][0]['key']!r}")

    # A newer commitment supersedes the disclosure.
    newer = v1.cli_json("-w", "alice", "profile", "commit", "--data", "phone=+30 210 555 0199",
                        *pw)
    mined_everywhere(net, newer["txid"])
    history = v2.cli_json("-w", "alice", "profile", "history", "--address", alice)["commitments"]
    assert [(c["txid"], c["current"]) for c in history] == [(commit["txid"], False),
                                                            (newer["txid"], True)]
    err = refused(v2, "-w", "shop", "profile", "verify", str(out))
    assert err.startswith("error: refused: commitment:") and newer["txid"] in err
