"""Chain specs: the JSON files in ``chaindata/`` that define a network.

A spec fixes everything nodes must agree on (chain id, network magic, address
version, genesis, validators, consensus limits, fees).  :func:`load_spec`
reads a spec by name or path and validates every field; a bad field raises
:class:`SpecError` naming it.  :meth:`ChainSpec.genesis_block` builds the
genesis block deterministically from the spec, so every node of a network
computes the same genesis hash.

Format (amounts are decimal strings in display units, never floats)::

    {
      "name": "devnet",
      "chain_id": "o2o-devnet",
      "network_magic": "f0d2a1c3",            # 4 bytes, hex
      "address_version": 90,                   # Base58Check version byte
      "native": {"symbol": "O2O", "decimals": 8},
      "genesis": {"time": 1764115200,
                  "allocations": [{"address": "d...", "amount": "1000000"}]},
      "validators": ["d...", ...],
      "consensus": {"period": 1, "epoch": 30000, "max_future": 15},
      "limits": {"max_block_size": 2000000, "max_tx_size": 100000,
                 "max_block_txs": 10000},
      "fees": {"min_relay_fee": "0.00001", "token_issue_fee": "10",
               "gov_deposit": "1"},            # gov_deposit optional, default 1
      "o2o": {"review_window": 100000, "min_purchase": "0.01"},
      "network": {"p2p_port": 18444, "rpc_port": 18443, "bootstrap": []},
      "dev_keys": {"validator": "WIF", "funds": "WIF"}   # devnet only: public keys!
    }

``consensus.period`` is the least number of seconds between a block and its
parent; ``consensus.max_future`` the allowed clock drift: how many seconds a
block's time may be ahead of the receiving node's clock (a block further ahead
is held and retried when its time comes, never held against its sender; see
"Misbehaviour policy" in docs/protocol.rst).

The WIF version byte of a chain is ``(address_version + 0x80) mod 256``, as in
Bitcoin (0x00 → 0x80, 0x6f → 0xef).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from o2ocli.amounts import format_amount, parse_amount
from o2ocli.consensus.params import MAX_AMOUNT, ConsensusParams
from o2ocli.consensus.poa import MAX_VALIDATORS, PoAParams
from o2ocli.core.block import Block, BlockHeader, tx_merkle_root
from o2ocli.core.locks import PayToAddress
from o2ocli.core.payloads import GenesisAlloc
from o2ocli.core.tx import NATIVE_ASSET, Tx, TxOut
from o2ocli.crypto.address import AddressError, decode_address, decode_wif, encode_address

__all__ = [
    "ChainSpec",
    "SpecError",
    "load_spec",
    "spec_from_dict",
    "builtin_spec_path",
    "BUILTIN_SPECS",
]

BUILTIN_SPECS = ("devnet", "testnet")
MAX_BLOCK_SIZE_LIMIT = 8_000_000
"""Largest block a spec may allow: a block must fit in one P2P frame (8 MiB)."""
CHAINDATA_DIR = Path(__file__).resolve().parent / "chaindata"
_SOURCE_CHAINDATA_DIR = Path(__file__).resolve().parent.parent / "chaindata"


class SpecError(ValueError):
    """A chain spec is missing, unreadable, or has a bad field (named in the message)."""


@functools.lru_cache(maxsize=65536)
def _encode_address_cached(pubkey_hash: bytes, version: int) -> str:
    return encode_address(pubkey_hash, version)


@functools.lru_cache(maxsize=65536)
def _decode_address_cached(text: str, version: int) -> bytes:
    return decode_address(text, version)


@dataclass(frozen=True)
class ChainSpec:
    """A validated chain spec."""

    name: str
    chain_id: str
    network_magic: bytes
    address_version: int
    native_symbol: str
    native_decimals: int
    genesis_time: int
    allocations: tuple[tuple[bytes, int], ...]
    """(pubkey hash, base units) per genesis allocation."""
    validators: tuple[bytes, ...]
    """Initial validator addresses (pubkey hashes), ascending."""
    period: int
    epoch: int
    max_future: int
    max_block_size: int
    max_tx_size: int
    max_block_txs: int
    min_relay_fee: int
    """Base units of native coin per 1000 bytes."""
    token_issue_fee: int
    review_window: int
    min_purchase: int
    p2p_port: int
    rpc_port: int
    bootstrap: tuple[str, ...] = ()
    dev_keys: dict[str, str] = field(default_factory=dict)
    source: str = ""
    """Where the spec was read from."""
    gov_deposit: int = 0
    """Least native coin (base units) a governance proposal burns
    (``fees.gov_deposit``, default 1 coin)."""

    @property
    def wif_version(self) -> int:
        """WIF version byte: address version + 0x80 (mod 256)."""
        return (self.address_version + 0x80) & 0xFF

    @property
    def consensus_params(self) -> ConsensusParams:
        """The limits every block and tx rule gets."""
        return ConsensusParams(
            self.chain_id,
            max_block_size=self.max_block_size,
            max_tx_size=self.max_tx_size,
            max_block_txs=self.max_block_txs,
            token_issue_fee=self.token_issue_fee,
            review_window=self.review_window,
            min_purchase=self.min_purchase,
            gov_deposit=self.gov_deposit,
        )

    @property
    def poa_params(self) -> PoAParams:
        """The PoA numbers."""
        return PoAParams(self.chain_id, self.period, self.epoch, self.max_future)

    def address(self, pubkey_hash: bytes) -> str:
        """Base58Check address of a pubkey hash on this chain."""
        return _encode_address_cached(pubkey_hash, self.address_version)

    def decode_address(self, text: str) -> bytes:
        """Pubkey hash of an address of this chain (AddressError otherwise)."""
        return _decode_address_cached(text, self.address_version)

    def amount(self, text: str | int, what: str = "amount") -> int:
        """Parse a native-coin display amount."""
        return parse_amount(text, self.native_decimals, what)

    def format(self, units: int) -> str:
        """Format native-coin base units for display."""
        return format_amount(units, self.native_decimals)

    def genesis_block(self) -> Block:
        """The genesis block this spec defines (deterministic)."""
        outputs = [
            TxOut(NATIVE_ASSET, amount, PayToAddress(pkh)) for pkh, amount in self.allocations
        ]
        txs = []
        for start in range(0, len(outputs), 1000):
            note = f"{self.chain_id}/genesis/{start // 1000}".encode()
            txs.append(Tx((), tuple(outputs[start : start + 1000]), payload=GenesisAlloc(note)))
        header = BlockHeader(
            0,
            bytes(32),
            tx_merkle_root(txs),
            self.genesis_time,
            0,
            checkpoint=self.validators,
        )
        return Block(header, tuple(txs))


# ---------------------------------------------------------------------------
# Loading and validation
# ---------------------------------------------------------------------------


def builtin_spec_path(name: str) -> Path | None:
    """Path of a spec shipped with o2ocli (installed package or source checkout)."""
    for folder in (CHAINDATA_DIR, _SOURCE_CHAINDATA_DIR):
        path = folder / f"{name}.json"
        if path.is_file():
            return path
    return None


def load_spec(name_or_path: str | Path) -> ChainSpec:
    """Load a spec by built-in name (``devnet``, ``testnet``) or by file path."""
    text = str(name_or_path)
    path = builtin_spec_path(text) if "/" not in text and not text.endswith(".json") else None
    if path is None:
        path = Path(text).expanduser()
        if not path.is_file():
            known = ", ".join(BUILTIN_SPECS)
            raise SpecError(f"chain spec {text!r} not found (built-in specs: {known})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read chain spec {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise SpecError(f"chain spec {path} is not valid JSON: {exc}") from None
    return spec_from_dict(data, source=str(path))


def _get(
    data: dict[str, Any], dotted: str, kind: type | tuple[type, ...], default: Any = ...
) -> Any:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            if default is not ...:
                return default
            raise SpecError(f"chain spec field '{dotted}' is missing")
        node = node[part]
    if isinstance(node, bool) and kind is not bool or not isinstance(node, kind):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise SpecError(f"chain spec field '{dotted}' must be of type {names}")
    return node


def _int(data: dict[str, Any], dotted: str, lo: int, hi: int, default: Any = ...) -> int:
    value = _get(data, dotted, int, default)
    if not lo <= value <= hi:
        raise SpecError(f"chain spec field '{dotted}' must be within {lo}..{hi}, got {value}")
    return value


def _amount(data: dict[str, Any], dotted: str, decimals: int, default: Any = ...) -> int:
    value = _get(data, dotted, str, default)
    try:
        return parse_amount(value, decimals, dotted)
    except ValueError as exc:
        raise SpecError(f"chain spec field '{dotted}': {exc}") from None


def spec_from_dict(data: Any, source: str = "") -> ChainSpec:
    """Validate a parsed spec; :class:`SpecError` names the first bad field."""
    if not isinstance(data, dict):
        raise SpecError("chain spec must be a JSON object")
    name = _get(data, "name", str)
    chain_id = _get(data, "chain_id", str)
    if not chain_id or len(chain_id) > 64 or not chain_id.isascii():
        raise SpecError("chain spec field 'chain_id' must be 1..64 ASCII characters")
    magic_hex = _get(data, "network_magic", str)
    try:
        magic = bytes.fromhex(magic_hex)
    except ValueError:
        magic = b""
    if len(magic) != 4:
        raise SpecError("chain spec field 'network_magic' must be 4 bytes of hex")
    version = _int(data, "address_version", 0, 255)
    symbol = _get(data, "native.symbol", str)
    if not (1 <= len(symbol) <= 12 and symbol.isalnum() and symbol.isascii()):
        raise SpecError("chain spec field 'native.symbol' must be 1..12 letters or digits")
    decimals = _int(data, "native.decimals", 0, 18)

    def addr(value: Any, where: str) -> bytes:
        if not isinstance(value, str):
            raise SpecError(f"chain spec field '{where}' must be an address string")
        try:
            return decode_address(value, version)
        except AddressError as exc:
            raise SpecError(f"chain spec field '{where}': {exc}") from None

    genesis_time = _int(data, "genesis.time", 0, 2**63 - 1)
    raw_allocs = _get(data, "genesis.allocations", list)
    allocations = []
    total = 0
    for i, entry in enumerate(raw_allocs):
        where = f"genesis.allocations[{i}]"
        if not isinstance(entry, dict):
            raise SpecError(f"chain spec field '{where}' must be an object")
        pkh = addr(entry.get("address"), f"{where}.address")
        if "amount" not in entry:
            raise SpecError(f"chain spec field '{where}.amount' is missing")
        try:
            amount = parse_amount(entry["amount"], decimals, f"{where}.amount")
        except ValueError as exc:
            raise SpecError(f"chain spec field '{where}.amount': {exc}") from None
        total += amount
        if total > MAX_AMOUNT:
            raise SpecError("chain spec field 'genesis.allocations' exceeds the maximum supply")
        allocations.append((pkh, amount))
    raw_validators = _get(data, "validators", list)
    if not raw_validators:
        raise SpecError("chain spec field 'validators' must list at least one validator")
    validators = [addr(v, f"validators[{i}]") for i, v in enumerate(raw_validators)]
    if len(set(validators)) != len(validators):
        raise SpecError("chain spec field 'validators' lists a validator twice")
    if len(validators) > MAX_VALIDATORS:
        raise SpecError(f"chain spec field 'validators' lists more than {MAX_VALIDATORS}")
    period = _int(data, "consensus.period", 0, 3600)
    epoch = _int(data, "consensus.epoch", 1, 10**9)
    max_future = _int(data, "consensus.max_future", 0, 3600, 15)
    bootstrap = _get(data, "network.bootstrap", list, [])
    if not all(isinstance(b, str) for b in bootstrap):
        raise SpecError("chain spec field 'network.bootstrap' must list host:port strings")
    dev_keys = _get(data, "dev_keys", dict, {})
    for role, wif in dev_keys.items():
        try:
            decode_wif(wif, version=(version + 0x80) & 0xFF)
        except (AddressError, TypeError) as exc:
            raise SpecError(f"chain spec field 'dev_keys.{role}': {exc}") from None
    max_block_size = _int(data, "limits.max_block_size", 1000, MAX_BLOCK_SIZE_LIMIT)
    max_tx_size = _int(data, "limits.max_tx_size", 200, 4_000_000)
    if max_tx_size > max_block_size - 2_000:
        raise SpecError(
            "chain spec field 'limits.max_tx_size' must leave 2000 bytes of "
            "'limits.max_block_size' for the header and fee claim"
        )
    return ChainSpec(
        name=name,
        chain_id=chain_id,
        network_magic=magic,
        address_version=version,
        native_symbol=symbol,
        native_decimals=decimals,
        genesis_time=genesis_time,
        allocations=tuple(allocations),
        validators=tuple(sorted(validators)),
        period=period,
        epoch=epoch,
        max_future=max_future,
        max_block_size=max_block_size,
        max_tx_size=max_tx_size,
        max_block_txs=_int(data, "limits.max_block_txs", 1, 200_000),
        min_relay_fee=_amount(data, "fees.min_relay_fee", decimals),
        token_issue_fee=_amount(data, "fees.token_issue_fee", decimals),
        review_window=_int(data, "o2o.review_window", 1, 10**9, 100_000),
        min_purchase=_amount(data, "o2o.min_purchase", decimals, "0.01")
        if decimals >= 2
        else _amount(data, "o2o.min_purchase", decimals, "1"),
        p2p_port=_int(data, "network.p2p_port", 1, 65535),
        rpc_port=_int(data, "network.rpc_port", 1, 65535),
        bootstrap=tuple(bootstrap),
        dev_keys=dict(dev_keys),
        source=source,
        gov_deposit=_amount(data, "fees.gov_deposit", decimals, "1"),
    )
