"""JSON views of blocks, transactions and coins (what RPC returns); payloads
and locks through their registered renderers (:mod:`.registry`).

Amounts are decimal strings in display units (never floats); hashes are hex
in internal byte order; addresses use the chain's Base58Check version.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from o2ocli.amounts import format_amount
from o2ocli.chainspec import ChainSpec
from o2ocli.consensus.o2o import purchase_buyers
from o2ocli.core.block import VOTE_ADD, VOTE_NONE, Block, BlockHeader
from o2ocli.core.finality import FinalityVote
from o2ocli.core.tx import NATIVE_ASSET, Coin, Tx, TxOut
from o2ocli.crypto.hashes import hash160

from .registry import burned_by, lock_json, payload_json

__all__ = [
    "TokenLookup",
    "asset_json",
    "amount_json",
    "output_json",
    "tx_json",
    "header_json",
    "block_json",
    "vote_json",
    "coin_json",
]


TokenLookup = Callable[[bytes], tuple[str, int] | None]
"""Asset id → (display symbol, decimals) of a known token (or authority), or None."""


def asset_json(spec: ChainSpec, asset: bytes, tokens: TokenLookup | None = None) -> str:
    """The native coin's symbol, a known token's symbol (``SYM!`` for its mint
    authority), or else the hex asset id."""
    if asset == NATIVE_ASSET:
        return spec.native_symbol
    known = tokens(asset) if tokens is not None else None
    return known[0] if known is not None else asset.hex()


def amount_json(
    spec: ChainSpec, asset: bytes, units: int, tokens: TokenLookup | None = None
) -> str:
    """Display amount: the native coin with the chain's decimals, a known token
    with its own, an unknown asset in base units."""
    if asset == NATIVE_ASSET:
        return format_amount(units, spec.native_decimals)
    known = tokens(asset) if tokens is not None else None
    return format_amount(units, known[1]) if known is not None else str(units)


def output_json(
    spec: ChainSpec, index: int, out: TxOut, tokens: TokenLookup | None = None
) -> dict[str, Any]:
    """One output as JSON (with ``address`` for pay-to-address locks)."""
    data: dict[str, Any] = {
        "index": index,
        "asset": asset_json(spec, out.asset, tokens),
        "amount": amount_json(spec, out.asset, out.amount, tokens),
        "asset_id": out.asset.hex(),
        "units": out.amount,
        "lock": lock_json(spec, out.lock),
    }
    if "address" in data["lock"]:  # a single-address lock
        data["address"] = data["lock"]["address"]
    return data


def tx_json(
    spec: ChainSpec,
    tx: Tx,
    spent: list[Coin | None] | None = None,
    tokens: TokenLookup | None = None,
) -> dict[str, Any]:
    """A transaction as JSON; ``spent`` (the coins its inputs spent, when known)
    adds each input's address and amount, the fee and the buyers (the
    addresses that may review a merchant it paid, see
    :func:`~o2ocli.consensus.o2o.purchase_buyers`)."""
    inputs = []
    for i, txin in enumerate(tx.inputs):
        entry: dict[str, Any] = {"txid": txin.prevout.txid.hex(), "index": txin.prevout.index}
        signers = [spec.address(hash160(pair.pubkey)) for pair in txin.witness]
        entry["signers"] = signers
        coin = spent[i] if spent is not None else None
        if coin is not None:
            entry.update(
                {
                    "asset": asset_json(spec, coin.output.asset, tokens),
                    "amount": amount_json(spec, coin.output.asset, coin.output.amount, tokens),
                    "asset_id": coin.output.asset.hex(),
                    "units": coin.output.amount,
                    "lock": lock_json(spec, coin.output.lock),
                }
            )
            if "address" in entry["lock"]:
                entry["address"] = entry["lock"]["address"]
        inputs.append(entry)
    data: dict[str, Any] = {
        "txid": tx.txid.hex(),
        "version": tx.version,
        "size": tx.size,
        "lock_height": tx.lock_height,
        "inputs": inputs,
        "outputs": [output_json(spec, i, out, tokens) for i, out in enumerate(tx.outputs)],
        "payload": payload_json(spec, tx.payload),
        "coinbase": tx.is_coinbase,
    }
    if spent is not None and all(c is not None for c in spent):
        # Who may review a merchant this tx paid (the consensus rule, before the
        # reviewed merchant's own address is taken out).
        locks = [c.output.lock for c in spent if c is not None]
        data["buyers"] = [spec.address(h) for h in sorted(purchase_buyers(tx, locks))]
    if spent is not None and all(c is not None for c in spent) and not tx.is_coinbase:
        paid_in = sum(c.output.amount for c in spent if c and c.output.asset == NATIVE_ASSET)
        paid_out = sum(o.amount for o in tx.outputs if o.asset == NATIVE_ASSET)
        burned = burned_by(spec, tx.payload)
        data["fee"] = format_amount(paid_in - paid_out - burned, spec.native_decimals)
        data["fee_units"] = paid_in - paid_out - burned
        if burned:
            data["burned"] = format_amount(burned, spec.native_decimals)
            data["burned_units"] = burned
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
    data["votes"] = [vote_json(spec, v) for v in block.votes]
    data["evidence"] = [
        {"id": ev.id.hex(), "validator": spec.address(ev.signer),
         "votes": [vote_json(spec, ev.first), vote_json(spec, ev.second)]}
        for ev in block.evidence
    ]
    return data


def vote_json(spec: ChainSpec, vote: FinalityVote) -> dict[str, Any]:
    """A finality vote as JSON."""
    return {
        "signer": spec.address(vote.signer),
        "source_height": vote.source_height,
        "source": vote.source_hash.hex(),
        "target_height": vote.target_height,
        "target": vote.target_hash.hex(),
    }


def coin_json(
    spec: ChainSpec, txid: bytes, index: int, coin: Coin, tokens: TokenLookup | None = None
) -> dict[str, Any]:
    """An unspent output as JSON."""
    data = output_json(spec, index, coin.output, tokens)
    data.update({"txid": txid.hex(), "height": coin.height, "coinbase": coin.coinbase})
    return data
