"""Payment URIs: formatting and parsing both ways, and the invoice state rules."""

from __future__ import annotations

import random

import pytest

from o2ocli.wallet.invoices import Payment, invoice_state
from o2ocli.wallet.uri import PaymentRequest, UriError, format_uri, parse_uri

ADDR = "dMKBzRKnMPZfouVS6ruEHi4W59cXV9X2CV"


def test_format_percent_encodes_per_rfc3986():
    req = PaymentRequest(ADDR, amount="12.5", asset="BEANS", label="Café ☕", message="a&b=c d",
                         invoice="ab12", exp=1700000000, chain="o2o-devnet")
    uri = format_uri(req)
    assert uri == (f"o2o:{ADDR}?amount=12.5&asset=BEANS&label=Caf%C3%A9%20%E2%98%95"
                   "&message=a%26b%3Dc%20d&invoice=ab12&exp=1700000000&chain=o2o-devnet")
    assert parse_uri(uri) == req


def test_bare_address_and_unknown_optional_keys():
    assert parse_uri(f"o2o:{ADDR}") == PaymentRequest(ADDR)
    assert parse_uri(f"O2O:{ADDR}?foo=bar&amount=1").amount == "1"


@pytest.mark.parametrize("uri, message", [
    ("bitcoin:" + ADDR, "must start with 'o2o:'"),
    ("o2o:0OIl", "bad address"),
    (f"o2o:{ADDR}?amount=1e3", "malformed amount"),
    (f"o2o:{ADDR}?amount=-1", "malformed amount"),
    (f"o2o:{ADDR}?amount=1&amount=2", "appears twice"),
    (f"o2o:{ADDR}?label=%zz", "not percent-encoded"),
    (f"o2o:{ADDR}?label=a b", "not percent-encoded"),
    (f"o2o:{ADDR}?label=%ff", "not UTF-8"),
    (f"o2o:{ADDR}?req-split=1", "requires 'split'"),
    (f"o2o:{ADDR}?exp=soon", "malformed expiry"),
    (f"o2o:{ADDR}?amount", "malformed parameter"),
])
def test_bad_uris_are_refused_with_the_reason(uri, message):
    with pytest.raises(UriError, match=message):
        parse_uri(uri)


def test_random_round_trips(seed: int = 17):
    rng = random.Random(seed)
    alphabet = "abcXYZ019 -._~!*'();:@&=+$,/?#[]%é☕\n"
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 20)))
        req = PaymentRequest(ADDR, amount=f"{rng.randint(1, 10**6)}.{rng.randint(0, 99)}",
                             label=text, message=text[::-1], invoice="x" * rng.randint(1, 4),
                             exp=rng.randint(0, 2**40), chain="o2o-devnet")
        assert parse_uri(format_uri(req)) == req, f"seed {seed}: {req!r}"


def pay(units, height=None, final=False):
    return Payment("t" * 64, 0, units, height, final)


@pytest.mark.parametrize("payments, now, expected", [
    ([], 10, ("new", 0, None)),
    ([], 100, ("expired", 0, None)),
    ([pay(5)], 10, ("underpaid", 5, "underpaid")),
    ([pay(10)], 10, ("seen", 10, None)),
    ([pay(10, 3)], 10, ("confirmed", 10, None)),
    ([pay(10, 3, True)], 10, ("final", 10, None)),
    ([pay(12, 3, True)], 10, ("final", 12, "overpaid")),
    ([pay(5, 3, True), pay(5)], 10, ("seen", 10, None)),
    ([pay(5, 3, True), pay(5, 4)], 100, ("confirmed", 10, None)),
    ([pay(4, 3, True)], 100, ("underpaid", 4, "underpaid")),
])
def test_invoice_state(payments, now, expected):
    assert invoice_state(10, 100, payments, now) == expected
