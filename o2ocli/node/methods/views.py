"""Chain lookups shared by the RPC methods (read only)."""

from __future__ import annotations

from o2ocli.core.tx import Coin, Tx

from ..render import TokenLookup, amount_json, asset_json
from .context import NodeContext

__all__ = ["confirmations", "token_lookup", "spent_coins", "amount_text"]


def confirmations(node: NodeContext, height: int) -> int:
    """Confirmations of a main-chain block at ``height`` (1 for the tip)."""
    return node.chain.height - height + 1


def token_lookup(node: NodeContext) -> TokenLookup:
    """Asset id → (display symbol, decimals) from the chain's token registry;
    a mint authority shows as ``SYMBOL!`` with 0 decimals."""
    state = node.chain.state

    def lookup(asset: bytes) -> tuple[str, int] | None:
        record = state.token(asset)
        if record is not None:
            return record.symbol, record.decimals
        record = state.token_of_authority(asset)
        return None if record is None else (record.symbol + "!", 0)

    return lookup


def amount_text(node: NodeContext, asset: bytes, units: int) -> tuple[str, str]:
    """(asset symbol or hex id, display amount) of ``units`` of ``asset``."""
    tokens = token_lookup(node)
    return asset_json(node.spec, asset, tokens), amount_json(node.spec, asset, units, tokens)


def spent_coins(node: NodeContext, tx: Tx) -> list[Coin | None]:
    """The coins ``tx``'s inputs spend, from the UTXO set, the tx index or the
    mempool (None where unknown)."""
    chain = node.chain
    state = chain.state
    coins: list[Coin | None] = []
    for txin in tx.inputs:
        prev = txin.prevout
        coin = state.get(prev)  # still unspent in the chain: a mempool tx's input
        if coin is not None:
            coins.append(coin)
            continue
        found = state.get_tx(prev.txid)
        if found is not None and prev.index < len(found[0].outputs):
            coin = Coin(found[0].outputs[prev.index], found[2], found[0].is_coinbase)
        else:
            entry = node.mempool.get_entry(prev.txid)
            if entry is not None and prev.index < len(entry.tx.outputs):
                coin = Coin(entry.tx.outputs[prev.index], chain.height + 1, False)
        coins.append(coin)
    return coins
