"""Real parts for web tests: a headless Chromium driven by Playwright, and a QR decoder.

The browser is Debian's ``chromium`` (``.ci/run`` installs it when missing),
started by Playwright through ``executable_path``, so no browser download is
needed.  The flags keep it from reaching out to the network (this machine has
none; without them Chromium keeps retrying Google's hosts).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium_path() -> str:
    """Path of the system Chromium; a clear error if it is not installed."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError("chromium is not installed (apt-get install -y chromium; .ci/run does)")


@contextmanager
def browser_page(**context_options: Any) -> Iterator[Any]:
    """A fresh Playwright page in headless Chromium (phone-sized unless told);
    everything is closed on exit."""
    from playwright.sync_api import sync_playwright

    context_options.setdefault("viewport", {"width": 390, "height": 844})
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=list(CHROMIUM_FLAGS))
        try:
            context = browser.new_context(**context_options)
            page = context.new_page()
            page.set_default_timeout(15_000)
            yield page
        finally:
            browser.close()


def decode_qr(image: Path | bytes) -> list[str]:
    """The texts of the QR codes in a PNG (a file or its bytes), read by
    zxing-cpp, a real decoder."""
    import io

    import zxingcpp
    from PIL import Image

    source = io.BytesIO(image) if isinstance(image, bytes) else image
    with Image.open(source) as picture:
        results = zxingcpp.read_barcodes(picture.convert("L"))
    return [r.text for r in results if r.format == zxingcpp.BarcodeFormat.QRCode]
