"""Txids as users type them: whole (64 hex digits), or a unique prefix of at
least 8 hex digits, as git accepts an abbreviated commit id.

Prefixes are resolved in one place, the node's ``resolvetxid`` RPC (a range
scan of its tx index, plus the mempool), so every command that takes a txid
accepts the same prefixes for every transaction the node knows, not only the
wallet's own."""

from __future__ import annotations

import re
from typing import Any

import click

from .common import CliError, get_context, rpc_call

__all__ = ["MIN_PREFIX", "resolve_txid", "EscrowRef", "ESCROW_ID"]

MIN_PREFIX = 8
"""Fewest hex digits of a txid prefix."""

_HEX = re.compile(r"[0-9a-fA-F]+")


def resolve_txid(text: str) -> str:
    """The whole txid ``text`` stands for; anything that is not hex is returned
    unchanged (the command's own check names it).  A hex prefix shorter than
    :data:`MIN_PREFIX`, unknown or ambiguous is a one-line error."""
    if not _HEX.fullmatch(text) or len(text) >= 64:
        return text.lower() if _HEX.fullmatch(text) else text
    prefix = text.lower()
    if len(prefix) < MIN_PREFIX:
        raise CliError(f"txid prefix {prefix} is too short: give at least {MIN_PREFIX} hex "
                       "digits (or the whole txid)")
    found = rpc_call(get_context(), "resolvetxid", prefix)
    txids = found["txids"]
    if not txids:
        raise CliError(f"no transaction in the chain or mempool starts with {prefix}")
    if len(txids) > 1 or found.get("more"):
        count = f"more than {len(txids)}" if found.get("more") else str(len(txids))
        raise CliError(f"prefix {prefix} matches {count} transactions: {', '.join(txids)} "
                       "(give more digits)")
    return txids[0]


class EscrowRef(click.ParamType):
    """``TXID:INDEX`` of an escrow, the txid whole or a unique prefix."""

    name = "TXID:INDEX"

    def convert(self, value: Any, param: Any, ctx: Any) -> str:
        txid, sep, index = str(value).strip().partition(":")
        return resolve_txid(txid) + sep + index


ESCROW_ID = EscrowRef()
"""Click type of escrow id arguments."""
