"""Base58 / Base58Check against Bitcoin Core's base58_encode_decode.json."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from o2ocli.crypto import (
    Base58Error,
    b58check_decode,
    b58check_encode,
    b58decode,
    b58encode,
    sha256d,
)


@pytest.fixture(scope="module")
def cases(load_vector) -> list[list[str]]:
    return load_vector("bitcoin_core_base58_encode_decode.json")


def test_bitcoin_core_vectors(cases):
    assert len(cases) == 21
    for hex_bytes, encoded in cases:
        raw = bytes.fromhex(hex_bytes)
        assert b58encode(raw) == encoded, hex_bytes
        assert b58decode(encoded) == raw, encoded


@pytest.mark.parametrize(
    "bad",
    [
        "bad0IOl",
        "0",
        "O",
        "I",
        "l",
        " 1",
        "1 ",
        "1\n",
        "\t1",
        "3 SEo3LWLoPntC",
        "abc+",
        "é",
        "\x00",
        "3SEo3LWLoPntC\u00a0",
    ],
)
def test_invalid_characters_rejected(bad):
    with pytest.raises(Base58Error):
        b58decode(bad)
    with pytest.raises(Base58Error):
        b58check_decode(bad)


def test_non_str_rejected():
    with pytest.raises(Base58Error):
        b58decode(b"2g")  # type: ignore[arg-type]
    with pytest.raises(Base58Error):
        b58decode(None)  # type: ignore[arg-type]


def test_base58check_round_trip_and_checksum():
    payload = bytes.fromhex("00751e76e8199196d454941c45d1b3a323f1433bd6")
    encoded = b58check_encode(payload)
    assert encoded == "1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH"
    assert b58check_decode(encoded) == payload
    assert b58decode(encoded) == payload + sha256d(payload)[:4]
    # Corrupt one character: checksum must fail.
    corrupted = encoded[:-1] + ("M" if encoded[-1] != "M" else "N")
    with pytest.raises(Base58Error, match="checksum"):
        b58check_decode(corrupted)


@pytest.mark.parametrize("short", ["", "1", "111", "2g"])
def test_base58check_too_short(short):
    with pytest.raises(Base58Error):
        b58check_decode(short)


@given(st.binary(max_size=80))
def test_round_trips(data):
    assert b58decode(b58encode(data)) == data
    assert b58check_decode(b58check_encode(data)) == data
