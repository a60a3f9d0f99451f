"""RPC methods about addresses: their unspent outputs and their history."""

from __future__ import annotations

from typing import Any

from o2ocli.core.tx import Coin, Outpoint

from ..render import coin_json
from .context import NodeContext
from .params import address_arg, address_list
from .table import MethodTable
from .views import confirmations, spent_coins, token_lookup

__all__ = ["TABLE", "unspent_for", "history_for", "getutxos", "listunspent",
           "getaddresshistory", "getaddresseshistory"]

TABLE = MethodTable()


def unspent_for(
    node: NodeContext, pkhs: list[bytes], include_mempool: bool, include_spent: bool = False
) -> list[dict[str, Any]]:
    """Unspent outputs of ``pkhs`` (see :func:`listunspent`)."""
    spec = node.spec
    state = node.chain.state
    tokens = token_lookup(node)
    wanted = set(pkhs)
    mempool = node.mempool
    result = []
    for pkh in dict.fromkeys(pkhs):
        owner = spec.address(pkh)
        for outpoint, coin in state.address_coins(pkh):
            spender = mempool.spender_of(outpoint) if include_mempool else None
            if spender is not None and not include_spent:
                continue
            item = coin_json(spec, outpoint.txid, outpoint.index, coin, tokens)
            item["confirmations"] = confirmations(node, coin.height)
            item["owner"] = owner
            if spender is not None:
                item["spent_by"] = spender.hex()
            result.append(item)
    if include_mempool:
        for entry in mempool.entries():
            for index, out in enumerate(entry.tx.outputs):
                owners = [a for a in out.lock.addresses() if a in wanted]
                if not owners:
                    continue
                spender = mempool.spender_of(Outpoint(entry.txid, index))
                if spender is not None and not include_spent:
                    continue
                item = coin_json(spec, entry.txid, index, Coin(out, 0, False), tokens)
                item.update({"height": None, "confirmations": 0,
                             "owner": spec.address(owners[0])})
                if spender is not None:
                    item["spent_by"] = spender.hex()
                result.append(item)
    return result


def history_for(node: NodeContext, pkhs: list[bytes]) -> list[dict[str, Any]]:
    """Transactions touching ``pkhs`` (see :func:`getaddresseshistory`)."""
    spec = node.spec
    state = node.chain.state
    seen: dict[bytes, dict[str, Any]] = {}
    for pkh in dict.fromkeys(pkhs):
        for height, txid in state.address_history(pkh):
            entry = seen.setdefault(
                txid,
                {"txid": txid.hex(), "height": height,
                 "confirmations": confirmations(node, height), "addresses": []},
            )
            entry["addresses"].append(spec.address(pkh))
    confirmed = sorted(seen.values(), key=lambda h: (h["height"], h["txid"]))
    wanted = set(pkhs)
    pending = []
    for mem in node.mempool.entries():
        touched: set[bytes] = set()
        for out in mem.tx.outputs:
            touched.update(wanted.intersection(out.lock.addresses()))
        for coin in spent_coins(node, mem.tx):
            if coin is not None:
                touched.update(wanted.intersection(coin.output.lock.addresses()))
        if touched:
            pending.append({"txid": mem.txid.hex(), "height": None, "confirmations": 0,
                            "addresses": sorted(spec.address(p) for p in touched)})
    return confirmed + pending


@TABLE.method("getutxos")
def getutxos(node: NodeContext, address: Any, include_mempool: Any = True) -> list[dict[str, Any]]:
    """Unspent outputs touching ``address``.  With ``include_mempool`` (the
    default), outputs spent by mempool txs are left out and unconfirmed
    outputs are added (height null, 0 confirmations)."""
    return unspent_for(node, [address_arg(node, address)], bool(include_mempool))


@TABLE.method("listunspent")
def listunspent(
    node: NodeContext, addresses: Any, include_mempool: Any = True, include_spent: Any = False
) -> list[dict[str, Any]]:
    """Like ``getutxos`` for many addresses at once (``owner`` names the
    address each output belongs to).  With ``include_spent``, outputs that
    a mempool tx spends are listed too, with ``spent_by`` (its txid)."""
    return unspent_for(node, address_list(node, addresses), bool(include_mempool),
                       bool(include_spent))


@TABLE.method("getaddresshistory")
def getaddresshistory(node: NodeContext, address: Any) -> list[dict[str, Any]]:
    """Transactions touching ``address``: confirmed (oldest first), then mempool."""
    return history_for(node, [address_arg(node, address)])


@TABLE.method("getaddresseshistory")
def getaddresseshistory(node: NodeContext, addresses: Any) -> list[dict[str, Any]]:
    """``getaddresshistory`` for many addresses at once (each tx once)."""
    return history_for(node, address_list(node, addresses))
