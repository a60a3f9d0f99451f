"""Passphrase keystore (o2ocli.wallet.keystore): scrypt + AES-256-GCM blobs."""

from __future__ import annotations

import json
import time

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from o2ocli.wallet.keystore import (
    ASSOCIATED_DATA,
    KeystoreError,
    WrongPassphrase,
    decrypt_secret,
    encrypt_secret,
    is_encrypted,
    plain_secret,
)

FAST = {"n": 2**10, "r": 8, "p": 1}
SECRET = bytes(range(64))
PASS = "correct horse battery staple"


@pytest.fixture(scope="module")
def blob() -> dict:
    return encrypt_secret(SECRET, PASS, **FAST)


def _flip(hex_text: str, byte_index: int) -> str:
    raw = bytearray(bytes.fromhex(hex_text))
    raw[byte_index] ^= 0x01
    return raw.hex()


def test_round_trip_and_blob_layout(blob):
    assert set(blob) == {"version", "kdf", "n", "r", "p", "salt", "cipher", "nonce", "ciphertext"}
    assert blob["version"] == 1
    assert blob["kdf"] == "scrypt" and blob["cipher"] == "aes-256-gcm"
    assert (blob["n"], blob["r"], blob["p"]) == (2**10, 8, 1)
    assert len(bytes.fromhex(blob["salt"])) == 16
    assert len(bytes.fromhex(blob["nonce"])) == 12
    assert len(bytes.fromhex(blob["ciphertext"])) == len(SECRET) + 16  # GCM tag appended
    assert SECRET.hex() not in json.dumps(blob)
    assert is_encrypted(blob) is True
    assert decrypt_secret(blob, PASS) == SECRET
    # survives a JSON round trip (what the wallet stores)
    assert decrypt_secret(json.loads(json.dumps(blob)), PASS) == SECRET


@pytest.mark.parametrize("secret", [b"", b"x", bytearray(b"mnemonic words"), memoryview(b"ab")])
def test_round_trip_various_lengths(secret):
    assert decrypt_secret(encrypt_secret(secret, PASS, **FAST), PASS) == bytes(secret)


def test_default_parameters_round_trip_fast_enough():
    start = time.perf_counter()
    blob = encrypt_secret(SECRET, PASS)
    assert (blob["n"], blob["r"], blob["p"]) == (2**15, 8, 1)
    assert decrypt_secret(blob, PASS) == SECRET
    elapsed = (time.perf_counter() - start) / 2
    assert elapsed < 1.0, f"one scrypt derivation with the defaults took {elapsed:.2f} s"


@pytest.mark.parametrize("wrong", ["", "Correct horse battery staple", PASS + " ", "x" * 1000])
def test_wrong_passphrase(blob, wrong):
    with pytest.raises(WrongPassphrase, match="^wrong passphrase$") as info:
        decrypt_secret(blob, wrong)
    assert isinstance(info.value, KeystoreError)
    assert str(info.value) == "wrong passphrase"


def test_passphrase_is_nfkd_normalized():
    blob = encrypt_secret(SECRET, "caf\u00e9", **FAST)
    assert decrypt_secret(blob, "cafe\u0301") == SECRET


@pytest.mark.parametrize(
    ("field", "byte_index"),
    [
        ("ciphertext", 0),
        ("ciphertext", 63),
        ("ciphertext", -1),  # inside the GCM tag
        ("nonce", 0),
        ("nonce", 11),
        ("salt", 0),
        ("salt", 15),
    ],
)
def test_tampering_is_detected(blob, field, byte_index):
    tampered = dict(blob, **{field: _flip(blob[field], byte_index)})
    with pytest.raises(WrongPassphrase):
        decrypt_secret(tampered, PASS)


@pytest.mark.parametrize("change", [{"n": 2**11}, {"r": 7}, {"p": 2}])
def test_changed_kdf_parameters_are_detected(blob, change):
    with pytest.raises(WrongPassphrase):
        decrypt_secret(dict(blob, **change), PASS)


def test_truncated_or_extended_ciphertext_is_detected(blob):
    for ciphertext in (blob["ciphertext"][:-2], blob["ciphertext"] + "00"):
        with pytest.raises(WrongPassphrase):
            decrypt_secret(dict(blob, ciphertext=ciphertext), PASS)


def test_associated_data_binds_the_context(blob):
    """A blob sealed with other associated data (another use) does not open here."""
    salt, nonce = bytes.fromhex(blob["salt"]), bytes.fromhex(blob["nonce"])
    key = Scrypt(salt=salt, length=32, n=2**10, r=8, p=1).derive(PASS.encode())
    assert AESGCM(key).decrypt(nonce, bytes.fromhex(blob["ciphertext"]), ASSOCIATED_DATA)
    other = AESGCM(key).encrypt(nonce, SECRET, b"some-other-context")
    with pytest.raises(WrongPassphrase):
        decrypt_secret(dict(blob, ciphertext=other.hex()), PASS)
    assert ASSOCIATED_DATA == b"o2ocli-keystore-v1"


def test_two_encryptions_differ():
    first = encrypt_secret(SECRET, PASS, **FAST)
    second = encrypt_secret(SECRET, PASS, **FAST)
    assert first["salt"] != second["salt"]
    assert first["nonce"] != second["nonce"]
    assert first["ciphertext"] != second["ciphertext"]
    assert decrypt_secret(first, PASS) == decrypt_secret(second, PASS) == SECRET


def _without(blob: dict, field: str) -> dict:
    return {k: v for k, v in blob.items() if k != field}


@pytest.mark.parametrize(
    "field", ["version", "kdf", "n", "r", "p", "salt", "cipher", "nonce", "ciphertext"]
)
def test_missing_field(blob, field):
    with pytest.raises(KeystoreError, match=repr(field)) as info:
        decrypt_secret(_without(blob, field), PASS)
    assert not isinstance(info.value, WrongPassphrase)


MALFORMED = {
    "version-2": {"version": 2},
    "version-str": {"version": "1"},
    "version-bool": {"version": True},
    "version-float": {"version": 1.0},
    "kdf-unknown": {"kdf": "pbkdf2"},
    "kdf-none-with-aes": {"kdf": "none"},
    "cipher-unknown": {"cipher": "aes-128-cbc"},
    "cipher-none-with-scrypt": {"cipher": "none"},
    "n-not-power-of-two": {"n": 1000},
    "n-one": {"n": 1},
    "n-zero": {"n": 0},
    "n-negative": {"n": -1024},
    "n-float": {"n": 1024.0},
    "n-str": {"n": "1024"},
    "n-bool": {"n": True},
    "n-too-big": {"n": 2**21},
    "r-zero": {"r": 0},
    "r-too-big": {"r": 33},
    "r-null": {"r": None},
    "p-zero": {"p": 0},
    "p-too-big": {"p": 17},
    "cost-too-big": {"n": 2**20, "r": 16},
    "cost-too-big-p": {"n": 2**20, "r": 8, "p": 2},
    "salt-odd-hex": {"salt": "abc"},
    "salt-not-hex": {"salt": "zz" * 16},
    "salt-spaces": {"salt": "00 " * 16},
    "salt-int": {"salt": 12},
    "salt-short": {"salt": "00" * 8},
    "salt-long": {"salt": "00" * 65},
    "nonce-short": {"nonce": "00" * 11},
    "nonce-long": {"nonce": "00" * 16},
    "nonce-not-hex": {"nonce": "0g" * 12},
    "ciphertext-short": {"ciphertext": "00" * 15},
    "ciphertext-empty": {"ciphertext": ""},
    "ciphertext-list": {"ciphertext": [1, 2]},
    "ciphertext-newline": {"ciphertext": "00" * 32 + "\n"},
}


@pytest.mark.parametrize("change", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_blob(blob, change):
    with pytest.raises(KeystoreError) as info:
        decrypt_secret(dict(blob, **change), PASS)
    assert not isinstance(info.value, WrongPassphrase)
    assert str(info.value)


@pytest.mark.parametrize("not_a_blob", [None, [], "{}", 42, b"{}"])
def test_blob_must_be_a_mapping(not_a_blob):
    with pytest.raises(KeystoreError, match="JSON object"):
        decrypt_secret(not_a_blob, PASS)
    with pytest.raises(KeystoreError):
        is_encrypted(not_a_blob)


@pytest.mark.parametrize(
    "hostile", [{"n": 2**30}, {"n": 2**62}, {"r": 2**20}, {"p": 2**30}, {"n": 2**20, "r": 32}]
)
def test_hostile_scrypt_parameters_refused_quickly(blob, hostile):
    start = time.perf_counter()
    with pytest.raises(KeystoreError, match="scrypt"):
        decrypt_secret(dict(blob, **hostile), PASS)
    assert time.perf_counter() - start < 0.5


@pytest.mark.parametrize(
    "params",
    [{"n": 2**30}, {"n": 1000}, {"r": 0}, {"p": 0}, {"n": 2**20, "r": 16}, {"n": 1024.0}],
)
def test_encrypt_refuses_bad_parameters(params):
    args = dict(FAST, **params)
    with pytest.raises(KeystoreError):
        encrypt_secret(SECRET, PASS, **args)


def test_encrypt_rejects_non_bytes():
    with pytest.raises(TypeError):
        encrypt_secret("text", PASS, **FAST)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        encrypt_secret(SECRET, None, **FAST)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        plain_secret("text")  # type: ignore[arg-type]


def test_plain_blob_ignores_the_passphrase():
    blob = plain_secret(SECRET)
    assert blob == {"version": 1, "kdf": "none", "cipher": "none", "plaintext": SECRET.hex()}
    assert is_encrypted(blob) is False
    for passphrase in ("", "anything", PASS):
        assert decrypt_secret(blob, passphrase) == SECRET
    assert decrypt_secret(json.loads(json.dumps(blob)), "x") == SECRET
    assert decrypt_secret(plain_secret(b""), "") == b""


@pytest.mark.parametrize(
    "change",
    [{"plaintext": "abc"}, {"plaintext": None}, {"plaintext": "xyz0"}, {"version": 0}],
    ids=["odd-hex", "null", "not-hex", "version-0"],
)
def test_malformed_plain_blob(change):
    with pytest.raises(KeystoreError):
        decrypt_secret(dict(plain_secret(SECRET), **change), "")


def test_plain_blob_without_plaintext():
    with pytest.raises(KeystoreError, match="'plaintext'"):
        decrypt_secret(_without(plain_secret(SECRET), "plaintext"), "")


def test_wrong_passphrase_default_message():
    assert str(WrongPassphrase()) == "wrong passphrase"
    assert issubclass(WrongPassphrase, KeystoreError)
    assert issubclass(KeystoreError, Exception)
