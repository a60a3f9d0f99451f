"""The partially signed transaction format (``o2o-psbt`` v1): round trip,
checks against tampering, combine, finalize, and the CLI's refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from o2ocli.chainspec import load_spec
from o2ocli.cli.main import cli
from o2ocli.consensus.locks import check_multisig
from o2ocli.core.locks import Multisig, PayToAddress
from o2ocli.core.tx import NATIVE_ASSET, Outpoint, Tx, TxIn, TxOut
from o2ocli.crypto.keys import PublicKey
from o2ocli.wallet.hd import ACCOUNT_PATH, ExtendedKey
from o2ocli.wallet.multisig import (
    MS_CHANGE,
    MS_RECEIVE,
    derive_lock,
    multisig_address,
    parse_recipient,
)
from o2ocli.wallet.psbt import KeyPath, Psbt, PsbtError, PsbtInput, combine, finalize, parse, sign

SPEC = load_spec("devnet")
TESTNET = load_spec("testnet")
COIN = 10**SPEC.native_decimals
ACCOUNTS = [ExtendedKey.from_seed(bytes([i + 1]) * 32).derive_path(ACCOUNT_PATH)
            for i in range(3)]
XPUBS = sorted(a.neuter().serialize(private=False) for a in ACCOUNTS)
BY_XPUB = {a.neuter().serialize(private=False): a for a in ACCOUNTS}
KEYS = [ExtendedKey.parse(x) for x in XPUBS]


def make(amount: int = 4 * COIN, seed: bytes = b"\x11") -> Psbt:
    """A 2-of-3 coin of 10 coins, spent: ``amount`` to a stranger, the rest to change."""
    lock = derive_lock(KEYS, 2, MS_RECEIVE, 0)
    prev = Tx((TxIn(Outpoint(seed * 32, 0)),), (TxOut(NATIVE_ASSET, 10 * COIN, lock),))
    change = derive_lock(KEYS, 2, MS_CHANGE, 0)
    tx = Tx((TxIn(Outpoint(prev.txid, 0)),),
            (TxOut(NATIVE_ASSET, amount, PayToAddress(bytes(range(20)))),
             TxOut(NATIVE_ASSET, 10 * COIN - amount - 1000, change)))
    keys = [KeyPath(k.derive(MS_RECEIVE).derive(0).pubkey, n, (MS_RECEIVE, 0))
            for n, k in enumerate(KEYS)]
    return Psbt(SPEC.chain_id, tx, [PsbtInput(prev, prev.outputs[0], keys)], 2, XPUBS,
                {1: (MS_CHANGE, 0)})


def signed_by(psbt: Psbt, xpub_index: int) -> Psbt:
    copy = parse(psbt.dumps())
    assert sign(copy, BY_XPUB[XPUBS[xpub_index]], lambda pkh: None) == 1
    return copy


def test_round_trip_keeps_every_field_and_the_fee():
    psbt = signed_by(make(), 1)
    text = psbt.dumps()
    doc = json.loads(text)
    assert doc["format"] == "o2o-psbt" and doc["version"] == 1
    assert doc["chain_id"] == SPEC.chain_id and doc["txid"] == psbt.tx.txid.hex()
    again = parse(text)
    assert again.to_json() == doc
    assert again.inputs[0].signatures == psbt.inputs[0].signatures
    assert again.change == {1: (MS_CHANGE, 0)}
    from o2ocli.wallet.psbt import summary

    info = summary(again, SPEC)
    assert info["fee_units"] == 1000 and info["signatures"] == [1]
    assert [r["units"] for r in info["recipients"]] == [4 * COIN]


def test_multisig_address_round_trip_and_plain_addresses_still_parse():
    lock = derive_lock(KEYS, 2, MS_RECEIVE, 7)
    assert isinstance(lock, Multisig)
    assert parse_recipient(SPEC, multisig_address(SPEC, lock)) == lock
    plain = SPEC.address(bytes(range(20)))
    assert parse_recipient(SPEC, plain) == PayToAddress(bytes(range(20)))
    other = load_spec("testnet")
    with pytest.raises(ValueError, match="another chain"):
        parse_recipient(other, multisig_address(SPEC, lock))


@pytest.mark.parametrize("edit, reason", [
    (lambda d: d["inputs"][0]["coin"].update(amount=d["inputs"][0]["coin"]["amount"] + 1),
     "coin data does not match"),
    (lambda d: d["inputs"][0].update(prev_tx=make(seed=b"\x22").inputs[0].prev_tx.to_bytes()
                                     .hex()),
     "prev_tx is not the transaction the input spends"),
    (lambda d: d["change"][0].update(path=[MS_CHANGE, 1]), "marked as change"),
    (lambda d: d["inputs"][0]["keys"][0].update(path=[MS_RECEIVE, 1]),
     "does not match its derivation path"),
    (lambda d: d.update(chain_id="testnet"), "bad signature"),
    (lambda d: d.update(version=2), "unsupported o2o-psbt version 2"),
    (lambda d: d.update(txid="00" * 32), "txid does not match"),
])
def test_tampered_file_is_refused(edit, reason):
    doc = json.loads(signed_by(make(), 0).dumps())
    edit(doc)
    with pytest.raises(PsbtError, match=reason):
        parse(json.dumps(doc))


def test_output_changed_after_signing_is_a_bad_signature():
    doc = json.loads(signed_by(make(), 0).dumps())
    other = make(amount=5 * COIN)  # same input, more to the stranger
    doc["tx"], doc["txid"] = other.tx.to_bytes().hex(), other.tx.txid.hex()
    with pytest.raises(PsbtError, match="input 0: bad signature"):
        parse(json.dumps(doc))


def test_combine_merges_signatures_and_refuses_different_txs():
    a, b = signed_by(make(), 0), signed_by(make(), 2)
    merged = combine([a, b])
    assert len(merged.inputs[0].signatures) == 2
    with pytest.raises(PsbtError, match="different transactions"):
        combine([a, signed_by(make(amount=3 * COIN), 2)])
    b.change = {}
    with pytest.raises(PsbtError, match="different key sets or change"):
        combine([a, b])


def test_finalize_needs_m_signatures_in_the_locks_order():
    one = signed_by(make(), 2)
    with pytest.raises(PsbtError, match="input 0 has 1 of 2 signatures"):
        finalize(one, SPEC)
    full = combine([one, signed_by(make(), 0), signed_by(make(), 1)])  # three: two are used
    tx = finalize(full, SPEC)
    assert tx.txid == one.tx.txid
    lock = full.inputs[0].coin.lock
    pairs = check_multisig(lock, tx.inputs[0].witness)  # the consensus rule's shape check
    digest = tx.sighash(SPEC.chain_id)
    assert len(pairs) == 2 and all(PublicKey(p).verify(s, digest) for p, s in pairs)


def cli_run(datadir: Path, *args: str):
    return CliRunner().invoke(cli, ["--datadir", str(datadir), *args])


def test_cli_refuses_a_file_for_another_chain_and_a_tampered_file(tmp_path):
    testnet = tmp_path / "testnet"
    made = cli_run(testnet, "--chain", "testnet", "wallet", "create", "t", "--no-passphrase")
    assert made.exit_code == 0, made.output
    devnet_file = tmp_path / "pay.psbt"
    devnet_file.write_text(make().dumps())
    result = cli_run(testnet, "--chain", "testnet", "-w", "t", "wallet", "sign",
                     str(devnet_file), "--yes")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"error: {devnet_file} is for chain {SPEC.chain_id!r}, not {TESTNET.chain_id!r}: "
        "refusing to use it here"]
    doc = json.loads(make().dumps())
    doc["inputs"][0]["coin"]["amount"] = 1
    devnet_file.write_text(json.dumps(doc))
    for args in (["-w", "t", "wallet", "sign", str(devnet_file), "--yes"],
                 ["wallet", "finalize", str(devnet_file)],
                 ["wallet", "combine", str(devnet_file)],
                 ["chain", "broadcast", str(devnet_file)]):
        result = cli_run(testnet, "--chain", "testnet", *args)
        assert result.exit_code == 1, args
        assert result.stderr.strip().splitlines() == [
            f"error: {devnet_file}: input 0: coin data does not match the output it spends"]


def test_cli_finalize_with_one_of_two_signatures_names_the_missing_keys(tmp_path):
    path = tmp_path / "pay.psbt"
    path.write_text(signed_by(make(), 1).dumps())
    result = cli_run(tmp_path / "d", "wallet", "finalize", str(path))
    assert result.exit_code == 1
    lock = make().inputs[0].coin.lock
    missing = [SPEC.address(h) for h in lock.pubkey_hashes
               if h != KEYS[1].derive(MS_RECEIVE).derive(0).pubkey_hash]
    assert result.stderr.strip() == (
        f"error: {path}: not enough signatures: input 0 has 1 of 2 signatures "
        f"(can sign: {', '.join(missing)})")


@pytest.mark.parametrize("answer, yes, signed", [
    ("n\n", False, False),  # a terminal: asks, and no means no
    ("y\n", False, True),
    ("", True, True),       # --yes: does not ask
    (None, False, True),    # no terminal: proceeds as scripts expect
])
def test_cli_sign_shows_what_it_signs_and_asks_on_a_terminal(tmp_path, monkeypatch, answer, yes,
                                                               signed):
    from o2ocli.cli import psbt as psbt_cli
    from o2ocli.wallet.wallet import create_wallet

    datadir = tmp_path / "d"
    phrase = " ".join(["abandon"] * 11 + ["about"])
    with create_wallet(datadir, "solo", SPEC, phrase, None) as w:
        xpub = w.export_xpub()
    account = ExtendedKey.parse(xpub)
    owner = account.derive(0).derive(0)
    prev = Tx((TxIn(Outpoint(b"\x33" * 32, 1)),),
              (TxOut(NATIVE_ASSET, 3 * COIN, PayToAddress(owner.pubkey_hash)),))
    dest = SPEC.address(bytes(range(20)))
    tx = Tx((TxIn(Outpoint(prev.txid, 0)),),
            (TxOut(NATIVE_ASSET, 2 * COIN, PayToAddress(bytes(range(20)))),))
    psbt = Psbt(SPEC.chain_id, tx, [PsbtInput(prev, prev.outputs[0],
                                              [KeyPath(owner.pubkey, 0, (0, 0))])], 1, [xpub])
    path = tmp_path / "pay.psbt"
    path.write_text(psbt.dumps())
    monkeypatch.setattr(psbt_cli, "_interactive", lambda: answer is not None)
    result = CliRunner().invoke(cli, ["--datadir", str(datadir), "-w", "solo", "wallet", "sign",
                                      str(path), *(["--yes"] if yes else [])], input=answer)
    assert f"pay       {dest}  2 O2O" in result.stdout
    assert f"fee       1 {SPEC.native_symbol}" in result.stdout  # 3 in, 2 out
    assert ("Sign?" in result.stderr) == (answer is not None and not yes)
    after = parse(path.read_text())
    if signed:
        assert result.exit_code == 0, result.output
        assert list(after.inputs[0].signatures) == [owner.pubkey]
        assert finalize(after, SPEC).inputs[0].witness[0].pubkey == owner.pubkey
    else:
        assert result.exit_code == 1 and "error: not signed" in result.stderr
        assert after.inputs[0].signatures == {}


def test_cli_broadcast_still_takes_raw_hex_longer_than_a_file_name(tmp_path):
    raw = make().tx.to_bytes().hex() * 3  # > 255 characters: never looked up as a file
    result = cli_run(tmp_path / "d", "chain", "broadcast", raw)
    assert result.exit_code == 3  # gets as far as the (absent) node
    assert result.stderr.startswith("error: node is not running")


def test_change_is_only_called_change_for_a_signer_in_the_key_set():
    from o2ocli.wallet.psbt import summary

    psbt = make()
    assert len(summary(psbt, SPEC, XPUBS[0])["change"]) == 1
    stranger = ExtendedKey.from_seed(b"\x09" * 32).derive_path(ACCOUNT_PATH)
    info = summary(psbt, SPEC, stranger.neuter().serialize(private=False))
    assert info["change"] == [] and len(info["recipients"]) == 2


def test_cli_multisig_wallet_refuses_another_key_set_and_combine_refuses_other_txs(tmp_path):
    from o2ocli.wallet.wallet import create_wallet

    datadir = tmp_path / "d"
    with create_wallet(datadir, "solo", SPEC, " ".join(["abandon"] * 11 + ["about"]), None):
        pass
    made = cli_run(datadir, "--json", "-w", "solo", "wallet", "create", "shared", "--multisig",
                   "2", "--cosigner", XPUBS[0], "--cosigner", XPUBS[1])
    assert made.exit_code == 0, made.output
    assert json.loads(made.stdout)["address"] == cli_run(
        datadir, "-w", "shared", "wallet", "address").stdout.strip()
    again = cli_run(datadir, "-w", "shared", "wallet", "create", "again", "--multisig", "2",
                    "--cosigner", XPUBS[0])
    assert again.exit_code == 1 and "is a multisig wallet" in again.stderr
    path = tmp_path / "pay.psbt"
    path.write_text(make().dumps())  # the 2-of-3 of XPUBS: not this wallet's key set
    result = cli_run(datadir, "-w", "shared", "wallet", "sign", str(path), "--yes")
    assert result.exit_code == 1
    assert result.stderr == (f"error: {path} spends from another key set than multisig "
                             "wallet 'shared': refusing to sign\n")
    other = tmp_path / "other.psbt"
    other.write_text(make(amount=3 * COIN).dumps())
    result = cli_run(datadir, "wallet", "combine", str(path), str(other))
    assert result.exit_code == 1
    assert result.stderr.startswith("error: files are for different transactions (")


def _leaves(node, path=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _leaves(value, (*path, i))
    yield path


def test_any_mutated_field_is_accepted_or_refused_with_a_psbt_error():
    """Seeded by O2O_PSBT_SEED (random by default, named in a failure)."""
    import os
    import random

    seed = int(os.environ.get("O2O_PSBT_SEED") or random.randrange(2**32))
    rng = random.Random(seed)
    doc = json.loads(signed_by(make(), 0).dumps())
    paths = list(_leaves(doc))[:-1]  # every field but the root
    replacements = [None, -1, 0, 2**70, "", "zz", "00", [], {}, [3, 0], "ab" * 33, True]
    for _ in range(100):
        mutated = json.loads(json.dumps(doc))
        path = rng.choice(paths)
        parent = mutated
        for key in path[:-1]:
            parent = parent[key]
        old = parent[path[-1]]
        if isinstance(old, str) and old and rng.random() < 0.5:
            i = rng.randrange(len(old))
            new = old[:i] + rng.choice("0123456789abcdef") + old[i + 1:]
        else:
            new = rng.choice(replacements)
        parent[path[-1]] = new
        try:
            parse(json.dumps(mutated))
        except PsbtError:
            pass
        except Exception as exc:  # pragma: no cover - the failure report
            raise AssertionError(f"O2O_PSBT_SEED={seed}: {path} = {new!r} raised {exc!r}") from exc
