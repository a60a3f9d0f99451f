"""JSON views of blocks, transactions and coins (what RPC returns).

Amounts are decimal strings in display units (never floats); hashes are hex
in internal byte order; addresses use the chain's Base58Check version.
"""

from __future__ import annotations

from typing import Any

from o2ocli.chainspec import ChainSpec, format_amount
from o2ocli.core.block import VOTE_ADD, VOTE_NONE, Block, BlockHeader
from o2ocli.core.locks import Lock, Multisig, PayToAddress
from o2ocli.core.payloads import Coinbase, GenesisAlloc, NoPayload, Payload
from o2ocli.core.tx import NATIVE_ASSET, Coin, Tx, TxOut
from o2ocli.crypto.hashes import hash160

__all__ = [
    "asset_json",
    "amount_json",
    "lock_json",
    "output_json",
    "payload_json",
    "tx_json",
    "header_json",
    "block_json",
    "coin_json",
]


def asset_json(spec: ChainSpec, asset: bytes) -> str:
    """The native coin's symbol, or a token's hex id."""
    return spec.native_symbol if asset == NATIVE_ASSET else asset.hex()


def amount_json(spec: ChainSpec, asset: bytes, units: int) -> str:
    """Display amount: native coin with the chain's decimals, tokens in base units."""
    if asset == NATIVE_ASSET:
        return format_amount(units, spec.native_decimals)
    return str(units)


def lock_json(spec: ChainSpec, lock: Lock) -> dict[str, Any]:
    """A lock as JSON."""
    if isinstance(lock, PayToAddress):
        return {"type": "address", "address": spec.address(lock.pubkey_hash)}
    if isinstance(lock, Multisig):
        return {
            "type": "multisig",
            "m": lock.m,
            "addresses": [spec.address(h) for h in lock.pubkey_hashes],
        }
    return {"type": type(lock).__name__}


def output_json(spec: ChainSpec, index: int, out: TxOut) -> dict[str, Any]:
    """One output as JSON (with ``address`` for pay-to-address locks)."""
    data: dict[str, Any] = {
        "index": index,
        "asset": asset_json(spec, out.asset),
        "amount": amount_json(spec, out.asset, out.amount),
        "asset_id": out.asset.hex(),
        "units": out.amount,
        "lock": lock_json(spec, out.lock),
    }
    if isinstance(out.lock, PayToAddress):
        data["address"] = data["lock"]["address"]
    return data


def payload_json(payload: Payload) -> dict[str, Any]:
    """A payload as JSON."""
    if isinstance(payload, NoPayload):
        return {"type": "none"}
    if isinstance(payload, Coinbase):
        return {"type": "coinbase", "height": payload.height}
    if isinstance(payload, GenesisAlloc):
        return {"type": "genesis", "note": payload.note.decode("utf-8", "replace")}
    return {"type": type(payload).__name__}


def tx_json(
    spec: ChainSpec, tx: Tx, spent: list[Coin | None] | None = None
) -> dict[str, Any]:
    """A transaction as JSON; ``spent`` (the coins its inputs spent, when known)
    adds each input's address and amount and the fee."""
    inputs = []
    for i, txin in enumerate(tx.inputs):
        entry: dict[str, Any] = {"txid": txin.prevout.txid.hex(), "index": txin.prevout.index}
        signers = [spec.address(hash160(pair.pubkey)) for pair in txin.witness]
        entry["signers"] = signers
        coin = spent[i] if spent is not None else None
        if coin is not None:
            entry.update(
                {
                    "asset": asset_json(spec, coin.output.asset),
                    "amount": amount_json(spec, coin.output.asset, coin.output.amount),
                    "asset_id": coin.output.asset.hex(),
                    "units": coin.output.amount,
                    "lock": lock_json(spec, coin.output.lock),
                }
            )
            if isinstance(coin.output.lock, PayToAddress):
                entry["address"] = entry["lock"]["address"]
        inputs.append(entry)
    data: dict[str, Any] = {
        "txid": tx.txid.hex(),
        "version": tx.version,
        "size": tx.size,
        "lock_height": tx.lock_height,
        "inputs": inputs,
        "outputs": [output_json(spec, i, out) for i, out in enumerate(tx.outputs)],
        "payload": payload_json(tx.payload),
        "coinbase": tx.is_coinbase,
    }
    if spent is not None and all(c is not None for c in spent) and not tx.is_coinbase:
        paid_in = sum(c.output.amount for c in spent if c and c.output.asset == NATIVE_ASSET)
        paid_out = sum(o.amount for o in tx.outputs if o.asset == NATIVE_ASSET)
        data["fee"] = format_amount(paid_in - paid_out, spec.native_decimals)
        data["fee_units"] = paid_in - paid_out
    return data


def header_json(spec: ChainSpec, header: BlockHeader) -> dict[str, Any]:
    """A header as JSON (``validator`` is the sealer's address; none for genesis)."""
    vote = None
    if header.vote_kind != VOTE_NONE:
        vote = {
            "address": spec.address(header.vote_address),
            "action": "add" if header.vote_kind == VOTE_ADD else "remove",
        }
    return {
        "hash": header.hash.hex(),
        "height": header.height,
        "prev": header.prev_hash.hex(),
        "merkle_root": header.merkle_root.hex(),
        "time": header.time,
        "difficulty": header.difficulty,
        "validator": spec.address(hash160(header.seal_pubkey)) if header.height else None,
        "vote": vote,
        "checkpoint": [spec.address(a) for a in header.checkpoint],
    }


def block_json(spec: ChainSpec, block: Block, *, full_txs: bool = False) -> dict[str, Any]:
    """A block as JSON: header fields plus ``txs`` (txids, or full txs)."""
    data = header_json(spec, block.header)
    data["size"] = block.size
    data["tx_count"] = len(block.txs)
    data["txs"] = [tx_json(spec, t) if full_txs else t.txid.hex() for t in block.txs]
    return data


def coin_json(spec: ChainSpec, txid: bytes, index: int, coin: Coin) -> dict[str, Any]:
    """An unspent output as JSON."""
    data = output_json(spec, index, coin.output)
    data.update({"txid": txid.hex(), "height": coin.height, "coinbase": coin.coinbase})
    return data
