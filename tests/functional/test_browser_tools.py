"""The web test tools work: Chromium renders a local page and runs its
script; zxing-cpp reads back a QR code that segno wrote."""

from __future__ import annotations

import http.server
import threading

import segno

from .browser import browser_page, decode_qr


def test_chromium_renders_a_loopback_page_and_runs_its_script():
    body = (b"<!doctype html><title>t</title><p id=p>static</p>"
            b"<script>document.getElementById('p').textContent = 'scripted'</script>")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with browser_page() as page:
            page.goto(f"http://127.0.0.1:{server.server_address[1]}/")
            assert page.locator("#p").text_content() == "scripted"
    finally:
        server.shutdown()


def test_qr_decoder_reads_back_what_segno_wrote(tmp_path):
    url = "http://127.0.0.1:8080/item/d1abc/TEA-0001?x=1&y=%20"
    path = tmp_path / "label.png"
    segno.make(url, error="m").save(path, scale=4, border=4)
    assert decode_qr(path) == [url]
    assert decode_qr(path.read_bytes()) == [url]
    blank = tmp_path / "blank.png"
    segno.make("x").save(blank, scale=4, dark="white")  # nothing to read
    assert decode_qr(blank) == []
