"""Addresses and WIF against Bitcoin Core's key_io_valid.json / key_io_invalid.json."""

from __future__ import annotations

import pytest

from o2ocli.crypto import (
    SECP256K1_N,
    AddressError,
    PrivateKey,
    WifError,
    address_from_pubkey,
    b58check_encode,
    decode_address,
    decode_wif,
    encode_address,
    encode_wif,
)

MAIN = {"p2pkh": 0x00, "p2sh": 0x05, "wif": 0x80}
TEST = {"p2pkh": 0x6F, "p2sh": 0xC4, "wif": 0xEF}
VERSIONS = {"main": MAIN, "testnet4": TEST, "signet": TEST, "regtest": TEST}


def _kind(entry: list) -> tuple[str, bytes]:
    """Classify a key_io_valid entry; return (kind, payload bytes: hash or secret)."""
    _, payload_hex, meta = entry
    payload = bytes.fromhex(payload_hex)
    if meta["isPrivkey"]:
        return "wif", payload
    if "tryCaseFlip" in meta:
        return "bech32", payload
    if len(payload) == 25 and payload[:3] == b"\x76\xa9\x14" and payload[23:] == b"\x88\xac":
        return "p2pkh", payload[3:23]
    if len(payload) == 23 and payload[:2] == b"\xa9\x14" and payload[22:] == b"\x87":
        return "p2sh", payload[2:22]
    raise AssertionError(f"unexpected entry {entry}")


@pytest.fixture(scope="module")
def valid(load_vector) -> list[list]:
    return load_vector("bitcoin_core_key_io_valid.json")


@pytest.fixture(scope="module")
def invalid(load_vector) -> list[list]:
    return load_vector("bitcoin_core_key_io_invalid.json")


def test_valid_file_breakdown(valid):
    assert len(valid) == 70
    counts: dict[tuple[str, str], int] = {}
    for entry in valid:
        key = (entry[2]["chain"], _kind(entry)[0])
        counts[key] = counts.get(key, 0) + 1
    assert counts[("main", "p2pkh")] == 3
    assert counts[("main", "p2sh")] == 3
    assert counts[("main", "wif")] == 4
    assert sum(v for (_, kind), v in counts.items() if kind == "bech32") == 32


def test_mainnet_p2pkh(valid):
    seen = 0
    for entry in valid:
        s, _, meta = entry
        kind, h = _kind(entry)
        if meta["chain"] != "main" or kind != "p2pkh":
            continue
        seen += 1
        assert decode_address(s, 0x00) == h
        assert encode_address(h, 0x00) == s
        with pytest.raises(AddressError):
            decode_address(s.swapcase(), 0x00)
        with pytest.raises(WifError):
            decode_wif(s)
        with pytest.raises(AddressError, match=r"another network \(version 0x00\), expected 0x6f"):
            decode_address(s, 0x6F)
    assert seen == 3


def test_mainnet_wif(valid):
    seen = {True: 0, False: 0}
    for s, payload_hex, meta in valid:
        if meta["chain"] != "main" or not meta["isPrivkey"]:
            continue
        secret = bytes.fromhex(payload_hex)
        compressed = meta["isCompressed"]
        seen[compressed] += 1
        assert decode_wif(s) == (secret, compressed)
        assert decode_wif(s, version=0x80) == (secret, compressed)
        assert encode_wif(secret, compressed=compressed) == s
        assert len(s) == (52 if compressed else 51)
        with pytest.raises(AddressError):
            decode_address(s, 0x00)
        with pytest.raises(WifError):
            decode_wif(s.swapcase())
        with pytest.raises(WifError, match="another network"):
            decode_wif(s, version=0xEF)
        assert PrivateKey(secret).secret == secret
    assert seen == {True: 2, False: 2}


def test_every_base58_entry_with_its_own_versions(valid):
    """All base58 entries (all chains) decode with their chain's versions and round-trip."""
    seen = 0
    for entry in valid:
        s, _, meta = entry
        kind, payload = _kind(entry)
        if kind == "bech32":
            continue
        seen += 1
        versions = VERSIONS[meta["chain"]]
        if kind == "wif":
            assert decode_wif(s, version=versions["wif"]) == (payload, meta["isCompressed"])
            assert (
                encode_wif(payload, compressed=meta["isCompressed"], version=versions["wif"]) == s
            )
            with pytest.raises(AddressError):
                decode_address(s, versions["p2pkh"])
        else:
            assert decode_address(s, versions[kind]) == payload
            assert encode_address(payload, versions[kind]) == s
            with pytest.raises(WifError):
                decode_wif(s, version=versions["wif"])
            # P2PKH and P2SH version bytes are not interchangeable.
            other = versions["p2sh" if kind == "p2pkh" else "p2pkh"]
            with pytest.raises(AddressError, match="another network"):
                decode_address(s, other)
        with pytest.raises(AddressError):  # base58 is case-sensitive
            if kind == "wif":
                decode_wif(s.swapcase(), version=versions["wif"])
            else:
                decode_address(s.swapcase(), versions[kind])
    assert seen == 38


def test_other_chains_rejected_by_mainnet_decoders(valid):
    seen = 0
    for entry in valid:
        s, _, meta = entry
        kind, payload = _kind(entry)
        if meta["chain"] == "main" or kind == "bech32":
            continue
        seen += 1
        with pytest.raises(AddressError):
            decode_address(s, MAIN["p2pkh"])
        with pytest.raises(AddressError):
            decode_address(s, MAIN["p2sh"])
        with pytest.raises(WifError):
            decode_wif(s, version=MAIN["wif"])
        if kind == "p2pkh":
            with pytest.raises(AddressError, match=r"version 0x6f\), expected 0x00"):
                decode_address(s, MAIN["p2pkh"])
            assert decode_address(s, TEST["p2pkh"]) == payload
        elif kind == "wif":
            with pytest.raises(WifError, match=r"version 0xef\), expected 0x80"):
                decode_wif(s)
            assert decode_wif(s, version=TEST["wif"]) == (payload, meta["isCompressed"])
    assert seen == 28


def test_bech32_entries_are_not_base58_addresses(valid):
    seen = 0
    for entry in valid:
        s = entry[0]
        if _kind(entry)[0] != "bech32":
            continue
        seen += 1
        for version in (0x00, 0x05, 0x6F, 0xC4):
            with pytest.raises(AddressError):
                decode_address(s, version)
        for version in (0x80, 0xEF):
            with pytest.raises(WifError):
                decode_wif(s, version=version)
    assert seen == 32


def test_invalid_file_all_rejected(invalid):
    assert len(invalid) == 70
    accepted = []
    for (s,) in invalid:
        for version in (0x00, 0x05, 0x6F, 0xC4):
            try:
                decode_address(s, version)
            except AddressError:
                pass
            else:
                accepted.append(("address", version, s))
        for version in (0x80, 0xEF):
            try:
                decode_wif(s, version=version)
            except WifError:
                pass
            else:
                accepted.append(("wif", version, s))
    assert not accepted, accepted


@pytest.mark.parametrize("bad", [None, b"1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH", 123, ""])
def test_non_str_and_empty_rejected(bad):
    with pytest.raises(AddressError):
        decode_address(bad, 0x00)  # type: ignore[arg-type]
    with pytest.raises(WifError):
        decode_wif(bad)  # type: ignore[arg-type]


def test_error_messages_are_readable():
    addr = "1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH"
    with pytest.raises(AddressError, match="checksum"):
        decode_address(addr[:-1] + "N", 0x00)
    with pytest.raises(AddressError, match="character"):
        decode_address(addr[:-1] + "0", 0x00)
    with pytest.raises(AddressError, match="payload is 22 bytes"):
        decode_address(b58check_encode(bytes(22)), 0x00)
    with pytest.raises(AddressError, match="too long"):
        decode_address("1" * 500, 0x00)


def test_generator_point_address_and_wif():
    one = (1).to_bytes(32, "big")
    pub = PrivateKey(one).public_key
    assert address_from_pubkey(pub.to_bytes(), 0x00) == "1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH"
    # Uncompressed input is normalized to the compressed key first: one address per key.
    g_uncompressed = bytes.fromhex(
        "0479be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
        "483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8"
    )
    assert address_from_pubkey(g_uncompressed, 0x00) == "1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH"
    assert encode_address(bytes.fromhex("91b24bf9f5288532960ac687abb035127b1d28a5"), 0) == (
        "1EHNa6Q4Jz2uvNExL497mE43ikXhwF6kZm"
    )
    assert decode_address("1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH", 0x00) == pub.hash160()
    assert encode_wif(one) == "KwDiBf89QgGbjEhKnhXJuH7LrciVrZi3qYjgd9M7rFU73sVHnoWn"
    assert encode_wif(one, compressed=False) == (
        "5HpHagT65TZzG1PH3CSu63k8DbpvD8s5ip4nEB3kEsreAnchuDf"
    )
    with pytest.raises(AddressError):
        address_from_pubkey(b"\x02" + bytes(32), 0x00)


def test_wif_secret_range_and_flag():
    for secret in (bytes(32), SECP256K1_N.to_bytes(32, "big")):
        for tail in (b"", b"\x01"):
            with pytest.raises(WifError, match="range"):
                decode_wif(b58check_encode(b"\x80" + secret + tail))
        with pytest.raises(ValueError):
            encode_wif(secret)
    good = (5).to_bytes(32, "big")
    with pytest.raises(WifError, match="compression flag"):
        decode_wif(b58check_encode(b"\x80" + good + b"\x02"))
    with pytest.raises(WifError, match="payload is 35 bytes"):
        decode_wif(b58check_encode(b"\x80" + good + b"\x01\x01"))
    with pytest.raises(ValueError):
        encode_wif(good[:31])
    with pytest.raises(ValueError):
        encode_wif(good, version=256)
    with pytest.raises(ValueError):
        encode_address(bytes(19), 0)
