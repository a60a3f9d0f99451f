"""Checking RPC params: each helper returns the parsed value or raises an
:class:`RpcError` with a specific code (never a state change)."""

from __future__ import annotations

import re
from typing import Any

from o2ocli.crypto.address import AddressError
from o2ocli.rpc import errors as E
from o2ocli.rpc.errors import RpcError

from .context import NodeContext

__all__ = [
    "hex_arg",
    "int_arg",
    "txid_arg",
    "address_arg",
    "address_list",
    "block_ref",
    "host_port",
]

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


def hex_arg(value: Any, what: str, size: int | None = None) -> bytes:
    """Hex bytes (of ``size`` bytes when given)."""
    if not isinstance(value, str):
        raise RpcError(E.INVALID_PARAMS, f"{what} must be a hex string")
    try:
        data = bytes.fromhex(value)
    except ValueError:
        raise RpcError(E.INVALID_PARAMS, f"{what} is not valid hex") from None
    if size is not None and len(data) != size:
        raise RpcError(E.INVALID_PARAMS, f"{what} must be {size} bytes ({2 * size} hex digits)")
    return data


def int_arg(value: Any, what: str, lo: int = 0, hi: int = 2**32 - 1) -> int:
    """An integer (not a bool) within ``lo..hi``."""
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise RpcError(E.INVALID_PARAMS, f"{what} must be an integer within {lo}..{hi}")
    return value


def txid_arg(value: Any, what: str = "txid") -> bytes:
    """A 32-byte id written as exactly 64 hex digits."""
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise RpcError(E.INVALID_PARAMS, f"{what} must be 64 hex digits")
    return bytes.fromhex(value)


def address_arg(node: NodeContext, value: Any) -> bytes:
    """An address of this chain, as its 20-byte key hash."""
    if not isinstance(value, str):
        raise RpcError(E.INVALID_ADDRESS, "address must be a string")
    try:
        return node.spec.decode_address(value)
    except AddressError as exc:
        raise RpcError(E.INVALID_ADDRESS, f"invalid address: {exc}") from None


def address_list(node: NodeContext, addresses: Any) -> list[bytes]:
    """A list of at most 100000 addresses."""
    if not isinstance(addresses, list) or len(addresses) > 100_000:
        raise RpcError(E.INVALID_PARAMS, "expected a list of at most 100000 addresses")
    return [address_arg(node, a) for a in addresses]


def block_ref(node: NodeContext, ref: Any) -> bytes:
    """A block hash from a main-chain height or a 64-hex hash."""
    if isinstance(ref, int) and not isinstance(ref, bool):
        block_hash = node.chain.state.get_block_hash(ref) if ref >= 0 else None
        if block_hash is None:
            raise RpcError(E.NOT_FOUND, f"no block at height {ref} (tip is {node.chain.height})")
        return block_hash
    return hex_arg(ref, "block hash", 32)


def host_port(value: Any) -> tuple[str, int]:
    """``HOST:PORT`` (IPv6 hosts in brackets)."""
    if not isinstance(value, str):
        raise RpcError(E.INVALID_PARAMS, "address must be a HOST:PORT string")
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise RpcError(E.INVALID_PARAMS, f"expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)
