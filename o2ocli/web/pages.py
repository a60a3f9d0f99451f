"""The data behind each public page: plain functions of the node, built from
the node's RPC method functions (the same data and the same checks as the
CLI sees, e.g. the custody verdict of ``trace verify`` is ``gettrace``'s).

Each function returns the JSON twin of its page, or raises :class:`PageError`
(400 for a malformed id, 404 for an unknown one).  History is paginated and
capped so one request costs a bounded amount of work.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote

from o2ocli.amounts import format_amount
from o2ocli.core.payloads import NO_PAYLOAD, authority_asset_id
from o2ocli.node.methods.addresses import history_for, unspent_for
from o2ocli.node.methods.chain import getblock, getinfo, gettx
from o2ocli.node.methods.context import NodeContext
from o2ocli.node.methods.params import address_arg
from o2ocli.node.methods.reviews import getreviewstats, review_json
from o2ocli.node.methods.tokens import token_arg, token_burns, token_json
from o2ocli.node.methods.trace import gettrace
from o2ocli.node.methods.views import amount_text
from o2ocli.node.render import payload_json
from o2ocli.rpc import errors as E
from o2ocli.rpc.errors import RpcError

from .links import LinkError, parse_item_ref, parse_txid_ref

__all__ = ["PageError", "PAGE_SIZE", "SEAL_WINDOW", "home", "item", "merchant", "token", "tx",
           "block", "address", "search"]

PAGE_SIZE = 20
"""Reviews or history entries per page."""
MAX_PAGE = 10_000
SEAL_WINDOW = 256
"""Blocks above a step scanned for distinct sealers (beyond that: all of them)."""
RECENT_BLOCKS = 10
MAX_AUTHORITY_STEPS = 50
"""Mint-authority moves shown on a token page (the newest)."""
MAX_TIMELINE = 500
"""Steps of an item shown (the newest; ``timeline_total`` says how many)."""
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_DIGITS = re.compile(r"[0-9]{1,10}")

T = TypeVar("T")

Memo = Callable[[tuple[Any, ...], Callable[[], Any]], Any]
"""``memo(key, make)``: ``make()``'s value, reused while the chain's tip and
finalized block stay the same (the server keeps one per tip)."""


def no_memo(key: tuple[Any, ...], make: Callable[[], Any]) -> Any:
    """A :data:`Memo` that keeps nothing."""
    return make()


class PageError(Exception):
    """A request the pages answer with an error status and a short message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _call(func: Callable[..., T], *args: Any) -> T:
    """Run a node method; its RPC errors become 404 (unknown) or 400 (malformed)."""
    try:
        return func(*args)
    except RpcError as exc:
        status = 404 if exc.code == E.NOT_FOUND else 400
        raise PageError(status, exc.message) from None


def _page_number(value: str | None) -> int:
    if value is None or value == "":
        return 1
    if not _DIGITS.fullmatch(value) or not 1 <= int(value) <= MAX_PAGE:
        raise PageError(400, f"page must be a number within 1..{MAX_PAGE}")
    return int(value)


def _paged(items: list[Any], page: int) -> dict[str, Any]:
    pages = max(1, -(-len(items) // PAGE_SIZE))
    return {"page": page, "pages": pages, "total": len(items)}


def home(node: NodeContext) -> dict[str, Any]:
    """Tip, finalized height, validators, who sealed the latest blocks, mempool size."""
    info = getinfo(node)
    recent = []
    chain = node.chain
    for entry in chain.iter_main_chain_down():
        if len(recent) >= RECENT_BLOCKS or entry.height == 0:
            break
        sealer = chain.sealer_of(entry)
        recent.append({"height": entry.height, "hash": entry.hash.hex(),
                       "time": entry.header.time,
                       "validator": node.spec.address(sealer) if sealer else None,
                       "final": entry.height <= chain.finalized_height})
    return {"chain_id": info["chain_id"], "height": info["height"], "tip": info["tip"],
            "tip_time": info["tip_time"], "finalized_height": info["finalized_height"],
            "validators": info["validators"], "mempool_size": info["mempool_size"],
            "native_symbol": info["native_symbol"], "recent_blocks": recent}


def recent_sealers(node: NodeContext) -> list[tuple[int, bytes | None]]:
    """(height, sealer) of the latest :data:`SEAL_WINDOW` main-chain blocks,
    tip first."""
    chain = node.chain
    result = []
    for entry in chain.iter_main_chain_down():
        if len(result) >= SEAL_WINDOW:
            break
        result.append((entry.height, chain.sealer_of(entry)))
    return result


def sealers_above(recent: list[tuple[int, bytes | None]], heights: list[int]) -> dict[int, int]:
    """For each height, how many distinct validators sealed the ``recent``
    blocks (tip first) above it; below the window, all those seen."""
    result: dict[int, int] = {}
    wanted = sorted(set(heights), reverse=True)
    seen: set[bytes] = set()
    for height, sealer in recent:
        while wanted and wanted[0] >= height:
            result[wanted.pop(0)] = len(seen)
        if not wanted:
            break
        if sealer is not None:
            seen.add(sealer)
    for height in wanted:
        result[height] = len(seen)
    return result


def _item_page(node: NodeContext, data: dict[str, Any], memo: Memo) -> dict[str, Any]:
    timeline = data["timeline"]
    recent = memo(("sealers",), lambda: recent_sealers(node))
    sealers = sealers_above(recent, [s["height"] for s in timeline])
    for step in timeline:
        step["sealed_on_top"] = sealers.get(step["height"], 0)
    total = len(timeline)
    final = all(s["final"] for s in timeline)
    return dict(data, timeline=timeline[-MAX_TIMELINE:], timeline_total=total, final=final,
                validators=len(node.chain.tip_snapshot().validators),
                finalized_height=node.chain.finalized_height, tip_height=node.chain.height)


def item(node: NodeContext, merchant_address: str, item_id: str,
         memo: Memo = no_memo) -> dict[str, Any]:
    """An item by its merchant and item id: registration, timeline with
    sealers on top, custodian, and the custody verdict (``verified``/``break``)."""
    if not 1 <= len(item_id) <= 64:
        raise PageError(400, "item id must be 1..64 characters")
    _call(address_arg, node, merchant_address)
    return _item_page(node, _call(gettrace, node, item_id, merchant_address), memo)


def item_by_asset(node: NodeContext, asset: str, memo: Memo = no_memo) -> dict[str, Any]:
    """An item by its 64-hex asset id (the ``o2o:item:`` URI)."""
    if not _HEX64.fullmatch(asset):
        raise PageError(400, "asset id must be 64 hex digits")
    return _item_page(node, _call(gettrace, node, asset.lower()), memo)


def merchant(node: NodeContext, address_text: str, page: str | None = None,
             memo: Memo = no_memo) -> dict[str, Any]:
    """A merchant's review stats, one page of reviews newest first (with the
    purchase and the reply), and the tokens it issued."""
    number = _page_number(page)
    pkh = _call(address_arg, node, address_text)
    stats = memo(("stats", pkh), lambda: _call(getreviewstats, node, address_text))
    txids = memo(("reviews", pkh),
                 lambda: list(reversed(node.chain.state.reviews_by_merchant(pkh))))
    chosen = txids[(number - 1) * PAGE_SIZE: number * PAGE_SIZE]
    reviews = [_call(review_json, node, t) for t in chosen]
    tokens = memo(("tokens", pkh), lambda: [
        token_json(node, r, detail=False) for r in node.chain.state.iter_tokens()
        if r.issuer == pkh])
    return {"merchant": node.spec.address(pkh), "stats": stats, "reviews": reviews,
            **_paged(txids, number), "tokens": sorted(tokens, key=lambda t: t["symbol"])}


def token(node: NodeContext, symbol: str) -> dict[str, Any]:
    """A token: supply, decimals, issuer, authority holder, holders count, the
    history of its mint authority (issue, mints, freeze), its burns, and both
    merged (``history``), newest first."""
    record = _call(token_arg, node, symbol)
    data = token_json(node, record)
    steps = authority_history(node, record.asset, record.decimals, MAX_AUTHORITY_STEPS + 1)
    steps_truncated = len(steps) > MAX_AUTHORITY_STEPS
    steps = steps[:MAX_AUTHORITY_STEPS]
    burns, burns_truncated = token_burns(node, record)
    data["authority_history"] = steps
    data["burns"], data["burns_truncated"] = burns, burns_truncated
    data["history"], data["history_complete"] = merged_history(
        steps, steps_truncated, burns, burns_truncated)
    return data


def merged_history(steps: list[dict[str, Any]], steps_truncated: bool,
                   burns: list[dict[str, Any]],
                   burns_truncated: bool) -> tuple[list[dict[str, Any]], bool]:
    """Authority steps and burns in one list, newest first (``type``,
    ``amount``, ``txid``, ``height``, ``final``), and whether it is the whole
    history.  When either list was capped, only the heights both lists cover
    are kept, so no older step is shown without the burns beside it."""
    seen = {s["txid"] for s in steps}
    rows = [{"type": s["type"], "amount": s.get("amount", ""), "txid": s["txid"],
             "height": s["height"], "final": s["final"]} for s in steps]
    rows += [{"type": "token-burn", "amount": b["amount"], "txid": b["txid"],
              "height": b["height"], "final": b["final"]}
             for b in burns if b["txid"] not in seen]
    rows.sort(key=lambda r: r["height"], reverse=True)  # stable: steps before burns
    floor = max([lst[-1]["height"] for lst, cut in ((steps, steps_truncated),
                                                    (burns, burns_truncated)) if cut and lst],
                default=0)
    complete = not (steps_truncated or burns_truncated)
    return [r for r in rows if r["height"] >= floor], complete


def authority_history(node: NodeContext, asset: bytes, decimals: int,
                      limit: int = MAX_AUTHORITY_STEPS) -> list[dict[str, Any]]:
    """The txs that moved a token's mint authority (issue, each mint, a
    freeze, a hand-over), newest first, at most ``limit``:
    followed back from the authority's unspent output through the inputs
    that spent it (burns need no authority and are not in it)."""
    state = node.chain.state
    authority = authority_asset_id(asset)
    coins = state.asset_coins(authority)
    txid = coins[0][0].txid if coins else None
    steps: list[dict[str, Any]] = []
    while txid is not None and len(steps) < limit:
        found = state.get_tx(txid)
        if found is None:
            break
        tx, _, height = found
        payload = None if tx.payload is NO_PAYLOAD else payload_json(node.spec, tx.payload)
        kind = payload["type"] if payload else "transfer"
        step: dict[str, Any] = {"txid": txid.hex(), "height": height, "type": kind,
                                "final": height <= node.chain.finalized_height}
        if kind in ("token-mint", "token-burn") and payload and payload.get("asset") == asset.hex():
            step["amount"] = format_amount(payload["units"], decimals)
        steps.append(step)
        txid = None
        for txin in tx.inputs:
            prev = state.get_tx(txin.prevout.txid)
            if prev is not None and txin.prevout.index < len(prev[0].outputs) and \
                    prev[0].outputs[txin.prevout.index].asset == authority:
                txid = txin.prevout.txid
    return steps


def tx(node: NodeContext, txid: str) -> dict[str, Any]:
    """A confirmed or mempool transaction."""
    if not _HEX64.fullmatch(txid):
        raise PageError(400, "txid must be 64 hex digits")
    return _call(gettx, node, txid.lower())


def block(node: NodeContext, ref: str) -> dict[str, Any]:
    """A block by height or hash, with its txids."""
    if _DIGITS.fullmatch(ref):
        return _call(getblock, node, int(ref), 1)
    if not _HEX64.fullmatch(ref):
        raise PageError(400, "a block is a height (digits) or a hash (64 hex digits)")
    return _call(getblock, node, ref.lower(), 1)


def address(node: NodeContext, address_text: str, page: str | None = None,
            memo: Memo = no_memo) -> dict[str, Any]:
    """Balances per asset (confirmed) and one page of history, newest first
    (both computed once per tip)."""
    number = _page_number(page)
    pkh = _call(address_arg, node, address_text)
    balances = memo(("balances", pkh), lambda: _balances(node, pkh))
    history = memo(("history", pkh), lambda: list(reversed(history_for(node, [pkh]))))
    return {"address": node.spec.address(pkh), "balances": balances,
            "history": history[(number - 1) * PAGE_SIZE: number * PAGE_SIZE],
            **_paged(history, number)}


def _balances(node: NodeContext, pkh: bytes) -> list[dict[str, Any]]:
    balances: dict[str, dict[str, Any]] = {}
    for coin in unspent_for(node, [pkh], include_mempool=False):
        entry = balances.setdefault(coin["asset_id"], {"asset": coin["asset"],
                                                       "asset_id": coin["asset_id"],
                                                       "units": 0, "outputs": 0})
        entry["units"] += coin["units"]
        entry["outputs"] += 1
    for asset_hex, entry in balances.items():
        entry["amount"] = amount_text(node, bytes.fromhex(asset_hex), entry["units"])[1]
    return sorted(balances.values(), key=lambda b: b["asset"])


def search(node: NodeContext, query: str) -> str:
    """The page path a search names: a height, a tx/block/item id, an
    address, a token symbol, or an item URI/URL."""
    q = query.strip()
    if not q or len(q) > 300:
        raise PageError(400, "type a block height, txid, block hash, address, token symbol "
                             "or item link")
    if _DIGITS.fullmatch(q):
        return f"/block/{q}"
    try:
        if q.lower().startswith(("o2o:", "http://", "https://")):
            if "/tx/" in q or q.lower().startswith("o2o:tx:"):
                return f"/tx/{quote(parse_txid_ref(q), safe='')}"
            ref = parse_item_ref(q)
            if ref.asset:
                return f"/item/{ref.asset}"
            return f"/item/{quote(ref.merchant or '', safe='')}/{quote(ref.item or '', safe='')}"
    except LinkError as exc:
        raise PageError(400, str(exc)) from None
    if _HEX64.fullmatch(q):
        raw = bytes.fromhex(q)
        state = node.chain.state
        if state.get_tx(raw) is not None or node.mempool.get_entry(raw) is not None:
            return f"/tx/{q.lower()}"
        if state.get_block(raw) is not None:
            return f"/block/{q.lower()}"
        if state.item(raw) is not None:
            return f"/item/{q.lower()}"
        raise PageError(404, "no transaction, block or item has this id")
    try:
        address_arg(node, q)
        return f"/address/{q}"
    except RpcError:  # not an address: maybe a token symbol
        pass
    if re.fullmatch(r"[A-Za-z0-9]{1,12}", q):
        record = _call(token_arg, node, q)
        return f"/token/{record.symbol}"
    raise PageError(400, "not a block height, txid, block hash, address, token symbol "
                         "or item link")
