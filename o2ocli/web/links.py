"""Item references as people meet them: an id, an ``o2o:item:`` URI, or the
URL a QR label opens.  Pure string handling, no I/O.

Forms accepted wherever an item (or a txid) is asked for::

    TEA-2026-001                                   an item id (with --merchant)
    7f3a…(64 hex)                                  an asset id or a txid
    o2o:item:7f3a…                                 the label URI (asset id)
    o2o:tx:7f3a…                                   a transaction URI
    https://shop.example/item/dMerchant…/TEA-1     a public page URL
    https://shop.example/item/7f3a…                (asset id) / .../tx/7f3a…
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

__all__ = ["ItemRef", "LinkError", "item_url", "item_uri", "parse_item_ref", "parse_txid_ref",
           "normalize_public_url"]

ITEM_URI_PREFIX = "o2o:item:"
TX_URI_PREFIX = "o2o:tx:"
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


class LinkError(ValueError):
    """A reference that is neither an id, a URI nor a page URL of the right kind."""


@dataclass(frozen=True)
class ItemRef:
    """An item: by ``asset`` id (64 hex), or by ``item`` id within ``merchant``
    (``merchant`` None: the caller's own namespace)."""

    asset: str | None = None
    item: str | None = None
    merchant: str | None = None


def normalize_public_url(url: str) -> str:
    """``url`` as a base for links: http(s) with a host, no query or
    fragment, no trailing slash."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise LinkError(f"public URL must be http:// or https:// with a host, got {url!r}")
    if parts.query or parts.fragment:
        raise LinkError(f"public URL must not have a query or fragment, got {url!r}")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def item_url(base: str, merchant: str, item_id: str) -> str:
    """The page of ``item_id`` in ``merchant``'s namespace under ``base``."""
    return f"{normalize_public_url(base)}/item/{quote(merchant, safe='')}/{quote(item_id, safe='')}"


def item_uri(asset_hex: str) -> str:
    """The ``o2o:item:`` URI of an item's asset id."""
    return ITEM_URI_PREFIX + asset_hex


def _page_path(text: str) -> list[str] | None:
    """The path segments after the page kind of an http(s) URL, else None."""
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    segments = [unquote(s) for s in parts.path.split("/") if s]
    # the public URL may have a path prefix (reverse proxy): find the page kind
    for i, segment in enumerate(segments):
        if segment in ("item", "tx") and i + 1 < len(segments):
            return segments[i:]
    raise LinkError(f"{text!r} is not a link to an item or transaction page")


def parse_item_ref(text: str, merchant: str | None = None) -> ItemRef:
    """What ``text`` names: an asset id, or an item id (in ``merchant``'s
    namespace, or the one the URL says)."""
    text = text.strip()
    if text.lower().startswith(ITEM_URI_PREFIX):
        asset = text[len(ITEM_URI_PREFIX):]
        if not _HEX64.fullmatch(asset):
            raise LinkError(f"{ITEM_URI_PREFIX} must be followed by 64 hex digits")
        return ItemRef(asset=asset.lower())
    segments = _page_path(text)
    if segments is not None:
        if segments[0] != "item":
            raise LinkError(f"{text!r} is a transaction link, not an item link")
        if len(segments) == 2:
            if not _HEX64.fullmatch(segments[1]):
                raise LinkError("an item link names an asset id (64 hex digits) "
                                "or a merchant and an item id")
            return ItemRef(asset=segments[1].lower())
        if len(segments) != 3:
            raise LinkError(f"{text!r} is not an item link (/item/MERCHANT/ITEM)")
        if merchant is not None and merchant != segments[1]:
            raise LinkError(f"the link names merchant {segments[1]}, not {merchant}")
        return ItemRef(item=segments[2], merchant=segments[1])
    if merchant is None and _HEX64.fullmatch(text):
        return ItemRef(asset=text.lower())
    return ItemRef(item=text, merchant=merchant)


def parse_txid_ref(text: str) -> str:
    """A txid (or txid prefix) from a txid, an ``o2o:tx:`` URI or a /tx/ URL;
    anything else is returned unchanged for the caller's own checks."""
    text = text.strip()
    if text.lower().startswith(TX_URI_PREFIX):
        return text[len(TX_URI_PREFIX):]
    segments = _page_path(text)
    if segments is None:
        return text
    if segments[0] != "tx" or len(segments) != 2:
        raise LinkError(f"{text!r} is not a transaction link (/tx/TXID)")
    return segments[1]
