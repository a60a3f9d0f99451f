"""BIP39 mnemonics and BIP32 extended keys (o2ocli.wallet.hd) against the public vectors.

Vectors: ``<repo>/../shared/vectors/bip32_vectors.json`` (BIP32 test vectors 1-5) and
``bip39_trezor_vectors.json`` (trezor/python-mnemonic, English list, passphrase "TREZOR").
"""

from __future__ import annotations

import copy
import json
import pickle
import re
import unicodedata
from pathlib import Path

import pytest
from mnemonic import Mnemonic

from o2ocli.crypto.backends import SECP256K1_N
from o2ocli.crypto.base58check import b58check_decode, b58check_encode
from o2ocli.crypto.hashes import hash160
from o2ocli.crypto.keys import PrivateKey
from o2ocli.wallet import hd
from o2ocli.wallet.hd import (
    ACCOUNT_PATH,
    CHANGE,
    COIN_TYPE,
    EXTERNAL,
    GAP_LIMIT,
    HARDENED,
    ExtendedKey,
    HDError,
    address_path,
    generate_mnemonic,
    mnemonic_to_seed,
    parse_path,
    validate_mnemonic,
)

VECTORS_DIR = Path(__file__).resolve().parents[3].parent / "shared" / "vectors"


def _load(name: str):
    path = VECTORS_DIR / name
    if not path.is_file():
        pytest.fail(f"test vector file not found: {path}")
    return json.loads(path.read_text(encoding="utf-8"))


BIP32 = _load("bip32_vectors.json")
BIP39_ENGLISH = _load("bip39_trezor_vectors.json")["english"]

# (vector number, seed hex, chain index, chain dict, parent chain dict or None)
CHAINS = [
    (v, vec["seed"], i, chain, vec["chains"][i - 1] if i else None)
    for v, vec in enumerate(BIP32["valid"], 1)
    for i, chain in enumerate(vec["chains"])
]
CHAIN_IDS = [f"v{v}-{chain['path']}" for v, _, _, chain, _ in CHAINS]
INVALID = BIP32["invalid_extended_keys"]


def _last_index(path: str) -> int:
    return parse_path(path)[-1]


PUBLIC_STEPS = [c for c in CHAINS if c[4] is not None and _last_index(c[3]["path"]) < HARDENED]
HARDENED_STEPS = [c for c in CHAINS if c[4] is not None and _last_index(c[3]["path"]) >= HARDENED]


@pytest.fixture(scope="module")
def master1() -> ExtendedKey:
    return ExtendedKey.from_seed(bytes.fromhex(BIP32["valid"][0]["seed"]))


# ---------------------------------------------------------------------------------------------
# BIP32 valid vectors
# ---------------------------------------------------------------------------------------------


def test_vector_counts():
    assert len(BIP32["valid"]) == 4
    assert len(CHAINS) == 17
    assert sum(1 for c in CHAINS for _ in ("xprv", "xpub")) == 34
    assert len(INVALID) == 16
    assert len(PUBLIC_STEPS) == 6
    assert len(HARDENED_STEPS) == 7
    assert len(BIP39_ENGLISH) == 24


@pytest.mark.parametrize(("vector", "seed", "i", "chain", "parent"), CHAINS, ids=CHAIN_IDS)
def test_derive_from_seed_matches_xprv_and_xpub(vector, seed, i, chain, parent):
    master = ExtendedKey.from_seed(bytes.fromhex(seed))
    key = master.derive_path(chain["path"])
    assert key.serialize() == chain["xprv"]
    assert key.serialize(private=True) == chain["xprv"]
    assert key.serialize(private=False) == chain["xpub"]
    assert key.neuter().serialize(private=False) == chain["xpub"]
    assert len(chain["xprv"]) == len(chain["xpub"]) == 111
    indexes = parse_path(chain["path"])
    assert key.depth == len(indexes)
    assert key.child_number == (indexes[-1] if indexes else 0)
    if parent is not None:
        assert key.parent_fingerprint == master.derive_path(parent["path"]).fingerprint
    else:
        assert key.parent_fingerprint == bytes(4)


@pytest.mark.parametrize(("vector", "seed", "i", "chain", "parent"), CHAINS, ids=CHAIN_IDS)
def test_parse_gives_back_the_same_fields(vector, seed, i, chain, parent):
    key = ExtendedKey.from_seed(bytes.fromhex(seed)).derive_path(chain["path"])
    xprv = ExtendedKey.parse(chain["xprv"])
    xpub = ExtendedKey.parse(chain["xpub"])
    for parsed in (xprv, xpub):
        assert parsed.depth == key.depth
        assert parsed.parent_fingerprint == key.parent_fingerprint
        assert parsed.child_number == key.child_number
        assert parsed.chain_code == key.chain_code
        assert parsed.pubkey == key.pubkey
        assert parsed.fingerprint == key.fingerprint
    assert xprv.key == key.key and xprv.key is not None
    assert xpub.key is None
    assert xprv == key and xpub == key.neuter() and xprv != xpub
    assert xprv.serialize() == chain["xprv"]
    assert xpub.serialize(private=False) == chain["xpub"]
    assert xprv.neuter() == xpub


@pytest.mark.parametrize(
    ("vector", "seed", "i", "chain", "parent"),
    PUBLIC_STEPS,
    ids=[f"v{c[0]}-{c[3]['path']}" for c in PUBLIC_STEPS],
)
def test_public_derivation_from_parent_xpub(vector, seed, i, chain, parent):
    parent_xpub = ExtendedKey.parse(parent["xpub"])
    child = parent_xpub.derive(_last_index(chain["path"]))
    assert child.key is None
    assert child.serialize(private=False) == chain["xpub"]
    private_child = ExtendedKey.parse(chain["xprv"])
    assert child.pubkey == private_child.pubkey


@pytest.mark.parametrize(
    ("vector", "seed", "i", "chain", "parent"),
    HARDENED_STEPS,
    ids=[f"v{c[0]}-{c[3]['path']}" for c in HARDENED_STEPS],
)
def test_hardened_derivation_from_xpub_raises(vector, seed, i, chain, parent):
    parent_xpub = ExtendedKey.parse(parent["xpub"])
    with pytest.raises(HDError, match="hardened"):
        parent_xpub.derive(_last_index(chain["path"]))
    # ...while the parent xprv derives it
    child = ExtendedKey.parse(parent["xprv"]).derive(_last_index(chain["path"]))
    assert child.serialize() == chain["xprv"]


def test_public_and_private_derivation_agree_on_many_children(master1):
    account = master1.derive_path("m/44'/7171'/0'/0")
    watch = account.neuter()
    for index in range(0, 200, 7):
        priv, pub = account.derive(index), watch.derive(index)
        assert priv.pubkey == pub.pubkey == priv.key.public_key.to_bytes()
        assert priv.neuter() == pub
        assert pub.pubkey_hash == hash160(pub.pubkey) and len(pub.pubkey_hash) == 20
        assert pub.fingerprint == pub.pubkey_hash[:4]


# ---------------------------------------------------------------------------------------------
# BIP32 invalid extended keys (vector 5)
# ---------------------------------------------------------------------------------------------

# The BIP's reason -> a pattern our error message must match (proves the right check fired).
EXPECTED_MESSAGE = {
    "pubkey version / prvkey mismatch": r"xpub version with private key data",
    "prvkey version / pubkey mismatch": r"xprv version with public key data",
    "invalid pubkey prefix 04": r"invalid public key prefix 0x04",
    "invalid prvkey prefix 04": r"invalid private key prefix 0x04",
    "invalid pubkey prefix 01": r"invalid public key prefix 0x01",
    "invalid prvkey prefix 01": r"invalid private key prefix 0x01",
    "zero depth with non-zero parent fingerprint": r"zero depth with non-zero parent fingerprint",
    "zero depth with non-zero index": r"zero depth with non-zero child number",
    "unknown extended key version": r"unknown extended key version 0x01010101",
    "private key 0 not in 1..n-1": r"private key is not in 1\.\.n-1",
    "private key n not in 1..n-1": r"private key is not in 1\.\.n-1",
    "invalid checksum": r"checksum",
}


def _expected_message(reason: str) -> str:
    if reason.startswith("invalid pubkey 02"):
        return r"not a point on secp256k1"
    return EXPECTED_MESSAGE[reason]


@pytest.mark.parametrize(
    "case", INVALID, ids=[f"{i:02d}-{c['reason'][:48]}" for i, c in enumerate(INVALID)]
)
def test_invalid_extended_key_is_rejected(case):
    with pytest.raises(HDError, match=_expected_message(case["reason"])):
        ExtendedKey.parse(case["key"])


def test_fifteen_invalid_keys_pass_the_checksum():
    passing = []
    for case in INVALID:
        try:
            payload = b58check_decode(case["key"])
        except ValueError:
            continue
        assert len(payload) == 78
        passing.append(case)
    assert len(passing) == 15


@pytest.mark.parametrize(
    "text",
    [
        "",
        " " + BIP32["valid"][0]["chains"][0]["xpub"],
        BIP32["valid"][0]["chains"][0]["xpub"] + "\n",
        "x" * 129,
        "0OIl",
        b58check_encode(bytes(77)),
        b58check_encode(b58check_decode(BIP32["valid"][0]["chains"][0]["xpub"]) + b"\x00"),
    ],
    ids=[
        "empty",
        "leading-space",
        "trailing-newline",
        "too-long",
        "bad-chars",
        "77-bytes",
        "79-bytes",
    ],
)
def test_parse_rejects_malformed_strings(text):
    with pytest.raises(HDError):
        ExtendedKey.parse(text)


def test_parse_rejects_non_str():
    xpub = BIP32["valid"][0]["chains"][0]["xpub"]
    with pytest.raises(HDError):
        ExtendedKey.parse(xpub.encode())  # type: ignore[arg-type]


def test_other_versions_round_trip_only_when_asked(master1):
    tprv, tpub = 0x04358394, 0x043587CF
    key = master1.derive_path("m/0'/1")
    s_prv = key.serialize(xprv_version=tprv)
    s_pub = key.serialize(private=False, xpub_version=tpub)
    assert s_prv.startswith("tprv") and s_pub.startswith("tpub")
    assert ExtendedKey.parse(s_prv, xprv_version=tprv, xpub_version=tpub) == key
    assert ExtendedKey.parse(s_pub, xprv_version=tprv, xpub_version=tpub) == key.neuter()
    for text in (s_prv, s_pub):
        with pytest.raises(HDError, match="unknown extended key version"):
            ExtendedKey.parse(text)
    with pytest.raises(HDError):
        key.serialize(xprv_version=2**32)
    with pytest.raises(HDError):
        ExtendedKey.parse(s_prv, xprv_version=tprv, xpub_version=tprv)


# ---------------------------------------------------------------------------------------------
# ExtendedKey behaviour
# ---------------------------------------------------------------------------------------------


def test_public_only_key_has_no_xprv(master1):
    pub = master1.neuter()
    assert pub.neuter() is pub
    with pytest.raises(HDError, match="public-only"):
        pub.serialize()


def test_immutable_and_repr_hides_secrets(master1):
    with pytest.raises(AttributeError):
        master1.depth = 3  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del master1.chain_code
    text = repr(master1)
    assert master1.key.secret.hex() not in text
    assert master1.chain_code.hex() not in text
    assert "private=True" in text
    assert "private=False" in repr(master1.neuter())


def test_equality_hash_pickle_copy(master1):
    child = master1.derive_path("m/1h/2")
    again = ExtendedKey.from_seed(bytes.fromhex(BIP32["valid"][0]["seed"])).derive_path("m/1H/2")
    assert child == again and hash(child) == hash(again)
    assert len({child, again, child.neuter()}) == 2
    assert pickle.loads(pickle.dumps(child)) == child
    assert copy.deepcopy(child) == child and copy.copy(child) == child
    assert child != "xprv" and child != master1


def test_derive_path_equals_step_by_step(master1):
    step = master1.derive(HARDENED + 44).derive(HARDENED + COIN_TYPE).derive(HARDENED)
    step = step.derive(EXTERNAL).derive(5)
    for path in ("m/44'/7171'/0'/0/5", "m/44H/7171H/0H/0/5", "m/44h/7171h/0h/0/5"):
        assert master1.derive_path(path) == step
    assert master1.derive_path(address_path(EXTERNAL, 5)) == step
    assert master1.derive_path("m") is master1
    # "m" is the key derive_path is called on (works from an account key too)
    account = master1.derive_path(ACCOUNT_PATH)
    assert account.neuter().derive_path("m/0/5") == step.neuter()


def test_constructor_validates_fields(master1):
    key = master1.derive_path("m/0'/7")
    rebuilt = ExtendedKey(
        key.depth, key.parent_fingerprint, key.child_number, key.chain_code, key.key
    )
    assert rebuilt == key
    public = ExtendedKey(
        key.depth, key.parent_fingerprint, key.child_number, key.chain_code, None, key.pubkey
    )
    assert public == key.neuter()
    fields = (key.depth, key.parent_fingerprint, key.child_number, key.chain_code)
    bad = [
        dict(depth=256),
        dict(depth=-1),
        dict(depth=True),
        dict(parent_fingerprint=b"abc"),
        dict(child_number=2**32),
        dict(chain_code=bytes(31)),
        dict(key="not a key"),
        dict(key=None, pubkey=None),
        dict(key=None, pubkey=b"\x02" + bytes(31) + b"\x07"),
        dict(key=None, pubkey=b"\x04" + bytes(32)),
        dict(pubkey=master1.pubkey),  # does not match key.key
        dict(depth=0),  # depth 0 with a non-zero fingerprint / child number
    ]
    for change in bad:
        args = dict(
            zip(("depth", "parent_fingerprint", "child_number", "chain_code"), fields, strict=True)
        )
        args.update(key=key.key, pubkey=None)
        args.update(change)
        with pytest.raises(HDError):
            ExtendedKey(**args)


@pytest.mark.parametrize("seed", [bytes(15), bytes(65), b"", "00" * 32, None])
def test_from_seed_rejects_bad_seeds(seed):
    with pytest.raises(HDError):
        ExtendedKey.from_seed(seed)


@pytest.mark.parametrize("index", [-1, 2**32, True, 1.0, "1"])
def test_derive_rejects_bad_indexes(master1, index):
    with pytest.raises(HDError):
        master1.derive(index)


def test_derive_accepts_the_extreme_indexes(master1):
    assert master1.derive(0).child_number == 0
    assert master1.derive(2**32 - 1).child_number == 2**32 - 1
    assert master1.derive(HARDENED - 1).child_number == HARDENED - 1


def test_depth_255_is_the_last_level(master1):
    deep = ExtendedKey(255, b"\x01\x02\x03\x04", 9, master1.chain_code, master1.key)
    with pytest.raises(HDError, match="depth"):
        deep.derive(0)
    deep_pub = deep.neuter()
    with pytest.raises(HDError, match="depth"):
        deep_pub.derive(0)
    assert master1.derive(1).depth == 1


def test_invalid_child_and_master_are_reported(monkeypatch, master1):
    """I_L >= n (or a zero key) is the BIP32 'use the next index' case."""
    watch = master1.neuter()
    real = hd._hmac_sha512
    n_bytes = SECP256K1_N.to_bytes(32, "big")
    monkeypatch.setattr(hd, "_hmac_sha512", lambda key, data: n_bytes + real(key, data)[32:])
    for node in (master1, watch):
        with pytest.raises(HDError, match="use the next index"):
            node.derive(3)
    with pytest.raises(HDError, match="another seed"):
        ExtendedKey.from_seed(bytes(16))

    # I_L = n - k makes the child private key zero (and the public sum the point at infinity)
    secret = int.from_bytes(master1.key.secret, "big")
    neg = (SECP256K1_N - secret).to_bytes(32, "big")
    monkeypatch.setattr(hd, "_hmac_sha512", lambda key, data: neg + real(key, data)[32:])
    for node in (master1, watch):
        with pytest.raises(HDError, match="use the next index"):
            node.derive(3)


# ---------------------------------------------------------------------------------------------
# Paths and constants
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("m", []),
        ("m/0", [0]),
        ("m/0'", [HARDENED]),
        ("m/0H/1/2h", [HARDENED, 1, HARDENED + 2]),
        ("m/44'/7171'/0'/0/5", [HARDENED + 44, HARDENED + 7171, HARDENED, 0, 5]),
        ("m/2147483647", [2**31 - 1]),
        ("m/2147483647'", [2**32 - 1]),
        ("m/0/2147483647H/1/2147483646H/2", [0, 2**32 - 1, 1, 2**32 - 2, 2]),
    ],
)
def test_parse_path_valid(path, expected):
    assert parse_path(path) == expected


@pytest.mark.parametrize(
    "path",
    [
        "",
        "M",
        "M/0",
        "/0",
        "0/1",
        "m/",
        "m//0",
        "m/0/",
        "m/-1",
        "m/+1",
        "m/01",
        "m/0x1",
        "m/1''",
        "m/1'h",
        "m/a",
        "m/ 1",
        "m/1 ",
        " m/1",
        "m/1\n",
        "m\\0",
        "m/2147483648",
        "m/2147483648'",
        "m/99999999999",
        "m/\u0661",  # ARABIC-INDIC DIGIT ONE
        "m/1\u2019",  # typographic apostrophe
        "m" + "/0" * 256,
        None,
        44,
    ],
)
def test_parse_path_invalid(path, master1):
    with pytest.raises(HDError):
        parse_path(path)
    with pytest.raises(HDError):
        master1.derive_path(path)


def test_constants_and_address_path():
    assert COIN_TYPE == 7171
    assert ACCOUNT_PATH == "m/44'/7171'/0'"
    assert (EXTERNAL, CHANGE, GAP_LIMIT) == (0, 1, 20)
    assert address_path(EXTERNAL, 5) == "m/44'/7171'/0'/0/5"
    assert address_path(CHANGE, 0) == "m/44'/7171'/0'/1/0"
    assert address_path(EXTERNAL, 2**31 - 1) == "m/44'/7171'/0'/0/2147483647"
    for chain, index in [(2, 0), (-1, 0), (True, 0), (0, -1), (0, 2**31), (0, 1.0), (0, False)]:
        with pytest.raises(HDError):
            address_path(chain, index)


# ---------------------------------------------------------------------------------------------
# BIP39
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "entry",
    BIP39_ENGLISH,
    ids=[f"{i:02d}-{len(e[1].split())}w" for i, e in enumerate(BIP39_ENGLISH)],
)
def test_bip39_english_vector(entry):
    entropy, words, seed, xprv = entry
    assert Mnemonic("english").to_mnemonic(bytes.fromhex(entropy)) == words
    assert validate_mnemonic(words) == words
    derived_seed = mnemonic_to_seed(words, "TREZOR")
    assert derived_seed.hex() == seed
    assert ExtendedKey.from_seed(derived_seed).serialize() == xprv


def test_validate_normalizes_case_and_spacing():
    words = BIP39_ENGLISH[0][1]
    messy = (
        "  "
        + "\t".join(w.upper() for w in words.split()[:6])
        + " \n "
        + " ".join(words.split()[6:])
        + "\n"
    )
    assert validate_mnemonic(messy) == words
    assert mnemonic_to_seed(messy, "TREZOR").hex() == BIP39_ENGLISH[0][2]


def test_unknown_word_is_named():
    words = BIP39_ENGLISH[0][1].split()
    words[4] = "bitcoinz"
    with pytest.raises(HDError, match=r"unknown word 'bitcoinz' \(word 5 of 12\)"):
        validate_mnemonic(" ".join(words))


@pytest.mark.parametrize("entry", [12, 14], ids=["12w", "24w"])
def test_bad_checksum_from_swapped_words(entry):
    words = BIP39_ENGLISH[entry][1].split()  # random entries ("ozone drill ...", "hamster ...")
    assert words[0] != words[1]
    swapped = [words[1], words[0], *words[2:]]
    assert not Mnemonic("english").check(" ".join(swapped))
    with pytest.raises(HDError, match="bad checksum"):
        validate_mnemonic(" ".join(swapped))
    with pytest.raises(HDError, match="bad checksum"):
        mnemonic_to_seed(" ".join(swapped))


@pytest.mark.parametrize("count", [1, 11, 13, 23, 25])
def test_wrong_word_count(count):
    words = (BIP39_ENGLISH[7][1].split() * 3)[:count]
    with pytest.raises(HDError, match=f"wrong number of words: {count}"):
        validate_mnemonic(" ".join(words))


@pytest.mark.parametrize("text", ["", "   \n", None, b"abandon"])
def test_empty_or_non_str_mnemonic(text):
    with pytest.raises(HDError):
        validate_mnemonic(text)


@pytest.mark.parametrize("words", [12, 24])
def test_generate_mnemonic(words):
    first, second = generate_mnemonic(words), generate_mnemonic(words)
    assert first != second
    for text in (first, second):
        assert len(text.split(" ")) == words
        assert validate_mnemonic(text) == text
    assert len(mnemonic_to_seed(first)) == 64


def test_generate_mnemonic_default_is_12_words():
    assert len(generate_mnemonic().split()) == 12


@pytest.mark.parametrize("words", [0, 11, 15, 18, 21, 25, "12", True, 12.0])
def test_generate_mnemonic_rejects_other_sizes(words):
    with pytest.raises(HDError):
        generate_mnemonic(words)


def test_seed_passphrase_is_nfkd_and_case_sensitive():
    words = BIP39_ENGLISH[0][1]
    composed = unicodedata.normalize("NFC", "caf\u00e9")
    decomposed = unicodedata.normalize("NFD", "caf\u00e9")
    assert composed != decomposed
    assert mnemonic_to_seed(words, composed) == mnemonic_to_seed(words, decomposed)
    assert mnemonic_to_seed(words, "TREZOR") != mnemonic_to_seed(words, "trezor")
    assert mnemonic_to_seed(words) != mnemonic_to_seed(words, "TREZOR")
    with pytest.raises(HDError):
        mnemonic_to_seed(words, None)  # type: ignore[arg-type]


def test_errors_are_value_errors():
    assert issubclass(HDError, ValueError)
    assert re.fullmatch(r"[0-9a-f]{8}", ExtendedKey.from_seed(bytes(16)).fingerprint.hex())
    assert isinstance(ExtendedKey.from_seed(bytes(16)).key, PrivateKey)
