"""QR labels read back by real parts: zxing-cpp decodes the PNG label, and
headless Chromium renders the SVG label (its screenshot decodes too)."""

from __future__ import annotations

from o2ocli.web.label import QUIET_ZONE, make_code, write_label
from o2ocli.web.links import item_url

from .browser import browser_page, decode_qr

MERCHANT = "dRAYpdWuZ1i7XU86Aw2Ag7FwqqjuGb2yRw"


def test_png_and_svg_labels_decode_to_the_url(tmp_path):
    url = item_url("http://127.0.0.1:8080", MERCHANT, "TEA-0001")
    write_label(url, "Tea", tmp_path / "l.png", "png")
    assert decode_qr(tmp_path / "l.png") == [url]
    # the SVG, drawn by a real browser, reads back the same
    write_label(url, "Tea", tmp_path / "l.svg", "svg")
    with browser_page(viewport={"width": 600, "height": 700}) as page:
        page.goto((tmp_path / "l.svg").as_uri())
        assert page.locator("text").first.text_content() == "Tea"
        shot = page.screenshot()
    assert decode_qr(shot) == [url]


def test_png_label_prints_the_caption_under_the_code(tmp_path):
    from PIL import Image

    from o2ocli.web.label import PNG_MODULE, label_png

    url = item_url("https://shop.example", MERCHANT, "TEA-0001")
    bare, captioned = label_png(url, ""), label_png(url, "Pu'er tea, spring 2026")
    assert decode_qr(bare) == [url] and decode_qr(captioned) == [url]
    code_px = (len(make_code(url).matrix) + 2 * QUIET_ZONE) * PNG_MODULE
    for raw, inked in ((bare, False), (captioned, True)):
        path = tmp_path / "label.png"
        path.write_bytes(raw)
        with Image.open(path) as image:
            assert image.width >= code_px
            if not inked:
                assert image.height == code_px
                continue
            assert image.height > code_px
            below = image.crop((0, code_px, image.width, image.height)).convert("L")
            assert sum(below.histogram()[:128]) > 50  # the caption's ink
    # Any text draws (no font crash on non-Latin names); it is cut to two lines.
    assert decode_qr(label_png(url, "普洱茶 " * 30)) == [url]
