"""QR labels: a code with a proper quiet zone for terminals, SVG and PNG.

``segno`` makes the code and writes its SVG and PNG; the labels add the
product name under it (SVG text, or text drawn by Pillow on the PNG).  The
terminal form is drawn here from the module matrix, two rows per line.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from xml.sax.saxutils import escape

import segno

__all__ = ["QUIET_ZONE", "make_code", "terminal_text", "label_svg", "label_png", "write_label"]

PNG_MODULE = 8
"""Pixels per module in a PNG label."""
PNG_FONT = 20
"""Caption font size of a PNG label, in pixels."""

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
    """An SVG label: segno's SVG of the code of ``text`` (quiet zone
    included) with ``caption`` (escaped) in up to two lines under it."""
    code = make_code(text)
    inner = code.svg_inline(scale=scale, border=QUIET_ZONE, dark="#000", light="#fff",
                            omitsize=False)
    width = code.symbol_size(scale=scale, border=QUIET_ZONE)[0]
    lines = caption_lines(caption)
    line_height = 2 * scale + 4
    height = width + len(lines) * line_height + (scale if lines else 0)
    inner = re.sub(r"^<svg ", '<svg x="0" y="0" ', inner, count=1)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}">',
           f'<rect width="{width}" height="{height}" fill="#fff"/>', inner]
    for i, line in enumerate(lines):
        y = width + (i + 1) * line_height - 4
        out.append(f'<text x="{width // 2}" y="{y}" text-anchor="middle" '
                   f'font-family="sans-serif" font-size="{2 * scale}" fill="#000">'
                   f"{escape(line)}</text>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


def label_png(text: str, caption: str) -> bytes:
    """A PNG label: segno's PNG of the code of ``text`` (quiet zone included,
    8 pixels a module) with ``caption`` in up to two lines under it, drawn by
    Pillow in its built-in font."""
    from PIL import Image, ImageDraw, ImageFont

    buffer = io.BytesIO()
    make_code(text).save(buffer, kind="png", scale=PNG_MODULE, border=QUIET_ZONE)
    buffer.seek(0)
    with Image.open(buffer) as png:
        code = png.convert("L")
    lines = caption_lines(caption)
    if not lines:
        return _png_bytes(code)
    font = ImageFont.load_default(size=PNG_FONT)
    measure = ImageDraw.Draw(code)
    widths = [measure.textlength(line, font=font) for line in lines]
    line_height = PNG_FONT + PNG_FONT // 2
    width = max(code.width, int(max(widths)) + 2 * QUIET_ZONE * PNG_MODULE)
    label = Image.new("L", (width, code.height + len(lines) * line_height + PNG_FONT // 2), 255)
    label.paste(code, ((width - code.width) // 2, 0))
    draw = ImageDraw.Draw(label)
    for n, (line, line_width) in enumerate(zip(lines, widths, strict=True)):
        draw.text(((width - line_width) / 2, code.height + n * line_height), line, fill=0,
                  font=font)
    return _png_bytes(label)


def _png_bytes(image: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)  # type: ignore[attr-defined]
    return out.getvalue()


def write_label(text: str, caption: str, path: Path, kind: str) -> None:
    """Write the label of ``text`` with ``caption`` to ``path`` as ``"svg"``
    or ``"png"``."""
    if kind == "svg":
        path.write_text(label_svg(text, caption), encoding="utf-8")
    else:
        path.write_bytes(label_png(text, caption))
