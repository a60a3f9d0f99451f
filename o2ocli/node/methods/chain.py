"""RPC methods about the chain: summary, blocks, transactions, the UTXO set."""

from __future__ import annotations

import asyncio
from typing import Any

from o2ocli import __version__
from o2ocli.rpc import errors as E
from o2ocli.rpc.errors import RpcError
from o2ocli.storage.utxocommit import verify_utxo_set

from ..render import amount_json, asset_json, block_json, tx_json
from .context import NodeContext
from .params import block_ref, hex_arg, int_arg
from .table import MethodTable
from .views import confirmations, spent_coins, token_lookup

__all__ = ["TABLE", "getinfo", "getblockcount", "getbestblockhash", "getblockhash", "getblock",
           "gettx", "getrawtx", "getutxosetinfo", "verifyutxoset"]

TABLE = MethodTable()


@TABLE.method("getinfo")
def getinfo(node: NodeContext) -> dict[str, Any]:
    """Node and chain summary."""
    spec = node.spec
    chain = node.chain
    tip = chain.tip
    return {
        "version": __version__,
        "chain": spec.name,
        "chain_id": spec.chain_id,
        "native_symbol": spec.native_symbol,
        "decimals": spec.native_decimals,
        "genesis_hash": chain.genesis.hash.hex(),
        "height": tip.height,
        "tip": tip.hash.hex(),
        "tip_time": tip.header.time,
        "finalized_height": chain.finalized_height,
        "finalized_hash": chain.finalized_hash.hex(),
        "justified_height": chain.finality.justified_height(tip),
        "accused_validators": sorted(spec.address(a) for a in chain.finality.accused()),
        "validators": [spec.address(v) for v in chain.tip_snapshot().validators],
        "validator": spec.address(node.validator_address) if node.validator_address else None,
        "mempool_size": len(node.mempool),
        "mempool_bytes": node.mempool.total_bytes,
        "peers": node.peer_count(),
        "syncing": node.syncing(),
        "sync_height": node.p2p.sync.target_height() if node.p2p else tip.height,
        "min_relay_fee": spec.format(spec.min_relay_fee),
        **_sync_report(node),
    }


def _sync_report(node: NodeContext) -> dict[str, Any]:
    """Headers vs blocks, verification progress and ETA, when the node tracks them."""
    report = getattr(node, "sync_report", None)
    return report() if report is not None else {}


@TABLE.method("getblockcount")
def getblockcount(node: NodeContext) -> int:
    """Height of the tip."""
    return node.chain.height


@TABLE.method("getbestblockhash")
def getbestblockhash(node: NodeContext) -> str:
    """Hash of the tip."""
    return node.chain.tip.hash.hex()


@TABLE.method("getblockhash")
def getblockhash(node: NodeContext, height: Any) -> str:
    """Hash of the main-chain block at ``height``."""
    return block_ref(node, int_arg(height, "height")).hex()


@TABLE.method("getblock")
def getblock(node: NodeContext, ref: Any, verbosity: Any = 1) -> Any:
    """A block by height or hash; verbosity 0 = hex, 1 = JSON with txids, 2 = full txs."""
    level = int_arg(verbosity, "verbosity", 0, 2)
    block_hash = block_ref(node, ref)
    state = node.chain.state
    block = state.get_block(block_hash)
    if block is None:
        raise RpcError(E.NOT_FOUND, f"block {block_hash.hex()} not found")
    if level == 0:
        return block.to_bytes().hex()
    data = block_json(node.spec, block, full_txs=level == 2)
    entry = state.get_index(block_hash)
    main = entry is not None and state.is_main_chain(entry)
    data["main_chain"] = main
    data["confirmations"] = confirmations(node, block.height) if main else 0
    data["final"] = main and block.height <= node.chain.finalized_height
    return data


@TABLE.method("gettx")
def gettx(node: NodeContext, txid: Any) -> dict[str, Any]:
    """A confirmed or mempool transaction with its status."""
    raw_id = hex_arg(txid, "txid", 32)
    found = node.chain.state.get_tx(raw_id)
    tokens = token_lookup(node)
    if found is not None:
        tx, block_hash, height = found
        data = tx_json(node.spec, tx, spent_coins(node, tx), tokens)
        data.update(
            {
                "block": block_hash.hex(),
                "height": height,
                "confirmations": confirmations(node, height),
                "final": height <= node.chain.finalized_height,
                "in_mempool": False,
            }
        )
        return data
    entry = node.mempool.get_entry(raw_id)
    if entry is None:
        raise RpcError(E.NOT_FOUND, f"transaction {txid} is not in the chain or mempool")
    data = tx_json(node.spec, entry.tx, spent_coins(node, entry.tx), tokens)
    data.update(
        {"block": None, "height": None, "confirmations": 0, "final": False, "in_mempool": True}
    )
    return data


@TABLE.method("getrawtx")
def getrawtx(node: NodeContext, txid: Any) -> str:
    """The hex encoding of a confirmed or mempool transaction."""
    raw_id = hex_arg(txid, "txid", 32)
    found = node.chain.state.get_tx(raw_id)
    if found is not None:
        return found[0].to_bytes().hex()
    entry = node.mempool.get_entry(raw_id)
    if entry is None:
        raise RpcError(E.NOT_FOUND, f"transaction {txid} is not in the chain or mempool")
    return entry.tx.to_bytes().hex()


@TABLE.method("getutxosetinfo")
def getutxosetinfo(node: NodeContext, ref: Any = None) -> dict[str, Any]:
    """Hash, count and per-asset totals of the UTXO set after the tip (or after
    the main-chain block ``ref``, a height or hash): the commitment stored with
    the block, read in one lookup."""
    spec = node.spec
    tokens = token_lookup(node)
    state = node.chain.state
    block_hash = None if ref is None else block_ref(node, ref)
    if block_hash is not None:
        entry = state.get_index(block_hash)
        if entry is None or not state.is_main_chain(entry):
            raise RpcError(E.NOT_FOUND, f"block {block_hash.hex()} is not on the main chain")
    try:
        stats = state.utxo_stats(block_hash)
    except KeyError as exc:
        raise RpcError(E.MISC_ERROR, f"{exc.args[0]} (run: o2ocli node reindex)") from None
    return {
        "height": stats.height,
        "tip": stats.tip.hex(),
        "utxo_set_hash": stats.hash.hex(),
        "utxo_count": stats.count,
        "totals": {
            asset_json(spec, asset, tokens): amount_json(spec, asset, total, tokens)
            for asset, total in sorted(stats.totals.items())
        },
    }


@TABLE.method("verifyutxoset")
async def verifyutxoset(node: NodeContext) -> dict[str, Any]:
    """Recompute the UTXO set hash from a full scan (in a thread, on a snapshot:
    slow on a large set) and compare it with the tip's stored commitment.
    Returns ``ok``, ``height``, ``tip``, ``utxo_set_hash`` (stored),
    ``scanned_hash``, ``utxo_count`` (stored), ``scanned_count``, ``seconds``
    and ``error`` (null when they agree)."""
    state = node.chain.state
    state.flush()  # the UTXO cache's changes go to disk, so the snapshot is the tip's
    disk = state.cache.db if state.cache is not None else state.db
    result = await asyncio.to_thread(verify_utxo_set, disk)
    stored, scanned = result.stored, result.scanned
    return {
        "ok": result.ok,
        "height": result.height,
        "tip": result.tip.hex(),
        "utxo_set_hash": stored.hash.hex() if stored else None,
        "scanned_hash": scanned.hash.hex() if scanned else None,
        "utxo_count": stored.count if stored else None,
        "scanned_count": scanned.count if scanned else None,
        "seconds": round(result.seconds, 3),
        "error": result.error,
    }
