"""The public pages end to end: a real --dev node serving --http-listen, items
moved through three custodians with the CLI, their QR label decoded from a
PNG by a real decoder and opened in a real headless Chromium; a merchant page
with a real review and reply; hostile texts rendered inert; a broken custody
chain shown as ``trace verify`` says; bad ids answered 400/404 while the
server keeps serving."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from .browser import browser_page, decode_qr
from .framework import free_port, wait_until

WALLETS = ("farm", "shop", "alice")
SCRIPT = "<script>window.__pwned = 1</script>"
IMG = '"><img src=x onerror="window.__pwned=2">'
HEBREW = "מחסן תל אביב"  # right-to-left letters (allowed; direction marks are not)
FITS = "() => document.documentElement.scrollWidth <= window.innerWidth"
"""The page fits the phone-sized viewport: no sideways scrolling."""
PWNED = ("() => window.__pwned === undefined"
         " && document.querySelectorAll('main img, main script').length === 0")


def start_market(node_factory, *extra: str):
    """A --dev node with public pages and funded wallets farm, shop, alice."""
    node = node_factory()
    node.http_port = free_port()
    node.start("--dev", "--dev-period", "0", "--http-listen", f"127.0.0.1:{node.http_port}",
               *extra)
    node.base = f"http://127.0.0.1:{node.http_port}"
    node.addr = {name: node.cli_json("wallet", "create", name, "--no-passphrase")["address"]
                 for name in WALLETS}
    pay = [x for address in node.addr.values() for x in ("--to", address, "--amount", "50")]
    mined(node, node.cli_json("-w", "dev", "wallet", "send", *pay)["txid"])
    return node


def mined(node, txid: str) -> dict[str, Any]:
    """Wait until ``txid`` is in a final block (the dev node seals one more)."""
    return wait_until(lambda: (tx := node.rpc("gettx", txid))["final"] and tx, timeout=60,
                      what=f"tx {txid[:16]} to be final")


def get(url: str) -> tuple[int, dict[str, str], str]:
    """Status, headers and body of a GET (error statuses included)."""
    return send(urllib.request.Request(url))


def send(request: urllib.request.Request) -> tuple[int, dict[str, str], str]:
    """Status, headers and body of a request (error statuses included)."""
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


def step(node, wallet: str, *args: str) -> str:
    txid = node.cli_json("-w", wallet, "trace", "event", "TEA-1", *args)["txid"]
    mined(node, txid)
    return txid


def test_label_opens_the_item_page_with_its_timeline_and_verdict(node_factory, tmp_path):
    node = start_market(node_factory)
    farm, shop, alice = node.addr["farm"], node.addr["shop"], node.addr["alice"]
    product = f"Pu'er {SCRIPT}{IMG}"
    reg = node.cli_json("-w", "farm", "trace", "register", "TEA-1", "--product", product,
                        "--data", f"origin={IMG}", "--svg", str(tmp_path / "reg.svg"))
    mined(node, reg["txid"])
    assert reg["qr"] == f"{node.base}/item/{farm}/TEA-1"
    assert "&lt;script&gt;" in (tmp_path / "reg.svg").read_text()
    steps = [reg["txid"],
             step(node, "farm", "--event", "processed", "--location", HEBREW, "--note", SCRIPT),
             step(node, "farm", "--event", "shipped", "--to", shop, "--note", "x" * 256),
             step(node, "shop", "--merchant", farm, "--event", "received", "--location", IMG),
             step(node, "shop", "--merchant", farm, "--event", "sold", "--to", alice)]

    # The label: the node's public URL (from node.json), read back from the PNG.
    png, svg = tmp_path / "label.png", tmp_path / "label.svg"
    shown = node.cli_json("trace", "show", "TEA-1", "--merchant", farm, "--png", str(png),
                          "--svg", str(svg))
    url = f"{node.base}/item/{farm}/TEA-1"
    assert shown["qr"] == url and shown["labels"] == [str(png), str(svg)]
    assert decode_qr(png) == [url]
    assert "Pu'er &lt;script&gt;" in svg.read_text() and "<script>" not in svg.read_text()
    # Every command taking an item accepts the URL (and the URI) the label holds.
    assert node.cli_json("trace", "show", url) == node.cli_json("trace", "show", reg["asset"])
    verify = node.cli_json("trace", "verify", f"o2o:item:{reg['asset']}")
    assert verify["verified"] is True and verify["steps"] == 5

    with browser_page() as page:
        page.goto(url)
        assert page.locator("#verdict").get_attribute("data-verified") == "true"
        assert "verified over 5 steps" in page.locator("#verdict").inner_text()
        assert page.locator("#product").inner_text() == product
        events = page.locator("#timeline li.step").evaluate_all(
            "els => els.map(e => e.dataset.event)")
        assert events == ["registered", "processed", "shipped", "received", "sold"]
        custodians = page.locator("#timeline .custodian").all_inner_texts()
        assert custodians == [farm, farm, shop, shop, alice]
        assert page.locator("#custodian").inner_text() == alice
        assert page.locator(".note").all_inner_texts()[1:] == [SCRIPT, "x" * 256]
        assert page.locator(".location").all_inner_texts() == [HEBREW, IMG]
        hrefs = page.locator("#timeline a[href^='/tx/']").evaluate_all(
            "els => els.map(e => e.getAttribute('href'))")
        assert hrefs == [f"/tx/{t}" for t in steps]
        assert page.locator("#timeline .badge.final").count() == 5
        assert page.locator("#finality").inner_text().startswith("Every step is final")
        assert "sealed on top by" in page.locator("#timeline").inner_text()
        assert page.evaluate(PWNED)
        assert page.evaluate(FITS)
        # the link of a step opens its transaction
        page.locator("#timeline a[href^='/tx/']").nth(2).click()
        page.wait_for_url(f"**/tx/{steps[2]}")
        assert "final" in page.locator("#status").inner_text()

        # A plain payment of the item breaks the chain; the page says where, as verify does.
        moved = node.cli_json("-w", "alice", "wallet", "send", "--to", shop, "--asset",
                              reg["asset"], "--amount", "1")
        mined(node, moved["txid"])
        out = node.cli("trace", "verify", "TEA-1", "--merchant", farm, json_out=True)
        assert out.returncode == 1
        broken = json.loads(out.stdout)
        page.goto(url)
        assert page.locator("#verdict").get_attribute("data-verified") == "false"
        assert page.locator("#break").inner_text() == broken["break"]
        assert moved["txid"] in broken["break"]
        api = json.loads(get(f"{node.base}/api/item/{farm}/TEA-1")[2])
        assert api["verified"] is False and api["break"] == broken["break"]
        assert api["custodian"] == shop and len(api["timeline"]) == 6
        assert page.evaluate(PWNED)


def test_merchant_page_bad_ids_and_limits(node_factory):
    node = start_market(node_factory, "--http-rate-limit", "5")
    shop, alice = node.addr["shop"], node.addr["alice"]
    purchase = node.cli_json("-w", "alice", "wallet", "send", "--to", shop, "--amount", "3")
    mined(node, purchase["txid"])
    long_text = (SCRIPT + IMG + "é" * 1000)[:1000]
    long_text = long_text.encode()[:1000].decode("utf-8", "ignore")
    # Direction marks are refused before they reach the chain.
    bidi = node.cli("-w", "alice", "review", "write", "--purchase", purchase["txid"],
                    "--rating", "4", "--text", "good \u202etea")
    assert bidi.returncode == 1 and "control character" in bidi.stderr
    review = node.cli_json("-w", "alice", "review", "write", "--purchase",
                           f"{node.base}/tx/{purchase['txid']}", "--rating", "4",
                           "--text", long_text)
    mined(node, review["txid"])
    reply = node.cli_json("-w", "shop", "review", "reply", f"o2o:tx:{review['txid']}",
                          "--text", f"Thanks! {SCRIPT}")
    mined(node, reply["txid"])
    issued = node.cli_json("-w", "shop", "token", "issue", "--symbol", "TEAPT", "--name",
                           f"Tea points {IMG}", "--supply", "1000", "--decimals", "2",
                           "--mintable")
    mined(node, issued["txid"])
    minted = node.cli_json("-w", "shop", "token", "mint", "TEAPT", "--amount", "5")
    mined(node, minted["txid"])
    burned = node.cli_json("-w", "shop", "token", "burn", "TEAPT", "--amount", "2.5")
    burn_height = mined(node, burned["txid"])["height"]

    with browser_page() as page:
        page.goto(f"{node.base}/merchant/{shop}")
        assert page.locator("#review-count").inner_text() == "1"
        assert page.locator("#average").inner_text() == "4.0"
        assert page.locator("meter[data-stars='4']").get_attribute("value") == "1"
        assert page.locator(".review-text").inner_text() == long_text
        assert page.locator(".reply-text").inner_text() == f"Thanks! {SCRIPT}"
        assert page.locator(".rating").inner_text() == "4★"
        assert page.locator("a.verified").get_attribute("href") == f"/tx/{purchase['txid']}"
        assert page.evaluate(PWNED)
        assert page.evaluate(FITS)
        page.locator("#tokens a").click()
        page.wait_for_url("**/token/TEAPT")
        supply = node.cli_json("token", "info", "TEAPT")["supply"]
        assert page.locator("#supply").inner_text() == supply
        assert page.locator("h1 .text").inner_text() == f"Tea points {IMG}"
        rows = page.locator("#history tr:not(:first-child)").evaluate_all(
            "rows => rows.map(r => r.innerText.split('\\t').slice(0, 3))")
        assert [r[:2] for r in rows] == [["token-burn", "2.5"], ["token-mint", "5"],
                                         ["token-issue", ""]], rows
        assert rows[0][2] == str(burn_height)
        burn_row = page.locator("#history tr.token-burn")
        assert burn_row.locator("a[href^='/tx/']").get_attribute("href") == \
            f"/tx/{burned['txid']}"
        assert burn_row.locator(".badge.final").count() == 1
        assert page.evaluate(PWNED)
        page.goto(node.base + "/")
        info = node.rpc("getinfo")
        assert page.locator("#finalized").inner_text() == str(info["finalized_height"])
        assert page.locator("#recent tr").count() == 1 + min(10, info["height"])
        # the search box finds an address
        page.fill("input[name=q]", alice)
        page.press("input[name=q]", "Enter")
        page.wait_for_url(f"**/address/{alice}")
        assert page.evaluate(FITS)
        page.goto(f"{node.base}/tx/{review['txid']}")
        assert page.evaluate(FITS)

    status, _, body = get(f"{node.base}/api/token/TEAPT")
    token = json.loads(body)
    assert status == 200 and token["supply"] == supply and token["burns_truncated"] is False
    assert token["burns"] == [{"txid": burned["txid"], "height": burn_height, "amount": "2.5",
                               "amount_units": 250, "final": True}]
    assert [h["type"] for h in token["history"]] == ["token-burn", "token-mint", "token-issue"]
    assert node.rpc("gettoken", "TEAPT")["burns"] == token["burns"]

    status, headers, body = get(f"{node.base}/api/merchant/{shop}")
    data = json.loads(body)
    assert status == 200 and data["stats"]["count"] == 1
    assert data["reviews"][0]["reply"]["txid"] == reply["txid"]
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff" and "Set-Cookie" not in headers

    # Bad and unknown ids: short 400/404 answers, no traceback, server keeps serving.
    zeros = "0" * 64
    cases = {
        "/item/zz": 400, f"/item/{zeros}": 404, f"/item/{shop}/NOPE": 404,
        f"/item/{shop}/{'x' * 65}": 400, "/item/notanaddress/TEA-1": 400,
        "/tx/123": 400, f"/tx/{zeros}": 404, "/block/99999999": 404, "/block/xyz": 400,
        "/address/nope": 400, "/merchant/%3Cscript%3E": 400, "/token/NOPE": 404,
        "/token/%3Cb%3E": 400, f"/address/{alice}?page=0": 400, "/no/such/page": 404,
        "/search?q=%3Cscript%3E": 400, f"/api/tx/{zeros}": 404, "/api/block/-1": 400,
    }
    for path, expected in cases.items():
        status, headers, body = wait_until(  # past the rate limit (5/s here)
            lambda p=path: (r := get(node.base + p))[0] != 429 and r, timeout=10, what=path)
        assert status == expected, (path, status, body[:200])
        assert "Traceback" not in body and "<script>" not in body, path
        assert headers["X-Content-Type-Options"] == "nosniff"
        if path.startswith("/api/"):
            assert json.loads(body)["error"]["status"] == expected
    # Pages are read-only: a POST is answered 405 (with Allow), no traceback.
    for path in ("/token/TEAPT", f"/api/merchant/{shop}"):
        request = urllib.request.Request(node.base + path, data=b"x=1", method="POST")
        status, headers, body = wait_until(
            lambda r=request: (x := send(r))[0] != 429 and x, timeout=10, what=f"POST {path}")
        assert status == 405, (path, status, body[:200])
        assert "GET" in headers["Allow"] and "Traceback" not in body
        assert headers["X-Content-Type-Options"] == "nosniff"
    # The per-IP rate limit answers 429, then lets the client back in.
    statuses = [get(node.base + "/style.css")[0] for _ in range(60)]
    assert 429 in statuses
    wait_until(lambda: get(node.base + "/")[0] == 200, timeout=10, what="the limit to lift")
    assert "Traceback" not in node.log_path.read_text(errors="replace")

    # Another node cannot take the pages' port: one error line, and it exits.
    other = node_factory("other")
    other.start("--dev", "--http-listen", f"127.0.0.1:{node.http_port}", wait=False)
    assert other.proc.wait(60) == 1
    last = other.log_path.read_text().strip().splitlines()[-1]
    assert last.startswith("error: cannot serve pages on") and "--http-listen" in last
    assert get(node.base + "/")[0] == 200
