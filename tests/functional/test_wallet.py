"""Wallets end to end against a real --dev node process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal

import pytest

from .framework import run_cli, wait_until

PASS = "correct horse battery staple"


def balance(node, wallet: str) -> tuple[Decimal, Decimal]:
    data = node.cli_json("-w", wallet, "wallet", "balance")["balances"]
    native = next(b for b in data if b["asset"] == "O2O")
    return Decimal(native["confirmed"]), Decimal(native["unconfirmed"])


def wallet_meta(node, name: str) -> dict:
    from o2ocli.chainspec import load_spec
    from o2ocli.wallet.wallet import Wallet

    with Wallet.open(node.datadir, name, load_spec("devnet")) as wallet:
        return json.loads(json.dumps(wallet.meta))


def mined(node, txid: str) -> bool:
    """Final, not just in a block: block heights are settled then."""
    return node.rpc("gettx", txid)["final"]


@pytest.fixture
def dev(node_factory, tmp_path):
    node = node_factory()
    node.start("--dev", "--dev-period", "0")
    passfile = tmp_path / "pass.txt"
    passfile.write_text(PASS + "\n")
    node.passfile = str(passfile)
    return node


def create(node, name: str) -> dict:
    return node.cli_json("wallet", "create", name, "--passphrase-file", node.passfile)


def test_pay_split_balances_fee_and_restore(dev, tmp_path):
    alice = create(dev, "alice")
    bob = create(dev, "bob")
    carol = create(dev, "carol")
    assert set(alice) >= {"name", "address", "mnemonic"}
    assert len(alice["mnemonic"].split()) == 12
    assert dev.cli_json("wallet", "list")["wallets"] == ["alice", "bob", "carol", "dev"]

    dev_before, _ = balance(dev, "dev")
    sent = dev.cli_json("-w", "dev", "wallet", "send", "--to", alice["address"], "--amount", "50")
    assert set(sent) >= {"txid", "fee"}
    # Unconfirmed on both sides until mined.
    wait_until(lambda: mined(dev, sent["txid"]), what="funding to be mined")
    assert balance(dev, "alice") == (Decimal(50), 0)
    assert balance(dev, "dev")[0] == dev_before - 50 - Decimal(sent["fee"])

    pay = dev.cli_json("-w", "alice", "wallet", "send", "--to", bob["address"], "--amount", "7.25",
                       "--passphrase-file", dev.passfile)
    wait_until(lambda: mined(dev, pay["txid"]), what="payment to be mined")
    split = dev.cli_json(
        "-w", "alice", "wallet", "send", "--amount", "10",
        "--split", f"{bob['address']}=70", "--split", f"{carol['address']}=20",
        "--split", f"{alice['address']}=10", "--passphrase-file", dev.passfile,
    )
    wait_until(lambda: mined(dev, split["txid"]), what="split payment to be mined")
    fees = Decimal(pay["fee"]) + Decimal(split["fee"])
    assert balance(dev, "bob") == (Decimal("7.25") + 7, 0)
    assert balance(dev, "carol") == (Decimal(2), 0)
    assert balance(dev, "alice") == (Decimal(50) - Decimal("7.25") - 10 + 1 - fees, 0)
    tx = dev.rpc("gettx", split["txid"])
    paid = {o["address"]: o["amount"] for o in tx["outputs"]}
    assert paid[bob["address"]] == "7" and paid[carol["address"]] == "2"
    assert tx["fee"] == split["fee"]

    history = dev.cli_json("-w", "alice", "wallet", "history")["txs"]
    assert [h["kind"] for h in history] == ["receive", "send", "send"]
    assert history[0]["delta"] == "50" and history[0]["final"] is True
    assert history[1]["fee"] == pay["fee"] and bob["address"] in history[1]["counterparties"]
    assert set(history[0]) >= {"txid", "height", "asset", "delta", "kind"}

    # Restore alice from her phrase into a new datadir, against the same node.
    words = tmp_path / "alice.words"
    words.write_text(alice["mnemonic"] + "\n")
    cookie = (dev.datadir / ".cookie").read_text().strip()
    url = f"http://{cookie}@127.0.0.1:{dev.rpc_port}"
    other = tmp_path / "elsewhere"
    restored = json.loads(run_cli(other, "--rpc", url, "wallet", "restore", "alice2",
                                  "--mnemonic-file", str(words), "--no-passphrase",
                                  json_out=True).stdout)
    assert restored["name"] == "alice2"
    got = json.loads(run_cli(other, "--rpc", url, "-w", "alice2", "wallet", "balance",
                             json_out=True).stdout)["balances"][0]
    assert Decimal(got["confirmed"]) == balance(dev, "alice")[0]


def test_unconfirmed_balance_and_dry_run(node_factory, tmp_path):
    node = node_factory()
    node.start("--dev", "--dev-period", "3600")  # nothing gets mined during the test
    alice = node.cli_json("wallet", "create", "alice", "--no-passphrase")
    dry = node.cli_json("-w", "dev", "wallet", "send", "--to", alice["address"], "--amount", "3",
                        "--dry-run")
    assert set(dry) >= {"txid", "fee", "raw"}
    assert node.rpc("getmempool") == []  # not broadcast
    node.cli_json("chain", "broadcast", dry["raw"])
    assert balance(node, "alice") == (0, Decimal(3))
    confirmed, unconfirmed = balance(node, "dev")
    assert unconfirmed == -(3 + Decimal(dry["fee"]))


def run_fail(node, *args, code=1, input_text=None):
    out = node.cli(*args, input_text=input_text)
    assert out.returncode == code, (args, out.returncode, out.stderr)
    assert "Traceback" not in out.stderr
    if code == 2:  # click's usage errors: usage line, hint, message
        assert "Error:" in out.stderr
        return out.stderr
    assert out.stderr.startswith("error: ") and out.stderr.count("\n") == 1, out.stderr
    return out.stderr


def test_bad_inputs_are_refused_and_change_nothing(dev):
    alice = create(dev, "alice")
    funding = dev.cli_json("-w", "dev", "wallet", "send", "--to", alice["address"],
                           "--amount", "5")
    # Final, so the dev node's extra (finality) block is sealed before the snapshot.
    wait_until(lambda: mined(dev, funding["txid"]), what="funding to be final")
    assert balance(dev, "alice")[0] == 5
    before = (balance(dev, "alice"), dev.rpc("getmempool"), dev.rpc("getutxosetinfo"))
    meta_before = wallet_meta(dev, "alice")
    addr = alice["address"]
    broken = addr[:-1] + ("1" if addr[-1] != "1" else "2")
    send = ["-w", "alice", "wallet", "send", "--passphrase-file", dev.passfile]
    assert "bad address" in run_fail(dev, *send, "--to", broken, "--amount", "1")
    testnet_addr = "tWGD2u9st6K9gUr68hdo53qhZZyk3JoQAF"
    assert "another network" in run_fail(dev, *send, "--to", testnet_addr, "--amount", "1")
    err = run_fail(dev, *send, "--to", addr, "--amount", "6")
    assert "insufficient funds" in err and "5 O2O available" in err
    for bad in ("-1", "0", "1e3", "0.000000001", "abc", "99999999999999999999"):
        assert "bad amount" in run_fail(dev, *send, "--to", addr, "--amount", bad), bad
    run_fail(dev, *send, "--to", addr, code=2)  # no --amount: usage error
    run_fail(dev, *send, "--amount", "1", "--split", f"{addr}=50", code=1)  # not 100 %
    assert "unknown asset" in run_fail(dev, *send, "--to", addr, "--amount", "1",
                                       "--asset", "NOPE")
    wrong = dev.datadir.parent / "wrong.txt"
    wrong.write_text("not the passphrase\n")
    assert "wrong passphrase" in run_fail(dev, "-w", "alice", "wallet", "send", "--to", addr,
                                          "--amount", "1", "--passphrase-file", str(wrong))
    env_less = run_fail(dev, "-w", "alice", "wallet", "send", "--to", addr, "--amount", "1")
    assert "encrypted" in env_less
    assert "no wallet named" in run_fail(dev, "-w", "nobody", "wallet", "balance")
    # Tx refused by the node: a fee below the relay minimum, the node's reason shown.
    assert "min-relay-fee-not-met" in run_fail(dev, *send, "--to", addr, "--amount", "1",
                                               "--fee", "0.00000001")
    assert (balance(dev, "alice"), dev.rpc("getmempool"), dev.rpc("getutxosetinfo")) == before
    assert wallet_meta(dev, "alice") == meta_before  # no change address used up
    # create refuses without a passphrase source when there is no terminal
    assert "no passphrase" in run_fail(dev, "wallet", "create", "eve")
    assert "already exists" in run_fail(dev, "wallet", "create", "alice", "--no-passphrase")


def test_wallet_in_use_and_node_unreachable(dev):
    alice = create(dev, "alice")
    # Hold alice's LevelDB lock from another process.
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import plyvel, sys, time; db = plyvel.DB(sys.argv[1]); print('held', flush=True); "
         "time.sleep(60)", str(dev.datadir / "wallets" / "alice")],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert "open in another process" in run_fail(dev, "-w", "alice", "wallet", "address")
    finally:
        holder.kill()
        holder.wait()
    dev.stop()
    err = run_fail(dev, "-w", "alice", "wallet", "send", "--to", alice["address"], "--amount", "1",
                   "--passphrase-file", dev.passfile, code=3)
    assert "not running" in err
    # Offline commands still work.
    assert dev.cli_json("-w", "alice", "wallet", "address")["address"] == alice["address"]


def test_export_import_key_and_env_passphrase(dev, tmp_path):
    alice = create(dev, "alice")
    env = dict(os.environ, O2OCLI_PASSPHRASE=PASS)
    out = subprocess.run(
        [sys.executable, "-m", "o2ocli", "--datadir", str(dev.datadir), "--json", "-w", "alice",
         "wallet", "export-key", alice["address"]],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    wif = json.loads(out.stdout)["wif"]
    bob = dev.cli_json("wallet", "create", "bob", "--no-passphrase")
    imported = dev.cli_json("-w", "bob", "wallet", "import-key", wif)
    assert imported == {"address": alice["address"]}
    broken = wif[:-1] + ("x" if wif[-1] != "x" else "y")
    assert "bad private key" in run_fail(dev, "-w", "bob", "wallet", "import-key", broken)
    assert bob["address"] != alice["address"]


def test_crash_during_create_leaves_no_wallet(dev):
    """Kill `wallet create` at random moments: afterwards the wallet either
    exists completely (opens, has an address) or does not exist at all."""
    import random
    import time

    rng = random.Random(3)
    for i in range(8):
        proc = subprocess.Popen(
            [sys.executable, "-m", "o2ocli", "--datadir", str(dev.datadir), "wallet", "create",
             f"w{i}", "--no-passphrase"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.05, 0.6))
        proc.kill()
        proc.wait()
        names = dev.cli_json("wallet", "list")["wallets"]
        if f"w{i}" in names:
            assert dev.cli_json("-w", f"w{i}", "wallet", "address")["address"]
        else:
            out = dev.cli("-w", f"w{i}", "wallet", "address")
            assert out.returncode == 1 and "no wallet named" in out.stderr
            # and the name is free to use
            dev.cli_json("wallet", "create", f"w{i}", "--no-passphrase")
