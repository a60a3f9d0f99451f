"""QR labels: a code with a proper quiet zone for terminals, SVG and PNG.

The code is made by ``segno``; the terminal form and the SVG label (the code
with the product name under it) are composed here from its module matrix, so
no imaging library is needed.  The PNG is segno's own (the code and its quiet
zone; the name goes in the SVG label, which prints at any size).
"""

from __future__ import annotations

import io
from pathlib import Path
from xml.sax.saxutils import escape

import segno

__all__ = ["QUIET_ZONE", "make_code", "terminal_text", "label_svg", "write_label"]

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


def write_label(text: str, caption: str, path: Path, kind: str) -> None:
    """Write the label of ``text`` to ``path`` as ``"svg"`` (code and caption)
    or ``"png"`` (the code, 8 pixels a module, with its quiet zone)."""
    if kind == "svg":
        path.write_text(label_svg(text, caption), encoding="utf-8")
        return
    buffer = io.BytesIO()
    make_code(text).save(buffer, kind="png", scale=8, border=QUIET_ZONE)
    path.write_bytes(buffer.getvalue())
