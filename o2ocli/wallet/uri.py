"""Payment URIs (BIP21 style): pure formatting and parsing, no I/O.

Grammar (documented in ``docs/payments.rst``)::

    o2o-uri   = "o2o:" address [ "?" param *( "&" param ) ]
    param     = key "=" value
    key       = "amount" / "asset" / "label" / "message" / "invoice" / "exp"
              / "chain" / "req-" *ALPHA / other-key
    value     = *( unreserved / pct-encoded )          ; RFC 3986

``amount`` is a plain decimal in display units (``12.5``; no exponent, no
sign); ``exp`` a unix time; ``chain`` the chain id of the chain spec.  Values
are percent-encoded (RFC 3986: everything but ``A-Z a-z 0-9 - . _ ~``); a
parser refuses a key given twice, a bad escape, and any unknown ``req-`` key
(BIP21: a required parameter it does not understand).  Other unknown keys are
ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, unquote_to_bytes

__all__ = ["SCHEME", "PaymentRequest", "UriError", "format_uri", "parse_uri"]

SCHEME = "o2o"
KNOWN = ("amount", "asset", "label", "message", "invoice", "exp", "chain")
_ADDRESS_RE = re.compile(r"^[1-9A-HJ-NP-Za-km-z]{20,64}$")
_AMOUNT_RE = re.compile(r"^[0-9]{1,20}(\.[0-9]{1,18})?$")
_KEY_RE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
_PCT_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_VALUE_CHARS = re.compile(r"^[A-Za-z0-9\-._~%]*$")
MAX_URI = 2048


class UriError(ValueError):
    """The text is not a valid payment URI; the message says why."""


@dataclass(frozen=True)
class PaymentRequest:
    """What a payment URI asks for (amount as the decimal string it carries)."""

    address: str
    amount: str | None = None
    asset: str | None = None
    label: str | None = None
    message: str | None = None
    invoice: str | None = None
    exp: int | None = None
    chain: str | None = None


def _enc(value: str) -> str:
    return quote(value, safe="-._~")


def format_uri(req: PaymentRequest) -> str:
    """The URI of ``req`` (parameters in a fixed order; empty ones left out)."""
    if not _ADDRESS_RE.fullmatch(req.address):
        raise UriError(f"bad address {req.address!r}")
    if req.amount is not None and not _AMOUNT_RE.fullmatch(req.amount):
        raise UriError(f"bad amount {req.amount!r}")
    params = []
    for key in KNOWN:
        value = getattr(req, key)
        if value is None or value == "":
            continue
        params.append(f"{key}={_enc(str(value))}")
    return f"{SCHEME}:{req.address}" + ("?" + "&".join(params) if params else "")


def _decode(key: str, raw: str) -> str:
    if not _VALUE_CHARS.fullmatch(raw) or _PCT_RE.search(raw):
        raise UriError(f"parameter {key!r} is not percent-encoded (RFC 3986)")
    try:
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise UriError(f"parameter {key!r} is not UTF-8") from None


def parse_uri(text: str) -> PaymentRequest:
    """Parse a payment URI; :class:`UriError` names the first problem."""
    text = text.strip()
    if len(text) > MAX_URI:
        raise UriError(f"payment URI is longer than {MAX_URI} characters")
    scheme, sep, rest = text.partition(":")
    if not sep or scheme.lower() != SCHEME:
        raise UriError(f"not a payment URI: it must start with '{SCHEME}:'")
    address, _, query = rest.partition("?")
    if address.startswith("//"):
        address = address[2:]
    if not _ADDRESS_RE.fullmatch(address):
        raise UriError(f"bad address {address!r} in the payment URI")
    values: dict[str, str] = {}
    for part in query.split("&") if query else []:
        key, eq, raw = part.partition("=")
        if not eq or not _KEY_RE.fullmatch(key):
            raise UriError(f"malformed parameter {part!r} in the payment URI")
        if key in values:
            raise UriError(f"parameter {key!r} appears twice in the payment URI")
        value = _decode(key, raw)
        if key.startswith("req-"):
            raise UriError(f"the payment URI requires {key[4:]!r}, which this wallet "
                           "does not support")
        values[key] = value
    amount = values.get("amount")
    if amount is not None and not _AMOUNT_RE.fullmatch(amount):
        raise UriError(f"malformed amount {amount!r} in the payment URI")
    exp = values.get("exp")
    if exp is not None and not exp.isdigit():
        raise UriError(f"malformed expiry {exp!r} in the payment URI")
    return PaymentRequest(
        address=address,
        amount=amount,
        asset=values.get("asset"),
        label=values.get("label"),
        message=values.get("message"),
        invoice=values.get("invoice"),
        exp=int(exp) if exp is not None else None,
        chain=values.get("chain"),
    )
