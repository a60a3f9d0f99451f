"""Wallet LevelDB (o2ocli.wallet.wallet): creation, opening, addresses, secrets, signing.

Real LevelDB in tmp dirs, real keys and signatures checked by the consensus rules.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from o2ocli.chainspec import builtin_spec_path, load_spec, spec_from_dict
from o2ocli.consensus.errors import TxInvalid
from o2ocli.consensus.tx import validate_transaction
from o2ocli.core.locks import PayToAddress
from o2ocli.core.tx import NATIVE_ASSET, Coin, Outpoint, Tx, TxIn, TxOut
from o2ocli.crypto.keys import PrivateKey
from o2ocli.wallet.hd import ExtendedKey, mnemonic_to_seed
from o2ocli.wallet.keystore import WrongPassphrase
from o2ocli.wallet.wallet import (
    Wallet,
    WalletError,
    WalletExists,
    WalletLocked,
    WalletNotFound,
    create_wallet,
    list_wallets,
    wallets_dir,
)

SPEC = load_spec("devnet")
MNEMONIC = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon " \
    "abandon about"
OTHER_MNEMONIC = "legal winner thank year wave sausage worth useful legal winner thank yellow"
PASS = "correct horse battery staple"
FAST = 2**10
MASTER = ExtendedKey.from_seed(mnemonic_to_seed(MNEMONIC))
GAP = 20


def bip44(chain: int, index: int, master: ExtendedKey = MASTER) -> ExtendedKey:
    """Independent derivation of m/44'/7171'/0'/chain/index."""
    return master.derive_path(f"m/44'/7171'/0'/{chain}/{index}")


def pkh_at(chain: int, index: int) -> bytes:
    return bip44(chain, index).pubkey_hash


def new_wallet(datadir: Path, name: str = "w", passphrase: str | None = PASS,
               mnemonic: str = MNEMONIC, **kwargs) -> Wallet:
    return create_wallet(datadir, name, SPEC, mnemonic, passphrase, scrypt_n=FAST, **kwargs)


def db_snapshot(wallet: Wallet) -> dict[bytes, bytes]:
    return dict(wallet.db.iterator())


@pytest.fixture
def wallet(tmp_path):
    w = new_wallet(tmp_path)
    yield w
    w.close()


@pytest.fixture
def plain_wallet(tmp_path):
    w = new_wallet(tmp_path, "plain", passphrase=None)
    yield w
    w.close()


# --------------------------------------------------------------------------- create / open


def test_create_encrypted_and_reopen(tmp_path):
    w = new_wallet(tmp_path)
    first = w.receive_address()
    assert w.encrypted
    assert w.meta["chain_id"] == SPEC.chain_id
    assert w.meta["name"] == "w"
    seed_blob = json.loads(w.db.get(b"seed"))
    assert seed_blob["kdf"] == "scrypt" and seed_blob["n"] == FAST
    assert all(b"abandon" not in v for v in db_snapshot(w).values())
    w.close()
    assert list_wallets(tmp_path) == ["w"]
    assert (wallets_dir(tmp_path) / "w" / "CURRENT").is_file()
    with Wallet.open(tmp_path, "w", SPEC) as again:
        assert again.encrypted
        assert again.receive_address() == first
        assert again.owns(SPEC.decode_address(first))
        assert again.mnemonic(PASS) == MNEMONIC
    assert again.db.closed


def test_first_address_is_bip44_external_zero(wallet):
    assert wallet.receive_address() == SPEC.address(pkh_at(0, 0))


def test_same_mnemonic_same_first_address_in_two_datadirs(tmp_path):
    a = new_wallet(tmp_path / "one", "a", passphrase=PASS)
    b = new_wallet(tmp_path / "two", "b", passphrase=None)
    c = new_wallet(tmp_path / "three", "c", mnemonic=OTHER_MNEMONIC)
    try:
        assert a.receive_address() == b.receive_address()
        assert a.change_lock() == b.change_lock()
        assert c.receive_address() != a.receive_address()
    finally:
        for w in (a, b, c):
            w.close()


def test_mnemonic_is_validated_and_nothing_created(tmp_path):
    bad = MNEMONIC.replace("about", "abandon")  # bad checksum
    with pytest.raises(ValueError):
        new_wallet(tmp_path, mnemonic=bad)
    assert list_wallets(tmp_path) == []
    assert not (wallets_dir(tmp_path) / "w").exists()


@pytest.mark.parametrize(
    "name", ["", "-x", "_x", ".x", "a/b", "../x", "a b", "x" * 65, "é", "a.b", "a\\b"]
)
def test_invalid_wallet_names_rejected(tmp_path, name):
    with pytest.raises(WalletError, match="invalid wallet name"):
        new_wallet(tmp_path, name)
    with pytest.raises(WalletError, match="invalid wallet name"):
        Wallet.open(tmp_path, name, SPEC)
    assert list_wallets(tmp_path) == []


def test_wallet_name_with_trailing_newline_rejected(tmp_path):
    """NAME_RE ends in ``$``, which also matches before a trailing newline."""
    with pytest.raises(WalletError, match="invalid wallet name"):
        new_wallet(tmp_path, "w\n").close()


@pytest.mark.parametrize("name", ["a", "Z", "9", "A-b_9", "x" * 64])
def test_valid_wallet_names(tmp_path, name):
    new_wallet(tmp_path, name, passphrase=None).close()
    assert list_wallets(tmp_path) == [name]


def test_wallet_exists(tmp_path):
    w = new_wallet(tmp_path)
    first = w.receive_address()
    w.close()
    with pytest.raises(WalletExists):
        new_wallet(tmp_path, mnemonic=OTHER_MNEMONIC)
    with Wallet.open(tmp_path, "w", SPEC) as again:
        assert again.receive_address() == first
        assert again.mnemonic(PASS) == MNEMONIC
    assert list_wallets(tmp_path) == ["w"]


def test_wallet_not_found_names_existing_wallets(tmp_path):
    with pytest.raises(WalletNotFound, match="none"):
        Wallet.open(tmp_path, "gamma", SPEC)
    new_wallet(tmp_path, "alpha", passphrase=None).close()
    new_wallet(tmp_path, "beta", passphrase=None).close()
    with pytest.raises(WalletNotFound) as info:
        Wallet.open(tmp_path, "gamma", SPEC)
    message = str(info.value)
    assert "gamma" in message and "alpha" in message and "beta" in message


def test_second_open_is_locked(tmp_path):
    w = new_wallet(tmp_path)
    try:
        with pytest.raises(WalletLocked):
            Wallet.open(tmp_path, "w", SPEC)
    finally:
        w.close()
    with Wallet.open(tmp_path, "w", SPEC) as again:
        with pytest.raises(WalletLocked):
            Wallet.open(tmp_path, "w", SPEC)
        assert not again.db.closed


def test_wallet_of_another_chain_refuses_to_open(tmp_path):
    data = json.loads(builtin_spec_path("devnet").read_text(encoding="utf-8"))
    other = spec_from_dict({**data, "chain_id": "o2o-othernet"})
    assert other.chain_id != SPEC.chain_id
    new_wallet(tmp_path).close()
    with pytest.raises(WalletError, match="o2o-devnet") as info:
        Wallet.open(tmp_path, "w", other)
    assert not isinstance(info.value, WalletNotFound | WalletLocked)
    assert "o2o-othernet" in str(info.value)
    # The refused open released the database.
    with Wallet.open(tmp_path, "w", SPEC) as again:
        assert again.meta["chain_id"] == "o2o-devnet"


def test_leftover_temp_folder_is_ignored(tmp_path):
    junk = wallets_dir(tmp_path) / ".x.tmp-1234"
    junk.mkdir(parents=True)
    (junk / "CURRENT").write_text("MANIFEST-000001\n")
    (junk / "000001.log").write_bytes(b"\x00garbage" * 10)
    incomplete = wallets_dir(tmp_path) / "half"
    incomplete.mkdir()
    (incomplete / "LOG").write_text("junk")
    assert list_wallets(tmp_path) == []
    with pytest.raises(WalletNotFound):
        Wallet.open(tmp_path, "half", SPEC)
    with new_wallet(tmp_path, "x") as w:
        assert w.receive_address() == SPEC.address(pkh_at(0, 0))
    assert list_wallets(tmp_path) == ["x"]
    assert not [p for p in wallets_dir(tmp_path).iterdir() if ".x.tmp-" in p.name
                and p.name != ".x.tmp-1234"]


# --------------------------------------------------------------------------- secrets


def test_unlock_with_wrong_passphrase(wallet):
    before = db_snapshot(wallet)
    meta = json.loads(json.dumps(wallet.meta))
    with pytest.raises(WrongPassphrase):
        wallet.unlock("wrong")
    with pytest.raises(WrongPassphrase):
        wallet.unlock(None)
    with pytest.raises(WrongPassphrase):
        wallet.mnemonic("wrong")
    assert db_snapshot(wallet) == before
    assert wallet.meta == meta
    unlocked = wallet.unlock(PASS)
    assert unlocked.account is not None
    assert unlocked.account.serialize() == MASTER.derive_path("m/44'/7171'/0'").serialize()


def test_unencrypted_wallet_ignores_passphrase(plain_wallet):
    assert not plain_wallet.encrypted
    assert json.loads(plain_wallet.db.get(b"seed"))["kdf"] == "none"
    pkh = plain_wallet.change_lock().pubkey_hash
    for passphrase in (None, "", "anything"):
        unlocked = plain_wallet.unlock(passphrase)
        assert plain_wallet.key_for(pkh, unlocked).secret == bip44(1, 0).key.secret
        assert plain_wallet.mnemonic(passphrase) == MNEMONIC


def test_mnemonic_returns_normalized_phrase(tmp_path):
    messy = "  " + MNEMONIC.upper().replace(" ", "  \t") + "\n"
    with new_wallet(tmp_path, mnemonic=messy) as w:
        assert w.mnemonic(PASS) == MNEMONIC
        assert w.receive_address() == SPEC.address(pkh_at(0, 0))


# --------------------------------------------------------------------------- addresses


def test_receive_address_stable_until_new(tmp_path):
    w = new_wallet(tmp_path)
    first = w.receive_address()
    assert w.receive_address() == first
    assert w.receive_address(new=False) == first
    w.close()
    w = Wallet.open(tmp_path, "w", SPEC)
    try:
        assert w.receive_address() == first
        second = w.receive_address(new=True)
        assert second != first
        assert second == SPEC.address(pkh_at(0, 1))
        assert w.receive_address() == second
        assert w.owns(SPEC.decode_address(first)) and w.owns(SPEC.decode_address(second))
    finally:
        w.close()
    with Wallet.open(tmp_path, "w", SPEC) as w:
        assert w.receive_address() == second
        assert w.receive_address(new=True) == SPEC.address(pkh_at(0, 2))


def test_change_locks_distinct_and_watched(tmp_path):
    w = new_wallet(tmp_path)
    receive = SPEC.decode_address(w.receive_address())
    locks = [w.change_lock() for _ in range(3)]
    assert all(isinstance(lock, PayToAddress) for lock in locks)
    pkhs = [lock.pubkey_hash for lock in locks]
    assert pkhs == [pkh_at(1, i) for i in range(3)]
    assert len(set(pkhs)) == 3 and receive not in pkhs
    assert all(w.owns(p) for p in pkhs)
    assert not w.owns(pkh_at(1, 3))
    w.close()
    with Wallet.open(tmp_path, "w", SPEC) as w:
        assert all(w.owns(p) for p in pkhs)
        assert set(w.pubkey_hashes()) >= {*pkhs, receive}
        assert w.change_lock().pubkey_hash == pkh_at(1, 3)
        assert w.receive_address() == SPEC.address(receive)


def test_extend_gap(wallet):
    assert not wallet.owns(pkh_at(0, 1)) and not wallet.owns(pkh_at(1, 0))
    assert wallet.extend_gap(set()) is True
    assert all(wallet.owns(pkh_at(0, i)) for i in range(GAP))
    assert all(wallet.owns(pkh_at(1, i)) for i in range(GAP))
    assert not wallet.owns(pkh_at(0, GAP + 1))
    assert not wallet.owns(pkh_at(1, GAP))
    assert wallet.extend_gap(set()) is False

    used = {pkh_at(0, 5), pkh_at(1, 3)}
    assert wallet.extend_gap(used) is True
    assert all(wallet.owns(pkh_at(0, i)) for i in range(5 + GAP + 1))
    assert not wallet.owns(pkh_at(0, 5 + GAP + 1))
    assert all(wallet.owns(pkh_at(1, i)) for i in range(3 + GAP + 1))
    assert not wallet.owns(pkh_at(1, 3 + GAP + 1))
    assert wallet.extend_gap(used) is False
    before = db_snapshot(wallet)
    assert wallet.extend_gap(used) is False
    assert db_snapshot(wallet) == before

    # A used address is never handed out again.
    assert SPEC.decode_address(wallet.receive_address()) == pkh_at(0, 6)
    change = wallet.change_lock().pubkey_hash
    assert change not in {pkh_at(1, i) for i in range(4)}
    assert wallet.owns(change)

    used.add(pkh_at(0, 5 + GAP))
    assert wallet.extend_gap(used) is True
    assert wallet.owns(pkh_at(0, 5 + 2 * GAP))
    assert not wallet.owns(pkh_at(0, 5 + 2 * GAP + 1))


def test_extend_gap_ignores_foreign_addresses(wallet):
    wallet.extend_gap(set())
    foreign = {hashlib.new("ripemd160", b"x%d" % i).digest() for i in range(5)}
    before = db_snapshot(wallet)
    assert wallet.extend_gap(foreign) is False
    assert db_snapshot(wallet) == before


# --------------------------------------------------------------------------- keys


def test_keys_follow_bip44_path(tmp_path):
    with new_wallet(tmp_path) as w:
        ext = [SPEC.decode_address(w.receive_address())]
        ext += [SPEC.decode_address(w.receive_address(new=True)) for _ in range(2)]
        chg = [w.change_lock().pubkey_hash for _ in range(3)]
        unlocked = w.unlock(PASS)
        for chain, pkhs in ((0, ext), (1, chg)):
            for index, pkh in enumerate(pkhs):
                expected = bip44(chain, index)
                assert pkh == expected.pubkey_hash
                key = w.key_for(pkh, unlocked)
                assert key.secret == expected.key.secret
                assert key.public_key.hash160() == pkh
        xpub = MASTER.derive_path("m/44'/7171'/0'").serialize(private=False)
        assert w.db.get(b"xpub").decode() == xpub


def test_key_for_unknown_address(wallet):
    unlocked = wallet.unlock(PASS)
    with pytest.raises(WalletError):
        wallet.key_for(hashlib.new("ripemd160", b"stranger").digest(), unlocked)
    # An address of this seed that was never derived is not in the wallet either.
    with pytest.raises(WalletError):
        wallet.key_for(pkh_at(0, 7), unlocked)


def test_import_key_encrypted_needs_right_passphrase(tmp_path):
    key = PrivateKey(hashlib.sha256(b"imported key").digest())
    pkh = key.public_key.hash160()
    w = new_wallet(tmp_path)
    before = db_snapshot(w)
    with pytest.raises(WalletError):
        w.import_key(key, None)
    with pytest.raises(WrongPassphrase):
        w.import_key(key, "wrong")
    assert db_snapshot(w) == before
    assert not w.owns(pkh)
    assert w.import_key(key, PASS) == pkh
    assert w.owns(pkh)
    raw = w.db.get(b"k" + pkh)
    assert raw is not None and key.secret.hex().encode() not in raw
    assert json.loads(raw)["kdf"] == "scrypt"
    assert w.unlock(PASS).imported == {pkh: key}
    with pytest.raises(WrongPassphrase):
        w.unlock("wrong")
    w.close()
    with Wallet.open(tmp_path, "w", SPEC) as w:
        assert w.owns(pkh)
        unlocked = w.unlock(PASS)
        assert w.key_for(pkh, unlocked).secret == key.secret


def test_import_key_unencrypted(plain_wallet):
    key = PrivateKey(hashlib.sha256(b"plain import").digest())
    pkh = plain_wallet.import_key(key, None)
    assert pkh == key.public_key.hash160()
    assert plain_wallet.owns(pkh)
    assert plain_wallet.key_for(pkh, plain_wallet.unlock(None)).secret == key.secret


def test_create_with_imported_keys(tmp_path):
    key = PrivateKey(hashlib.sha256(b"at creation").digest())
    with new_wallet(tmp_path, imported=[key]) as w:
        pkh = key.public_key.hash160()
        assert w.owns(pkh)
        assert w.key_for(pkh, w.unlock(PASS)).secret == key.secret


# --------------------------------------------------------------------------- signing


def test_sign_produces_valid_signatures(tmp_path):
    imported = PrivateKey(hashlib.sha256(b"signing import").digest())
    with new_wallet(tmp_path) as w:
        owners = [
            SPEC.decode_address(w.receive_address()),
            w.change_lock().pubkey_hash,
            w.import_key(imported, PASS),
        ]
        view = {}
        inputs = []
        for i, pkh in enumerate(owners):
            outpoint = Outpoint(hashlib.sha256(b"prev %d" % i).digest(), i)
            view[outpoint] = Coin(TxOut(NATIVE_ASSET, 1_000_000, PayToAddress(pkh)), 1)
            inputs.append(TxIn(outpoint))
        payee = PayToAddress(hashlib.new("ripemd160", b"payee").digest())
        tx = Tx(tuple(inputs), (TxOut(NATIVE_ASSET, 2_900_000, payee),))
        unlocked = w.unlock(PASS)
        signed = w.sign(tx, owners, unlocked)
        assert signed.txid == tx.txid
        assert all(len(txin.witness) == 1 for txin in signed.inputs)
        params = SPEC.consensus_params
        assert validate_transaction(signed, view, 2, params) == 100_000

        # Owners in the wrong order: the witnesses no longer match the locks.
        swapped = w.sign(tx, [owners[1], owners[0], owners[2]], unlocked)
        with pytest.raises(TxInvalid):
            validate_transaction(swapped, view, 2, params)

        # The signature commits to the chain id.
        data = json.loads(builtin_spec_path("devnet").read_text(encoding="utf-8"))
        other = spec_from_dict({**data, "chain_id": "o2o-othernet"})
        with pytest.raises(TxInvalid, match="signature"):
            validate_transaction(signed, view, 2, other.consensus_params)


def test_peek_change_is_only_recorded_by_commit_change(tmp_path):
    from o2ocli.chainspec import load_spec
    from o2ocli.wallet.hd import generate_mnemonic
    from o2ocli.wallet.wallet import WalletError, create_wallet

    spec = load_spec("devnet")
    with create_wallet(tmp_path, "peek", spec, generate_mnemonic(), None) as wallet:
        before = dict(wallet.meta["next_index"])
        first = wallet.peek_change()
        assert wallet.peek_change() == first  # peeking changes nothing
        assert wallet.meta["next_index"] == before
        wallet.commit_change(first)
        assert wallet.meta["next_index"]["1"] == before["1"] + 1
        assert wallet.owns(first.pubkey_hash)
        second = wallet.peek_change()
        assert second != first
        with pytest.raises(WalletError):
            wallet.commit_change(first)  # stale peek
        assert wallet.peek_change() == second  # and the refusal recorded nothing
