"""RPC methods of the token registry and rewards: tokens, rewardable purchases."""

from __future__ import annotations

from typing import Any

from o2ocli.amounts import format_amount
from o2ocli.consensus.errors import TxInvalid
from o2ocli.consensus.o2o import (
    MAX_SYMBOL_LEN,
    MIN_SYMBOL_LEN,
    TokenRecord,
    check_symbol,
    paid_to,
    purchase_buyers,
    spent_locks,
    tx_signers,
)
from o2ocli.consensus.tokens import rewarded_key
from o2ocli.core.payloads import MAX_REWARD_REFS, authority_asset_id, token_asset_id
from o2ocli.crypto.hashes import hash160
from o2ocli.rpc import errors as E
from o2ocli.rpc.errors import RpcError

from .context import NodeContext
from .params import address_arg, txid_arg
from .table import MethodTable

__all__ = ["TABLE", "MAX_BURNS", "token_arg", "token_json", "token_burns", "gettoken",
           "listtokens", "listrewardable"]

TABLE = MethodTable()

MAX_BURNS = 50
"""Burns ``gettoken`` lists (the newest)."""


def token_arg(node: NodeContext, ref: Any) -> TokenRecord:
    """A token by symbol (any case) or 64-hex asset id."""
    if not isinstance(ref, str) or not ref:
        raise RpcError(E.INVALID_PARAMS, "token must be a symbol or a 64-hex asset id")
    if len(ref) == 64:
        asset = txid_arg(ref, "asset id")
    else:
        symbol = ref.upper() if ref.isascii() else ""  # no Unicode case folding
        try:
            check_symbol(symbol.encode())
        except TxInvalid:
            raise RpcError(
                E.INVALID_PARAMS,
                f"invalid symbol {ref!r}: {MIN_SYMBOL_LEN}-{MAX_SYMBOL_LEN} characters of A-Z "
                "and 0-9",
            ) from None
        asset = token_asset_id(symbol)
    record = node.chain.state.token(asset)
    if record is None:
        raise RpcError(E.NOT_FOUND, f"no token {ref} on this chain")
    return record


def token_json(node: NodeContext, record: TokenRecord, detail: bool = True) -> dict[str, Any]:
    """A token's registry entry; with ``detail``, its holders count and the
    holder of its mint authority."""
    spec = node.spec
    state = node.chain.state
    authority = authority_asset_id(record.asset)
    data: dict[str, Any] = {
        "symbol": record.symbol,
        "name": record.name,
        "asset": record.asset.hex(),
        "decimals": record.decimals,
        "supply": format_amount(record.supply, record.decimals),
        "supply_units": record.supply,
        "mintable": record.mintable,
        "issuer": spec.address(record.issuer) if len(record.issuer) == 20 else None,
        "height": record.height,
        "txid": record.txid.hex(),
        "authority_asset": authority.hex(),
    }
    if detail:
        holders: set[bytes] = set()
        for _, coin in state.asset_coins(record.asset):
            holders.update(coin.output.lock.addresses()[:1])
        data["holders"] = len(holders)
        holder = None
        for _, coin in state.asset_coins(authority):
            addresses = coin.output.lock.addresses()
            holder = spec.address(addresses[0]) if len(addresses) == 1 else "multisig"
        data["authority_holder"] = holder
    return data


def token_burns(node: NodeContext, record: TokenRecord,
                limit: int = MAX_BURNS) -> tuple[list[dict[str, Any]], bool]:
    """The newest ``limit`` main-chain burns of a token, newest first (``txid``,
    ``height``, ``amount``, ``amount_units``, ``final``), and whether older
    burns exist beyond them."""
    chain = node.chain
    found = chain.state.token_burns(record.asset, limit + 1)
    burns = [{"txid": txid.hex(), "height": height,
              "amount": format_amount(amount, record.decimals), "amount_units": amount,
              "final": height <= chain.finalized_height}
             for height, txid, amount in found[:limit]]
    return burns, len(found) > limit


@TABLE.method("gettoken")
def gettoken(node: NodeContext, token: Any) -> dict[str, Any]:
    """A token's registry entry, holders count, authority holder, and its
    newest burns (``burns``, at most :data:`MAX_BURNS`; ``burns_truncated``
    when there are older ones)."""
    record = token_arg(node, token)
    data = token_json(node, record)
    data["burns"], data["burns_truncated"] = token_burns(node, record)
    return data


@TABLE.method("listtokens")
def listtokens(node: NodeContext) -> list[dict[str, Any]]:
    """Every issued token, by symbol."""
    records = sorted(node.chain.state.iter_tokens(), key=lambda r: r.symbol)
    return [token_json(node, r) for r in records]


def _purchases(
    node: NodeContext, pkhs: list[bytes], since: int
) -> dict[bytes, dict[str, Any]]:
    """Purchases paid to ``pkhs`` at or after ``since`` by someone else."""
    spec = node.spec
    st = node.chain.state
    mine = set(pkhs)
    found: dict[bytes, dict[str, Any]] = {}
    candidates = sorted({item for p in pkhs for item in st.address_history(p)
                         if item[0] >= since})
    for height, txid in candidates:
        got = st.get_tx(txid)
        if got is None or got[0].is_coinbase or txid in found:
            continue
        tx = got[0]
        paid = sum(paid_to(tx, p) for p in mine)
        signers = tx_signers(tx)
        if not paid or not signers or signers & mine:
            continue
        # The customer is a buyer (who may review it): the first signer
        # that is one, else (an escrow's payer who did not sign) any.
        buyers = purchase_buyers(tx, spent_locks(tx, st)) - mine
        if not buyers:  # an escrow refund: nobody bought anything
            continue
        witness_keys = (hash160(pair.pubkey) for txin in tx.inputs
                        for pair in txin.witness)
        customer = next((h for h in witness_keys if h in buyers), min(buyers))
        found[txid] = {"txid": txid.hex(), "height": height,
                       "customer": spec.address(customer),
                       "paid": spec.format(paid), "paid_units": paid}
    return found


def _reviews(node: NodeContext, pkhs: list[bytes], since: int) -> dict[bytes, dict[str, Any]]:
    """Reviews of ``pkhs`` at or after ``since``."""
    spec = node.spec
    st = node.chain.state
    found: dict[bytes, dict[str, Any]] = {}
    items = []
    for p in pkhs:
        for txid in st.reviews_by_merchant(p):
            review = st.review(txid)
            if review is not None and review.height >= since:
                items.append((review.height, txid, review))
    for height, txid, review in sorted(items, key=lambda t: (t[0], t[1])):
        found[txid] = {"txid": txid.hex(), "height": height,
                       "customer": spec.address(review.reviewer),
                       "paid": spec.format(review.value), "paid_units": review.value,
                       "rating": review.rating}
    return found


@TABLE.method("listrewardable")
def listrewardable(
    node: NodeContext, token: Any, merchants: Any, kind: Any = "purchases", since: Any = 0
) -> list[dict[str, Any]]:
    """Purchases paid to (or reviews of) the ``merchants`` addresses at or
    after height ``since`` that token ``token`` has not rewarded yet (in the
    chain or by a mempool tx), oldest first, at most 1000.  Payments between
    the merchant's own addresses are not purchases."""
    record = token_arg(node, token)
    if not isinstance(merchants, list) or not 1 <= len(merchants) <= 10_000:
        raise RpcError(E.INVALID_PARAMS, "merchants must be a list of 1..10000 addresses")
    pkhs = [address_arg(node, a) for a in merchants]
    if kind not in ("purchases", "reviews"):
        raise RpcError(E.INVALID_PARAMS, "kind must be 'purchases' or 'reviews'")
    if isinstance(since, bool) or not isinstance(since, int) or since < 0:
        raise RpcError(E.INVALID_PARAMS, "since must be a height (integer >= 0)")
    st = node.chain.state
    pool = node.mempool
    found = _purchases(node, pkhs, since) if kind == "purchases" else _reviews(node, pkhs, since)
    out = []
    for txid, item in found.items():
        if st.rewarded_by(record.asset, txid) is not None:
            continue
        if pool.claimed(rewarded_key(record.asset, txid)) is not None:
            continue
        out.append(item)
        if len(out) >= MAX_REWARD_REFS:
            break
    return out
