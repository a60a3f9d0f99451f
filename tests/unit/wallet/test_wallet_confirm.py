"""Confirm before spending, the fee cap, the fee choice, txid prefixes and labels,
through the CLI (CliRunner) against one real devnet node for the module."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from wallet_node import FAST_SCRYPT, MNEMONICS, PASS, SPEC, DevNode, dev_key

from o2ocli.cli import confirm
from o2ocli.cli.main import cli
from o2ocli.node.methods.fees import TARGET_BLOCKS, estimate_rates, rate_text
from o2ocli.wallet.fees import parse_rate
from o2ocli.wallet.wallet import create_wallet


class Env:
    def __init__(self, node: DevNode, datadir: Path, bob: str) -> None:
        self.node, self.datadir, self.bob = node, datadir, bob

    def run(self, *args: str, wallet: str = "alice", input: str | None = None) -> Result:
        return CliRunner().invoke(
            cli, ["--datadir", str(self.datadir), "-w", wallet, *args],
            env={"O2OCLI_PASSPHRASE": PASS}, input=input)

    def json(self, *args: str, wallet: str = "alice") -> Any:
        result = CliRunner().invoke(
            cli, ["--datadir", str(self.datadir), "--json", "-w", wallet, *args],
            env={"O2OCLI_PASSPHRASE": PASS})
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    def bob_balance(self) -> str:
        return self.json("wallet", "balance", wallet="bob")["balances"][0]["confirmed"]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    datadir = tmp_path_factory.mktemp("confirm") / "node"
    node = DevNode(datadir, validator=True)
    try:
        create_wallet(datadir, "alice", SPEC, MNEMONICS["alice"], PASS,
                      imported=[dev_key("funds")], scrypt_n=FAST_SCRYPT).close()
        bob = create_wallet(datadir, "bob", SPEC, MNEMONICS["bob"], PASS, scrypt_n=FAST_SCRYPT)
        bob_address = SPEC.address(bob.primary_pkh())
        bob.close()
        yield Env(node, datadir, bob_address)
    finally:
        node.stop()


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Standard input is a terminal (a person can answer the prompt)."""
    monkeypatch.setattr(confirm, "stdin_is_terminal", lambda: True)


def _mempool(env: Env) -> list[str]:
    return env.node.call("getmempool")


# ------------------------------------------------------------------ prompts

def test_terminal_yes_shows_the_summary_and_sends(env: Env, terminal: None) -> None:
    env.run("wallet", "label", env.bob, "Bob's bakery")
    result = env.run("wallet", "send", "--to", env.bob, "--amount", "2", input="y\n")
    assert result.exit_code == 0, result.output
    assert "Send? [y/N]" in result.stderr
    assert f"pay     2 {SPEC.native_symbol} to {env.bob} (Bob's bakery)" in result.stderr
    assert "% of the amount" in result.stderr and "balance after" in result.stderr
    txid = result.stdout.split()[1]
    env.node.wait_mined(txid)


def test_terminal_no_sends_nothing(env: Env, terminal: None) -> None:
    before = _mempool(env)
    result = env.run("wallet", "send", "--to", env.bob, "--amount", "3", input="n\n")
    assert result.exit_code == 1
    assert "Send? [y/N]" in result.stderr and "error: not sent" in result.stderr
    assert _mempool(env) == before


def test_terminal_enter_defaults_to_no(env: Env, terminal: None) -> None:
    result = env.run("wallet", "send", "--to", env.bob, "--amount", "3", input="\n")
    assert result.exit_code == 1 and "error: not sent" in result.stderr


def test_yes_flag_skips_the_prompt(env: Env, terminal: None) -> None:
    result = env.run("wallet", "send", "--to", env.bob, "--amount", "1", "--yes")
    assert result.exit_code == 0, result.output
    assert "Send?" not in result.stderr
    env.node.wait_mined(result.stdout.split()[1])


def test_no_terminal_sends_without_asking(env: Env) -> None:
    result = env.run("wallet", "send", "--to", env.bob, "--amount", "1")
    assert result.exit_code == 0, result.output
    assert "Send?" not in result.stderr
    env.node.wait_mined(result.stdout.split()[1])


def test_token_issue_says_it_burns_the_fee_and_asks_once(env: Env, terminal: None) -> None:
    result = env.run("token", "issue", "--symbol", "CONFA", "--name", "Confirm A",
                     "--supply", "100", input="y\n")
    assert result.exit_code == 0, result.output
    assert result.stderr.count("Send? [y/N]") == 1
    fee = SPEC.format(SPEC.token_issue_fee)
    assert f"burns the issuance fee of {fee} {SPEC.native_symbol}" in result.stderr
    env.node.wait_mined(result.stdout.split()[3])


def test_token_send_refused_at_the_prompt(env: Env, terminal: None) -> None:
    result = env.run("token", "send", "CONFA", "--to", env.bob, "--amount", "5", input="n\n")
    assert result.exit_code == 1
    assert "5 CONFA to" in result.stderr and "error: not sent" in result.stderr


def test_escrow_open_summary_names_the_escrow(env: Env, terminal: None) -> None:
    result = env.run("escrow", "open", "--payee", f"{env.bob}=10000", "--amount", "1",
                     input="n\n")
    assert result.exit_code == 1
    assert f"1 {SPEC.native_symbol} to escrow" in result.stderr


# ------------------------------------------------------------------ fee cap and fee choice

def test_fee_above_the_amount_is_refused_without_allow_high_fee(env: Env) -> None:
    before = _mempool(env)
    result = env.run("wallet", "send", "--to", env.bob, "--amount", "0.001", "--fee", "0.01")
    assert result.exit_code == 1
    assert "is more than the amount 0.001" in result.stderr
    assert "--allow-high-fee" in result.stderr
    assert _mempool(env) == before
    result = env.run("wallet", "send", "--to", env.bob, "--amount", "0.001", "--fee", "0.01",
                     "--allow-high-fee")
    assert result.exit_code == 0, result.output
    env.node.wait_mined(result.stdout.split()[1])


def test_fee_above_100x_the_relay_minimum_is_refused(env: Env) -> None:
    result = env.run("--json", "wallet", "send", "--to", env.bob, "--amount", "50",
                     "--fee-rate", "500", "--dry-run")
    assert result.exit_code == 0  # a dry run broadcasts nothing: no cap
    result = env.run("wallet", "send", "--to", env.bob, "--amount", "50", "--fee-rate", "500")
    assert result.exit_code == 1
    assert "more than 100x the relay minimum" in result.stderr


def test_fee_rate_sets_the_fee(env: Env) -> None:
    low = env.json("wallet", "send", "--to", env.bob, "--amount", "1", "--dry-run")
    high = env.json("wallet", "send", "--to", env.bob, "--amount", "1", "--dry-run",
                    "--fee-rate", "3")
    size = len(high["raw"]) // 2
    assert SPEC.amount(high["fee"]) == 3 * size
    assert SPEC.amount(low["fee"]) < SPEC.amount(high["fee"])
    bad = env.run("wallet", "send", "--to", env.bob, "--amount", "1", "--fee-rate", "1.0001")
    assert bad.exit_code == 2 and "three decimals" in bad.stderr
    both = env.run("wallet", "send", "--to", env.bob, "--amount", "1", "--fee-rate", "2",
                   "--priority", "high")
    assert both.exit_code == 2


def test_chain_fees_and_priority(env: Env) -> None:
    data = env.json("chain", "fees")
    assert set(data["estimates"]) == {"low", "normal", "high"}
    assert data["period"] == SPEC.period and data["blocks_considered"] >= 1
    # An idle devnet: every priority is the relay minimum.
    assert {e["fee_rate"] for e in data["estimates"].values()} == {data["min_fee_rate"]}
    sent = env.json("wallet", "send", "--to", env.bob, "--amount", "1", "--priority", "high",
                    "--dry-run")
    size = len(sent["raw"]) // 2
    assert SPEC.amount(sent["fee"]) == -(-parse_rate(data["min_fee_rate"]) * size // 1000)


def test_estimate_rates_follow_the_queue_and_fullness() -> None:
    capacity = 1000
    idle = estimate_rates([], 0.1, capacity, 1000)
    assert idle == {p: 1000 for p in TARGET_BLOCKS}
    # 10 blocks' worth of queue at falling rates: high must beat the first block's last tx.
    queue = [(5000 - 100 * i, 500) for i in range(20)]
    rates = estimate_rates(queue, 0.5, capacity, 1000)
    assert rates["high"] == 4800 + 1 and rates["normal"] == 4400 + 1
    assert rates["low"] == 3800 + 1
    # Full blocks but a short queue: normal/high pay the median / 90th percentile.
    full = estimate_rates([(2000, 100), (3000, 100), (9000, 100)], 0.95, capacity, 1000)
    assert full["low"] == 1000 and full["normal"] == 3000 and full["high"] == 9000
    assert rate_text(1500) == "1.5" and rate_text(1000) == "1" and rate_text(1) == "0.001"


# ------------------------------------------------------------------ copyable ids

def test_txid_prefixes_unique_short_unknown(env: Env) -> None:
    txid = env.json("wallet", "history")["txs"][-1]["txid"]
    shown = env.json("chain", "tx", txid[:8])
    assert shown["txid"] == txid
    short = env.run("chain", "tx", txid[:7])
    assert short.exit_code == 1 and "too short: give at least 8 hex digits" in short.stderr
    unknown = "0" * 8 if not txid.startswith("0" * 8) else "f" * 8
    missing = env.run("chain", "tx", unknown)
    assert missing.exit_code == 1 and f"starts with {unknown}" in missing.stderr


def test_ambiguous_prefix_lists_the_matches(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    # Two real txids sharing 8 hex digits cannot be made on purpose: the node's
    # answer for such a prefix is given here, the CLI's message is what is tested.
    from o2ocli.cli import common as txids_mod

    known = sorted({t["txid"] for t in env.json("wallet", "history")["txs"]})[:2]
    asked: list[tuple[str, str]] = []

    def node_answer(ctx: Any, method: str, prefix: str) -> Any:
        asked.append((method, prefix))
        return {"txids": known, "more": False}

    monkeypatch.setattr(txids_mod, "rpc_call", node_answer)
    result = env.run("consent", "revoke", "1A2B3C4D")
    assert result.exit_code == 1
    assert asked == [("resolvetxid", "1a2b3c4d")]
    assert f"prefix 1a2b3c4d matches 2 transactions: {known[0]}, {known[1]}" in result.stderr


def test_resolvetxid_rpc_scans_the_index(env: Env) -> None:
    txids = sorted({t["txid"] for t in env.json("wallet", "history")["txs"]})
    for txid in txids[:3]:
        assert env.node.call("resolvetxid", txid[:8])["txids"] == [txid]
        assert env.node.call("resolvetxid", txid[:9].upper())["txids"] == [txid]  # odd length
    from o2ocli.rpc.errors import RpcError

    with pytest.raises(RpcError, match="8 to 64 hex digits"):
        env.node.call("resolvetxid", txids[0][:7])


def test_history_prints_whole_txids_labels_and_escrow(env: Env) -> None:
    opened = env.json("escrow", "open", "--payee", f"{env.bob}=10000", "--amount", "1")
    env.node.wait_mined(opened["txid"])
    history = env.json("wallet", "history")["txs"]
    escrow_rows = [t for t in history if t["escrow"]]
    assert escrow_rows and escrow_rows[-1]["escrow"] == [opened["escrow"]]
    text = env.run("wallet", "history").stdout
    assert opened["txid"] in text and "(escrow)" in text
    assert "Bob's bakery" in text
    listed = env.run("escrow", "list").stdout
    assert opened["escrow"] in listed
    # A prefix of the escrow id works as TXID:INDEX.
    shown = env.json("escrow", "show", opened["escrow"][:10] + ":0")
    assert shown["escrow"] == opened["escrow"]


def test_escrow_release_is_confirmed_on_a_terminal(env: Env, terminal: None) -> None:
    opened = env.json("escrow", "open", "--payee", f"{env.bob}=10000", "--amount", "2", "--yes")
    env.node.wait_mined(opened["txid"])
    prefix = opened["txid"][:12] + ":0"
    refused = env.run("escrow", "release", prefix, input="n\n")
    assert refused.exit_code == 1 and "error: not sent" in refused.stderr
    assert f"to {env.bob} (Bob's bakery)" in refused.stderr
    assert env.json("escrow", "show", opened["escrow"])["state"] == "open"
    released = env.json("escrow", "release", prefix, "--yes")
    env.node.wait_mined(released["txid"])
    assert env.json("escrow", "show", opened["escrow"])["state"] == "released"


def test_traced_items_show_by_item_id(env: Env) -> None:
    registered = env.json("trace", "register", "TEA-CONF-1", "--product", "Tea, 1 kg")
    env.node.wait_mined(registered["txid"])
    balances = env.json("wallet", "balance")["balances"]
    item = [b for b in balances if b["asset_id"] == registered["asset"]]
    assert item and item[0]["asset"] == "item:TEA-CONF-1" and item[0]["confirmed"] == "1"
    history = env.json("wallet", "history")["txs"]
    assert any(t["asset"] == "item:TEA-CONF-1" for t in history)
    assert registered["asset"] not in env.run("wallet", "balance").stdout


def test_labels_listed_and_removed(env: Env) -> None:
    assert env.json("wallet", "label", env.bob)["label"] == "Bob's bakery"
    rows = env.json("wallet", "labels")["labels"]
    assert {"address": env.bob, "label": "Bob's bakery", "mine": False} in rows
    env.run("wallet", "label", env.bob, "--remove")
    gone = env.run("wallet", "label", env.bob)
    assert gone.exit_code == 1 and "has no label" in gone.stderr
    assert env.run("wallet", "label", "not-an-address", "x").exit_code == 1


def test_gov_propose_shows_the_burned_deposit_and_asks(env: Env, terminal: None) -> None:
    args = ("gov", "propose", "--title", "Open on Sundays?", "--option", "yes",
            "--option", "no", "--voting-blocks", "5")
    before = _mempool(env)
    refused = env.run(*args, input="n\n")
    assert refused.exit_code == 1 and "error: not sent" in refused.stderr
    deposit = f"{SPEC.format(SPEC.gov_deposit)} {SPEC.native_symbol}"
    assert f"burned  {deposit} (destroyed for good)" in refused.stderr
    assert f"proposing burns the deposit of {deposit}" in refused.stderr
    assert _mempool(env) == before
    sent = env.run(*args, input="y\n")
    assert sent.exit_code == 0, sent.output
    txid = sent.stdout.split()[1]
    env.node.wait_mined(txid)
    listed = env.run("gov", "list")
    assert txid in listed.stdout  # whole, so it can be typed into gov vote
