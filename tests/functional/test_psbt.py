"""A 2-of-3 multisig payment signed on three machines' worth of wallets.

One ``--dev`` node; three datadirs stand for three machines: the first is the
node's (it funds, builds and broadcasts), the other two never talk to a node
(their wallets sign files offline).  The CLI runs in-process (``CliRunner``)
against the real node process, to keep the test quick.
"""

from __future__ import annotations

import json
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from o2ocli.cli.main import cli

from .framework import NodeProcess, wait_until

PASS = "correct horse battery staple"


def run(datadir: Path, *args: str, ok: bool = True, env: dict | None = None):
    result = CliRunner().invoke(cli, ["--datadir", str(datadir), "--json", *args],
                                env={"O2OCLI_PASSPHRASE": PASS, **(env or {})})
    if ok:
        assert result.exit_code == 0, (args, result.output, result.exception)
        return json.loads(result.stdout) if result.stdout.strip() else None
    assert result.exit_code == 1, (args, result.output)
    return result.stderr.strip()


@pytest.fixture(scope="module")
def machines(tmp_path_factory):
    root = tmp_path_factory.mktemp("psbt")
    node = NodeProcess(root / "m1", "m1")
    node.start("--dev", "--dev-period", "0")
    try:
        yield node, root / "m1", root / "m2", root / "m3"
    finally:
        node.kill()


def native(data: dict) -> tuple[Decimal, Decimal]:
    row = next(b for b in data["balances"] if b["asset"] == "O2O")
    return Decimal(row["confirmed"]), Decimal(row["unconfirmed"])


def test_two_of_three_payment_signed_on_three_machines(machines):
    node, m1, m2, m3 = machines
    m2.mkdir()
    m3.mkdir()
    run(m1, "wallet", "create", "alice")  # encrypted with PASS (from the environment)
    run(m2, "wallet", "create", "bob", "--no-passphrase")
    run(m3, "wallet", "create", "carol", "--no-passphrase")
    xa = run(m1, "-w", "alice", "wallet", "export-xpub")["xpub"]
    xb = run(m2, "-w", "bob", "wallet", "export-xpub")["xpub"]
    xc = run(m3, "-w", "carol", "wallet", "export-xpub")["xpub"]
    made = [
        run(m1, "-w", "alice", "wallet", "create", "shared", "--multisig", "2",
            "--cosigner", xb, "--cosigner", xc),
        run(m2, "-w", "bob", "wallet", "create", "shared", "--multisig", "2",
            "--cosigner", xc, "--cosigner", xa),
        run(m3, "-w", "carol", "wallet", "create", "shared", "--multisig", "2",
            "--cosigner", xa, "--cosigner", xb),
    ]
    address = made[0]["address"]
    assert [w["address"] for w in made] == [address] * 3  # same address on every machine
    assert made[0]["m"] == 2 and made[0]["n"] == 3 and made[0]["can_sign"]

    # Fund the multisig address from the dev wallet.
    funding = run(m1, "-w", "dev", "wallet", "send", "--to", address, "--amount", "20")
    wait_until(lambda: node.rpc("gettx", funding["txid"])["final"], 60, "funding to be final")
    assert native(run(m1, "-w", "shared", "wallet", "balance")) == (Decimal(20), 0)
    # A multisig wallet does not spend alone.
    dest = run(m1, "-w", "alice", "wallet", "address")["address"]
    refused = run(m1, "-w", "shared", "wallet", "send", "--to", dest, "--amount", "1", ok=False)
    assert "multisig wallet" in refused and "--unsigned" in refused
    # Nor does it act as the single-key wallet whose seed it holds a copy of.
    for command in (["wallet", "history"], ["invoice", "create", "--amount", "1"]):
        refused = run(m1, "-w", "shared", *command, ok=False)
        assert refused == ("error: wallet 'shared' is a multisig wallet: it has multisig "
                           "addresses only (address, balance, send --unsigned, sign)"), command

    unsigned = m1 / "pay.psbt"
    built = run(m1, "-w", "shared", "wallet", "send", "--to", dest, "--amount", "5",
                "--unsigned", "--out", str(unsigned))
    assert built["summary"]["recipients"] == [
        {"address": dest, "asset": "00" * 32, "units": 500_000_000, "amount": "5 O2O"}]
    assert len(built["summary"]["change"]) == 1
    fee = Decimal(built["fee"])
    assert 0 < fee < Decimal("0.01")

    # The file travels to the two other machines; each signs its own copy, offline.
    shutil.copy(unsigned, m2 / "pay.psbt")
    shutil.copy(unsigned, m3 / "pay.psbt")
    signed_b = run(m2, "-w", "bob", "wallet", "sign", str(m2 / "pay.psbt"),
                   "--out", str(m2 / "pay-bob.psbt"))
    assert signed_b["added"] == 1 and signed_b["signatures"] == [1]
    signed_c = run(m3, "-w", "shared", "wallet", "sign", str(m3 / "pay.psbt"), "--yes")
    assert signed_c["added"] == 1  # carol's multisig wallet signs her share in place
    assert signed_c["summary"]["fee"] == built["fee"]

    # Alice's multisig wallet holds a copy of her encrypted seed: it can sign its share too.
    mine = run(m1, "-w", "shared", "wallet", "sign", str(unsigned), "--out", str(m1 / "a.psbt"))
    assert mine["added"] == 1 and mine["summary"]["change"] == built["summary"]["change"]

    # One signature is not enough.
    short = run(m1, "wallet", "finalize", str(m2 / "pay-bob.psbt"), ok=False)
    assert "input 0 has 1 of 2 signatures" in short

    full = m1 / "pay-full.psbt"
    combined = run(m1, "wallet", "combine", str(m2 / "pay-bob.psbt"), str(m3 / "pay.psbt"),
                   "--out", str(full))
    assert combined["signatures"] == [2]
    final = run(m1, "wallet", "finalize", str(full), "--out", str(m1 / "pay.tx"))
    sent = run(m1, "chain", "broadcast", str(m1 / "pay.tx"))
    assert sent["txid"] == final["txid"] == built["txid"]
    wait_until(lambda: node.rpc("gettx", sent["txid"])["final"], 60, "payment to be final")
    assert native(run(m1, "-w", "shared", "wallet", "balance")) == (Decimal(15) - fee, 0)
    assert native(run(m1, "-w", "alice", "wallet", "balance")) == (Decimal(5), 0)
    # A complete psbt file is finalized on the way: the node knows that tx already.
    again = run(m1, "chain", "broadcast", str(full), ok=False)
    assert f"tx {sent['txid']} is already confirmed" in again

    # Offline signing of a single-key payment: a watch-only twin builds it, the
    # wallet with the keys signs, the complete file is broadcast as it is.
    run(m1, "wallet", "create", "alice-till", "--watch-only", "--xpub", xa)
    solo = m1 / "solo.psbt"
    back = run(m1, "-w", "dev", "wallet", "address")["address"]
    built = run(m1, "-w", "alice-till", "wallet", "send", "--to", back, "--amount", "1",
                "--unsigned", "--out", str(solo))
    assert [r["address"] for r in built["summary"]["recipients"]] == [back]
    refused = run(m1, "-w", "alice-till", "wallet", "sign", str(solo), ok=False)
    assert "watch-only" in refused
    assert run(m1, "-w", "alice", "wallet", "sign", str(solo))["signatures"] == [1]
    sent = run(m1, "chain", "broadcast", str(solo))
    assert sent["txid"] == built["txid"]
    wait_until(lambda: node.rpc("gettx", sent["txid"])["final"], 60, "payment to be final")
    assert native(run(m1, "-w", "alice", "wallet", "balance")) == (
        Decimal(4) - Decimal(built["fee"]), 0)
