"""Item references (ids, o2o: URIs, page URLs), the rate limiter, and QR
labels read back by a real decoder."""

from __future__ import annotations

import re

import pytest

from o2ocli.web.label import (
    QUIET_ZONE,
    caption_lines,
    label_svg,
    make_code,
    terminal_text,
)
from o2ocli.web.links import (
    ItemRef,
    LinkError,
    item_uri,
    item_url,
    normalize_public_url,
    parse_item_ref,
    parse_txid_ref,
)
from o2ocli.web.server import RateLimiter

ASSET = "7f3a" + "0" * 58 + "ab"
MERCHANT = "dRAYpdWuZ1i7XU86Aw2Ag7FwqqjuGb2yRw"


def test_item_url_round_trips_through_the_parser():
    url = item_url("https://shop.example/o2o/", MERCHANT, "TEA 2026/01?x")
    assert url == f"https://shop.example/o2o/item/{MERCHANT}/TEA%202026%2F01%3Fx"
    assert parse_item_ref(url) == ItemRef(item="TEA 2026/01?x", merchant=MERCHANT)
    assert parse_item_ref(url, MERCHANT) == ItemRef(item="TEA 2026/01?x", merchant=MERCHANT)
    assert parse_item_ref(item_uri(ASSET)) == ItemRef(asset=ASSET)
    assert parse_item_ref(f"http://127.0.0.1:8080/item/{ASSET.upper()}") == ItemRef(asset=ASSET)
    assert parse_item_ref(ASSET.upper()) == ItemRef(asset=ASSET)
    assert parse_item_ref("TEA-1") == ItemRef(item="TEA-1")
    assert parse_item_ref("TEA-1", MERCHANT) == ItemRef(item="TEA-1", merchant=MERCHANT)
    # with --merchant, 64 characters are an item id, as before
    assert parse_item_ref(ASSET, MERCHANT) == ItemRef(item=ASSET, merchant=MERCHANT)


@pytest.mark.parametrize("text, message", [
    ("o2o:item:1234", "64 hex"),
    ("o2o:item:" + "g" * 64, "64 hex"),
    ("https://shop.example/about", "not a link to an item"),
    (f"https://shop.example/tx/{ASSET}", "transaction link"),
    ("https://shop.example/item/zz", "asset id"),
    (f"https://shop.example/item/{MERCHANT}/A/B", "not an item link"),
])
def test_bad_item_references_are_refused(text, message):
    with pytest.raises(LinkError, match=message):
        parse_item_ref(text)


def test_a_link_of_another_merchant_is_refused():
    with pytest.raises(LinkError, match="names merchant"):
        parse_item_ref(f"http://x/item/{MERCHANT}/TEA-1", "dOther")


def test_txid_references():
    assert parse_txid_ref(f"o2o:tx:{ASSET}") == ASSET
    assert parse_txid_ref(f"https://shop.example/p/tx/{ASSET}") == ASSET
    assert parse_txid_ref("  abcd1234 ") == "abcd1234"
    with pytest.raises(LinkError):
        parse_txid_ref(f"https://shop.example/item/{ASSET}")


@pytest.mark.parametrize("url", ["ftp://x", "shop.example", "http://", "http://x/?q=1",
                                 "http://x/#f"])
def test_public_url_must_be_plain_http(url):
    with pytest.raises(LinkError):
        normalize_public_url(url)


def test_rate_limiter_allows_a_burst_then_refills():
    now = [0.0]
    limiter = RateLimiter(2.0, clock=lambda: now[0])
    assert [limiter.allow("a") for _ in range(9)] == [True] * 8 + [False]
    assert limiter.allow("b")  # per client
    now[0] += 0.5  # one token back
    assert limiter.allow("a") and not limiter.allow("a")
    assert all(RateLimiter(0).allow("a") for _ in range(1000))


def test_terminal_code_has_the_quiet_zone_and_forces_colours():
    text = terminal_text("o2o:item:" + ASSET)
    lines = text.splitlines()
    size = len(make_code("o2o:item:" + ASSET).matrix) + 2 * QUIET_ZONE
    assert all(len(line) == size for line in lines)
    assert lines[0].strip() == "" and lines[1].strip() == ""  # 4 light rows = 2 text rows
    assert all(line[:QUIET_ZONE].strip() == "" for line in lines)
    coloured = terminal_text("x", ansi=True).splitlines()
    assert all(line.startswith("\x1b[38;5;16;48;5;231m") and line.endswith("\x1b[0m")
               for line in coloured)


def test_caption_is_cut_into_two_lines():
    assert caption_lines("Pu'er tea,   20 kg") == ["Pu'er tea, 20 kg"]
    lines = caption_lines("word " * 40)
    assert len(lines) == 2 and lines[1].endswith("…")
    assert all(len(line) <= 40 for line in lines)
    assert caption_lines("") == []


def test_svg_label_escapes_the_caption():
    svg = label_svg("o2o:item:" + ASSET, '<script>alert(1)</script> & "tea"')
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "&amp;" in svg
    assert len(re.findall(r"<text ", svg)) == 1


def test_sealers_above_counts_distinct_validators_over_each_step():
    from o2ocli.web.pages import sealers_above

    a, b, c = b"a" * 20, b"b" * 20, b"c" * 20
    recent = [(10, a), (9, b), (8, a), (7, c), (6, a), (5, None)]  # tip first
    assert sealers_above(recent, [10, 9, 7, 6, 2]) == {10: 0, 9: 1, 7: 2, 6: 3, 2: 3}
    assert sealers_above(recent, []) == {}
