"""QR labels: a code with a proper quiet zone for terminals, SVG and PNG.

The code is made by ``segno``; the terminal form and both labels (the code
with the product name under it, as SVG with text, or as PNG with the name in
a small bitmap font, :mod:`.glyphs`) are composed here from its module
matrix, so no imaging library is needed.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from xml.sax.saxutils import escape

import segno

from .glyphs import GLYPH_HEIGHT, GLYPH_WIDTH, glyph

__all__ = ["QUIET_ZONE", "make_code", "terminal_text", "label_svg", "label_png", "write_label"]

PNG_MODULE = 8
"""Pixels per module in a PNG label."""
PNG_TEXT = 2
"""Pixels per font pixel of a PNG label's caption."""

QUIET_ZONE = 4
"""Light modules around the code, as ISO/IEC 18004 asks."""
CAPTION_CHARS = 40
"""Characters per caption line (two lines at most, then an ellipsis)."""
_ANSI_LINE = "\x1b[38;5;16;48;5;231m{}\x1b[0m"
"""Black on white whatever the terminal's theme."""


def make_code(text: str) -> segno.QRCode:
    """The QR code of ``text`` (error correction M, or better when it fits)."""
    return segno.make(text, error="m", boost_error=True, micro=False)


def _rows(code: segno.QRCode) -> list[list[bool]]:
    size = len(code.matrix)
    light = [False] * (size + 2 * QUIET_ZONE)
    rows = [light[:] for _ in range(QUIET_ZONE)]
    for row in code.matrix:
        rows.append([False] * QUIET_ZONE + [bool(m) for m in row] + [False] * QUIET_ZONE)
    rows += [light[:] for _ in range(QUIET_ZONE)]
    return rows


def terminal_text(text: str, ansi: bool = False) -> str:
    """The code as text, two modules per character row ("█▀▄ "), dark modules
    drawn; with ``ansi``, each line is forced to black on white so the code
    scans on dark terminals too."""
    rows = _rows(make_code(text))
    if len(rows) % 2:
        rows.append([False] * len(rows[0]))
    glyphs = {(True, True): "█", (True, False): "▀", (False, True): "▄", (False, False): " "}
    lines = []
    for top, bottom in zip(rows[::2], rows[1::2], strict=True):
        line = "".join(glyphs[pair] for pair in zip(top, bottom, strict=True))
        lines.append(_ANSI_LINE.format(line) if ansi else line)
    return "\n".join(lines) + "\n"


def caption_lines(caption: str) -> list[str]:
    """The caption cut into at most two lines of :data:`CAPTION_CHARS`."""
    words = " ".join(caption.split())
    lines: list[str] = []
    while words and len(lines) < 2:
        if len(words) <= CAPTION_CHARS:
            lines.append(words)
            words = ""
            break
        cut = words.rfind(" ", 0, CAPTION_CHARS + 1)
        cut = cut if cut > 0 else CAPTION_CHARS
        lines.append(words[:cut])
        words = words[cut:].lstrip()
    if words:
        lines[-1] = lines[-1][: CAPTION_CHARS - 1].rstrip() + "…"
    return lines


def label_svg(text: str, caption: str, scale: int = 8) -> str:
    """An SVG label: the code of ``text`` (quiet zone included) with
    ``caption`` (escaped) in up to two lines under it."""
    rows = _rows(make_code(text))
    width = len(rows[0]) * scale
    lines = caption_lines(caption)
    line_height = 2 * scale + 4
    height = width + len(lines) * line_height + (scale if lines else 0)
    path = []
    for y, row in enumerate(rows):
        x = 0
        while x < len(row):
            if row[x]:
                start = x
                while x < len(row) and row[x]:
                    x += 1
                path.append(f"M{start} {y}h{x - start}v1h{start - x}z")
            else:
                x += 1
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}">',
           f'<rect width="{width}" height="{height}" fill="#fff"/>',
           f'<path transform="scale({scale})" fill="#000" d="{"".join(path)}"/>']
    for i, line in enumerate(lines):
        y = width + (i + 1) * line_height - 4
        out.append(f'<text x="{width // 2}" y="{y}" text-anchor="middle" '
                   f'font-family="sans-serif" font-size="{2 * scale}" fill="#000">'
                   f"{escape(line)}</text>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


def label_png(text: str, caption: str) -> bytes:
    """A PNG label: the code of ``text`` (quiet zone included, 8 pixels a
    module) with ``caption`` in up to two lines of a 5×7 font under it."""
    rows = _rows(make_code(text))
    lines = caption_lines(caption)
    cell = (GLYPH_WIDTH + 1) * PNG_TEXT
    code_width = len(rows[0]) * PNG_MODULE
    width = max([code_width] + [len(line) * cell + 2 * QUIET_ZONE * PNG_TEXT for line in lines])
    line_height = (GLYPH_HEIGHT + 3) * PNG_TEXT
    height = code_width + len(lines) * line_height + (2 * PNG_TEXT if lines else 0)
    pixels = [bytearray(b"\xff" * width) for _ in range(height)]
    left = (width - code_width) // 2
    for y, row in enumerate(rows):
        for x, dark in enumerate(row):
            if dark:
                for py in range(y * PNG_MODULE, (y + 1) * PNG_MODULE):
                    start = left + x * PNG_MODULE
                    pixels[py][start:start + PNG_MODULE] = b"\x00" * PNG_MODULE
    for n, line in enumerate(lines):
        top = code_width + n * line_height
        x0 = (width - len(line) * cell) // 2
        for i, char in enumerate(line):
            for gy, glyph_row in enumerate(glyph(char)):
                for gx, ink in enumerate(glyph_row):
                    if ink:
                        x = x0 + i * cell + gx * PNG_TEXT
                        for py in range(top + gy * PNG_TEXT, top + (gy + 1) * PNG_TEXT):
                            pixels[py][x:x + PNG_TEXT] = b"\x00" * PNG_TEXT
    raw = b"".join(b"\x00" + bytes(row) for row in pixels)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + \
            struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def write_label(text: str, caption: str, path: Path, kind: str) -> None:
    """Write the label of ``text`` with ``caption`` to ``path`` as ``"svg"``
    or ``"png"``."""
    if kind == "svg":
        path.write_text(label_svg(text, caption), encoding="utf-8")
    else:
        path.write_bytes(label_png(text, caption))
