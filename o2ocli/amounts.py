"""Amounts: display-unit decimal strings ↔ integer base units.

Pure (no I/O): the chain spec, the node's JSON renderers, the wallet and the
CLI all format and parse amounts with these two functions.  Amounts are never
floats: ``"12.5"`` with 8 decimals is ``1_250_000_000`` base units.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from o2ocli.consensus.params import MAX_AMOUNT

__all__ = ["parse_amount", "format_amount"]


def parse_amount(text: str | int, decimals: int, what: str = "amount") -> int:
    """Parse a display-unit decimal string into base units.

    Refuses floats, exponents, negative or zero values, more decimal places
    than ``decimals``, and values above the maximum amount.
    """
    if isinstance(text, bool) or not isinstance(text, (str, int)):
        raise ValueError(f"{what} must be a decimal string, got {type(text).__name__}")
    s = str(text).strip()
    if not s or any(c not in "0123456789." for c in s) or s.count(".") > 1:
        raise ValueError(f"{what} {text!r} is not a plain decimal number")
    if s.startswith(".") or s.endswith("."):
        raise ValueError(f"{what} {text!r} is not a plain decimal number")
    try:
        value = Decimal(s)
    except InvalidOperation:
        raise ValueError(f"{what} {text!r} is not a decimal number") from None
    places = len(s.split(".")[1]) if "." in s else 0
    if places > decimals:
        raise ValueError(f"{what} {text!r} has more than {decimals} decimal places")
    units = int(value.scaleb(decimals))
    if units <= 0:
        raise ValueError(f"{what} must be greater than zero")
    if units > MAX_AMOUNT:
        raise ValueError(f"{what} {text!r} exceeds the maximum amount")
    return units


def format_amount(units: int, decimals: int) -> str:
    """Base units → display string without trailing zeros (``"12.5"``, ``"3"``)."""
    sign = "-" if units < 0 else ""
    units = abs(units)
    whole, frac = divmod(units, 10**decimals) if decimals else (units, 0)
    if not decimals or frac == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{str(frac).rjust(decimals, '0').rstrip('0')}"


