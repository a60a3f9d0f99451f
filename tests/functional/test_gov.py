"""Governance end to end through the CLI on a two-validator network: a shop
puts a question to the O2O holders and one to its customers, holders vote
and change their vote, a bad vote is refused, and both validators show the
same tallies until the result is final."""

from __future__ import annotations

import json

import pytest

from .framework import Network, wait_until

COIN = 100_000_000


def cli_json(node, wallet, *args):
    return node.cli_json("-w", wallet, *args) if wallet else node.cli_json(*args)


def mined(node, txid):
    return wait_until(lambda: node.rpc("gettx", txid)["height"] is not None or None, 60,
                      f"tx {txid[:16]} to be mined")


@pytest.mark.slow
def test_holders_and_customers_vote_through_the_cli(tmp_path, node_factory):
    net = Network(tmp_path, node_factory, validators=2)
    net.start_all()
    v1, v2 = net.nodes
    addr = {w: cli_json(v1, None, "wallet", "create", w, "--no-passphrase")["address"]
            for w in ("treasury", "alice", "bob", "shop")}
    out = v1.cli("-w", "treasury", "wallet", "import-key", "--key-file",
                 net.spec_info["funds_key"])
    assert out.returncode == 0, out.stderr
    # One payment funds alice and bob and buys from the shop: the treasury is a customer.
    pay = cli_json(v1, "treasury", "wallet", "send", "--to", addr["alice"], "--amount", "100",
                   "--to", addr["bob"], "--amount", "50", "--to", addr["shop"], "--amount", "10")
    mined(v1, pay["txid"])

    tokens = cli_json(v1, "shop", "gov", "propose", "--title", "Open on Sundays?",
                      "--option", "yes", "--option", "no", "--voting-blocks", "12")
    customers = cli_json(v1, "shop", "gov", "propose", "--title", "Menu", "--text", "Next dish",
                         "--option", "noodles", "--option", "dumplings", "--option", "soup",
                         "--weight", "customers", "--merchant", addr["shop"],
                         "--voting-blocks", "12")
    pid, cid = tokens["id"], customers["id"]
    mined(v1, pid)
    mined(v1, cid)

    votes = [cli_json(v1, "alice", "gov", "vote", pid, "--option", "1"),
             cli_json(v1, "bob", "gov", "vote", pid, "--option", "2"),
             cli_json(v1, "treasury", "gov", "vote", cid, "--option", "3")]
    assert votes[0]["weight"] == 100 * COIN and votes[1]["weight"] == 50 * COIN
    assert votes[2]["weight"] == 1 and votes[2]["purchase"] == pay["txid"]
    for v in votes:
        mined(v1, v["txid"])
    # alice changes her mind: the last vote counts
    again = cli_json(v1, "alice", "gov", "vote", pid, "--option", "2")
    mined(v1, again["txid"])
    bad = v1.cli("-w", "bob", "gov", "vote", pid, "--option", "3")
    assert bad.returncode == 1 and bad.stderr.startswith("error: ") and "1..2" in bad.stderr
    stranger = v1.cli("-w", "alice", "gov", "vote", cid, "--option", "1")
    assert stranger.returncode == 1 and "customers vote" in stranger.stderr

    # Both validators count the same ballots; at the end the result becomes final.
    end = cli_json(v2, None, "gov", "show", pid)["end_height"]
    wait_until(lambda: v2.rpc("getinfo")["finalized_height"] >= end, 90,
               f"height {end} to be final")
    shown = [json.loads(n.cli("gov", "show", pid, json_out=True).stdout) for n in (v1, v2)]
    assert shown[0] == shown[1]
    p = shown[0]
    assert p["id"] == pid and p["state"] == "final"
    assert p["tallies"] == [{"option": 1, "weight": 0}, {"option": 2, "weight": 150 * COIN}]
    assert p["turnout"]["ballots"] == 2 and p["winner"] == 2
    c = cli_json(v2, None, "gov", "show", cid)
    assert [t["weight"] for t in c["tallies"]] == [0, 0, 1] and c["winner"] == 3
    listed = cli_json(v2, None, "gov", "list", "--state", "final")["proposals"]
    assert {x["id"] for x in listed} == {pid, cid}
    late = v1.cli("-w", "bob", "gov", "vote", pid, "--option", "1")
    assert late.returncode == 1 and "ended" in late.stderr
