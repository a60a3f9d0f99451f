"""JSON-RPC methods of the O2O features: the token registry, rewards, reviews.

Registered by :func:`o2ocli.node.api.build_methods`.  Every method validates
its parameters (an :class:`RpcError` with a specific code otherwise) and only
reads the chainstate and the mempool.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from o2ocli.amounts import format_amount
from o2ocli.consensus.escrow import (
    PATH_DISPUTE,
    PATH_RECLAIM,
    PATH_REFUND,
    PATH_RELEASE,
)
from o2ocli.consensus.o2o import (
    MAX_SYMBOL_LEN,
    MIN_SYMBOL_LEN,
    ReviewRecord,
    TokenRecord,
    paid_to,
    purchase_buyers,
    spent_locks,
    tx_signers,
)
from o2ocli.core.locks import Escrow
from o2ocli.core.payloads import (
    MAX_REWARD_REFS,
    Review,
    ReviewReply,
    authority_asset_id,
    token_asset_id,
)
from o2ocli.core.tx import Outpoint
from o2ocli.crypto.hashes import hash160
from o2ocli.rpc import errors as E
from o2ocli.rpc.errors import RpcError
from o2ocli.rpc.server import RpcMethods

if TYPE_CHECKING:  # pragma: no cover
    from .runtime import Node

__all__ = ["register_o2o_methods", "register_escrow_methods", "register_trace_consent_methods"]

_SYMBOL_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


def _txid_arg(value: Any, what: str = "txid") -> bytes:
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise RpcError(E.INVALID_PARAMS, f"{what} must be 64 hex digits")
    return bytes.fromhex(value)


def register_o2o_methods(
    methods: RpcMethods,
    node: Node,
    address_arg: Callable[[Any], bytes],
    confirmations: Callable[[int], int],
) -> None:
    """Add the token and review methods to ``methods``."""
    spec = node.spec
    chain = node.chain

    def state() -> Any:
        return chain.state

    def token_arg(ref: Any) -> TokenRecord:
        """A token by symbol (any case) or 64-hex asset id."""
        if not isinstance(ref, str) or not ref:
            raise RpcError(E.INVALID_PARAMS, "token must be a symbol or a 64-hex asset id")
        if len(ref) == 64:
            asset = _txid_arg(ref, "asset id")
        else:
            symbol = ref.upper() if ref.isascii() else ""  # no Unicode case folding
            if not MIN_SYMBOL_LEN <= len(symbol) <= MAX_SYMBOL_LEN or not set(symbol) <= (
                _SYMBOL_CHARS
            ):
                raise RpcError(
                    E.INVALID_PARAMS,
                    f"invalid symbol {ref!r}: {MIN_SYMBOL_LEN}-{MAX_SYMBOL_LEN} characters of A-Z "
                    "and 0-9",
                )
            asset = token_asset_id(symbol)
        record = state().token(asset)
        if record is None:
            raise RpcError(E.NOT_FOUND, f"no token {ref} on this chain")
        return record

    def token_json(record: TokenRecord, detail: bool = True) -> dict[str, Any]:
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
            for _, coin in state().asset_coins(record.asset):
                holders.update(coin.output.lock.addresses()[:1])
            data["holders"] = len(holders)
            holder = None
            for _, coin in state().asset_coins(authority):
                addresses = coin.output.lock.addresses()
                holder = spec.address(addresses[0]) if len(addresses) == 1 else "multisig"
            data["authority_holder"] = holder
        return data

    @methods.method("gettoken")
    def gettoken(token: Any) -> dict[str, Any]:
        """A token's registry entry, holders count and authority holder."""
        return token_json(token_arg(token))

    @methods.method("listtokens")
    def listtokens() -> list[dict[str, Any]]:
        """Every issued token, by symbol."""
        records = sorted(state().iter_tokens(), key=lambda r: r.symbol)
        return [token_json(r) for r in records]

    # ------------------------------------------------------------- reviews
    def review_json(txid: bytes, record: ReviewRecord | None = None) -> dict[str, Any]:
        st = state()
        record = record or st.review(txid)
        found = st.get_tx(txid)
        if record is None or found is None or not isinstance(found[0].payload, Review):
            raise RpcError(E.NOT_FOUND, f"no review {txid.hex()} in the chain")
        payload = found[0].payload
        header = st.get_index(found[1])
        reply = None
        reply_txid = st.reply_of(txid)
        if reply_txid is not None:
            reply_tx = st.get_tx(reply_txid)
            if reply_tx is not None and isinstance(reply_tx[0].payload, ReviewReply):
                reply = {
                    "txid": reply_txid.hex(),
                    "text": reply_tx[0].payload.text.decode("utf-8", "replace"),
                    "height": reply_tx[2],
                }
        return {
            "txid": txid.hex(),
            "merchant": spec.address(record.merchant),
            "reviewer": spec.address(record.reviewer),
            "purchase": record.purchase.hex(),
            "rating": record.rating,
            "text": payload.text.decode("utf-8", "replace"),
            "height": record.height,
            "time": header.header.time if header is not None else None,
            "confirmations": confirmations(record.height),
            "final": record.height <= chain.finalized_height,
            "purchase_value": spec.format(record.value),
            "purchase_value_units": record.value,
            "reply": reply,
        }

    @methods.method("getreview")
    def getreview(txid: Any) -> dict[str, Any]:
        """One review (with its reply, if any)."""
        return review_json(_txid_arg(txid))

    @methods.method("listreviews")
    def listreviews(by: Any, value: Any) -> list[dict[str, Any]]:
        """Reviews ``by`` ``"merchant"`` or ``"reviewer"`` (an address) or
        ``"purchase"`` (a txid), oldest first."""
        if by == "merchant":
            txids = state().reviews_by_merchant(address_arg(value))
        elif by == "reviewer":
            txids = state().reviews_by_reviewer(address_arg(value))
        elif by == "purchase":
            found = state().review_of_purchase(_txid_arg(value, "purchase txid"))
            txids = [] if found is None else [found]
        else:
            raise RpcError(E.INVALID_PARAMS, "by must be 'merchant', 'reviewer' or 'purchase'")
        return [review_json(t) for t in txids]

    @methods.method("getreviewstats")
    def getreviewstats(merchant: Any) -> dict[str, Any]:
        """Count, average rating, 1-5 distribution, distinct reviewers and the
        verified purchase value behind a merchant's reviews."""
        pkh = address_arg(merchant)
        st = state()
        distribution = {str(n): 0 for n in range(1, 6)}
        reviewers: set[bytes] = set()
        total = value = replied = 0
        for txid in st.reviews_by_merchant(pkh):
            record = st.review(txid)
            if record is None:
                continue
            distribution[str(record.rating)] += 1
            reviewers.add(record.reviewer)
            total += record.rating
            value += record.value
            if st.reply_of(txid) is not None:
                replied += 1
        count = sum(distribution.values())
        return {
            "merchant": spec.address(pkh),
            "count": count,
            "average": round(total / count, 2) if count else None,
            "distribution": distribution,
            "reviewers": len(reviewers),
            "replied": replied,
            "verified_value": spec.format(value),
            "verified_value_units": value,
        }

    # ------------------------------------------------------------- rewards
    @methods.method("listrewardable")
    def listrewardable(
        token: Any, merchants: Any, kind: Any = "purchases", since: Any = 0
    ) -> list[dict[str, Any]]:
        """Purchases paid to (or reviews of) the ``merchants`` addresses at or
        after height ``since`` that token ``token`` has not rewarded yet (in the
        chain or by a mempool tx), oldest first, at most 1000.  Payments between
        the merchant's own addresses are not purchases."""
        record = token_arg(token)
        if not isinstance(merchants, list) or not 1 <= len(merchants) <= 10_000:
            raise RpcError(E.INVALID_PARAMS, "merchants must be a list of 1..10000 addresses")
        pkhs = [address_arg(a) for a in merchants]
        if kind not in ("purchases", "reviews"):
            raise RpcError(E.INVALID_PARAMS, "kind must be 'purchases' or 'reviews'")
        if isinstance(since, bool) or not isinstance(since, int) or since < 0:
            raise RpcError(E.INVALID_PARAMS, "since must be a height (integer >= 0)")
        st = state()
        mine = set(pkhs)
        pool = node.mempool
        found: dict[bytes, dict[str, Any]] = {}
        if kind == "purchases":
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
        else:
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
        out = []
        for txid, item in found.items():
            if st.rewarded_by(record.asset, txid) is not None:
                continue
            if pool.claimed(b"W" + record.asset + txid) is not None:
                continue
            out.append(item)
            if len(out) >= MAX_REWARD_REFS:
                break
        return out


_ESCROW_STATES = {PATH_RELEASE: "released", PATH_REFUND: "refunded", PATH_RECLAIM: "refunded",
                  PATH_DISPUTE: "disputed"}
_ESCROW_PATHS = {PATH_RELEASE: "release", PATH_REFUND: "refund", PATH_RECLAIM: "reclaim",
                 PATH_DISPUTE: "dispute"}


def register_escrow_methods(
    methods: RpcMethods,
    node: Node,
    address_arg: Callable[[Any], bytes],
    amount_text: Callable[[bytes, int], tuple[str, str]],
) -> None:
    """Add the escrow query methods to ``methods``."""
    spec = node.spec
    chain = node.chain

    def escrow_json(outpoint: Outpoint) -> dict[str, Any] | None:
        st = chain.state
        found = st.get_tx(outpoint.txid)
        if found is None or outpoint.index >= len(found[0].outputs):
            return None
        out = found[0].outputs[outpoint.index]
        lock = out.lock
        if not isinstance(lock, Escrow):
            return None
        symbol, amount = amount_text(out.asset, out.amount)
        next_height = chain.height + 1
        settled = st.escrow_settlement(outpoint)
        spender = node.mempool.spender_of(outpoint)
        if settled is not None:
            state = _ESCROW_STATES[settled[1]]
            spent = st.get_tx(settled[0])
            settlement = {"txid": settled[0].hex(), "path": _ESCROW_PATHS[settled[1]],
                          "height": spent[2] if spent else None}
        else:
            state = "open" if next_height < lock.timeout else "expired-refundable"
            settlement = None
        return {
            "escrow": f"{outpoint.txid.hex()}:{outpoint.index}",
            "txid": outpoint.txid.hex(),
            "index": outpoint.index,
            "asset": symbol,
            "asset_id": out.asset.hex(),
            "amount": amount,
            "units": out.amount,
            "payer": spec.address(lock.payer),
            "payees": [{"address": spec.address(p), "bps": bps} for p, bps in lock.payees],
            "arbiter": spec.address(lock.arbiter) if lock.arbiter else None,
            "timeout": lock.timeout,
            "height": found[2],
            "state": state,
            "settlement": settlement,
            "pending_spend": spender.hex() if spender is not None and settled is None else None,
        }

    def escrow_arg(ref: Any) -> Outpoint:
        if not isinstance(ref, str) or ":" not in ref:
            raise RpcError(E.INVALID_PARAMS, "escrow must be TXID:INDEX")
        txid_text, _, index_text = ref.partition(":")
        if not (index_text.isascii() and index_text.isdigit()) or int(index_text) > 10_000:
            raise RpcError(E.INVALID_PARAMS, "escrow must be TXID:INDEX")
        return Outpoint(_txid_arg(txid_text), int(index_text))

    @methods.method("getescrow")
    def getescrow(escrow: Any) -> dict[str, Any]:
        """An escrow output (``TXID:INDEX``) with its state: open,
        expired-refundable, released, refunded or disputed."""
        data = escrow_json(escrow_arg(escrow))
        if data is None:
            raise RpcError(E.NOT_FOUND, f"no escrow {escrow} in the chain")
        return data

    @methods.method("listescrows")
    def listescrows(addresses: Any) -> list[dict[str, Any]]:
        """Every escrow in the chain where one of ``addresses`` is a party, oldest first."""
        if not isinstance(addresses, list) or not 1 <= len(addresses) <= 10_000:
            raise RpcError(E.INVALID_PARAMS, "addresses must be a list of 1..10000 addresses")
        pkhs = {address_arg(a) for a in addresses}
        st = chain.state
        seen: set[Outpoint] = set()
        result = []
        for _, txid in sorted({item for p in pkhs for item in st.address_history(p)}):
            found = st.get_tx(txid)
            if found is None:
                continue
            for index, out in enumerate(found[0].outputs):
                lock = out.lock
                if isinstance(lock, Escrow) and pkhs & set(lock.addresses()):
                    outpoint = Outpoint(txid, index)
                    if outpoint not in seen:
                        seen.add(outpoint)
                        data = escrow_json(outpoint)
                        if data is not None:
                            result.append(data)
        return result


def register_trace_consent_methods(
    methods: RpcMethods, node: Node, address_arg: Callable[[Any], bytes]
) -> None:
    """Add the traceability and consent query methods to ``methods``."""
    from o2ocli.consensus.o2o import ConsentRecord
    from o2ocli.core.payloads import TRACE_EVENTS, TraceEvent, TraceRegister, item_asset_id
    from o2ocli.storage import schema as k

    spec = node.spec
    chain = node.chain

    def item_arg(ref: Any, merchant: Any = None) -> bytes:
        if merchant is None:
            return _txid_arg(ref, "item asset id")
        if not isinstance(ref, str) or not 1 <= len(ref) <= 64:
            raise RpcError(E.INVALID_PARAMS, "item id must be a string of 1..64 characters")
        return item_asset_id(address_arg(merchant), ref)

    def holders_of(tx: Any, asset: bytes) -> str | None:
        for out in tx.outputs:
            if out.asset == asset:
                addresses = out.lock.addresses()
                return spec.address(addresses[0]) if len(addresses) == 1 else "contract"
        return None

    @methods.method("gettrace")
    def gettrace(item: Any, merchant: Any = None) -> dict[str, Any]:
        """An item's registration and timeline: every tx that moved it, with
        its trace event (if any), custodian before and after, block time and
        finality; ``verified`` is false with ``break`` set where the chain of
        custody does not hold.  ``item`` is the asset id, or the item id when
        ``merchant`` is given."""
        asset = item_arg(item, merchant)
        st = chain.state
        record = st.item(asset)
        if record is None:
            raise RpcError(E.NOT_FOUND, f"no item {item} is registered")
        timeline = []
        problem = None
        expected: Any = None  # the outpoint holding the item after the previous step
        for height, txid in st.item_moves(asset):
            found = st.get_tx(txid)
            entry = st.get_index(found[1]) if found else None
            if found is None:
                problem = problem or f"tx {txid.hex()} of the item is missing"
                continue
            tx = found[0]
            spent_item = None
            for txin in tx.inputs:
                prev = st.get_tx(txin.prevout.txid)
                if prev and txin.prevout.index < len(prev[0].outputs) and \
                        prev[0].outputs[txin.prevout.index].asset == asset:
                    spent_item = (txin.prevout, prev[0])
            payload = tx.payload
            step: dict[str, Any] = {
                "txid": txid.hex(), "height": height,
                "time": entry.header.time if entry else None,
                "final": height <= chain.finalized_height,
                "custodian": holders_of(tx, asset),
                "from": holders_of(spent_item[1], asset) if spent_item else None,
            }
            if isinstance(payload, TraceRegister):
                step.update({"event": "registered", "location": "", "note": record.product,
                             "document": None})
            elif isinstance(payload, TraceEvent) and payload.asset == asset:
                step.update({"event": TRACE_EVENTS[payload.event],
                             "location": payload.location.decode("utf-8", "replace"),
                             "note": payload.note.decode("utf-8", "replace"),
                             "document": payload.document.hex() if payload.document else None})
            else:
                step.update({"event": "moved", "location": "", "note": "", "document": None})
                problem = problem or (f"custody passed to {step['custodian']} in {txid.hex()} "
                                      "without a trace event")
            if expected is not None and (spent_item is None or spent_item[0] != expected):
                problem = problem or f"tx {txid.hex()} does not spend the item's previous output"
            index = next(i for i, o in enumerate(tx.outputs) if o.asset == asset)
            expected = Outpoint(txid, index)
            timeline.append(step)
        if expected is not None and st.get(expected) is None:
            problem = problem or "the item's last recorded output is no longer unspent"
        reg = st.get_tx(record.txid)
        data_pairs = []
        if reg is not None and isinstance(reg[0].payload, TraceRegister):
            data_pairs = [{"key": key.decode(), "value": value.decode("utf-8", "replace")}
                          for key, value in reg[0].payload.data]
        return {
            "asset": asset.hex(), "item": record.item_id, "product": record.product,
            "merchant": spec.address(record.merchant), "height": record.height,
            "txid": record.txid.hex(), "data": data_pairs,
            "custodian": timeline[-1]["custodian"] if timeline else None,
            "timeline": timeline, "verified": problem is None, "break": problem,
        }

    def consent_json(txid: bytes, record: ConsentRecord) -> dict[str, Any]:
        revoked = chain.state.revoked_by(txid)
        next_height = chain.height + 1
        if revoked is not None:
            status = "revoked"
        elif record.until < next_height:
            status = "expired"
        else:
            status = "active"
        return {"txid": txid.hex(), "user": spec.address(record.user),
                "grantee": spec.address(record.grantee), "scope": record.scope,
                "until": record.until, "height": record.height, "status": status,
                "revoked_by": revoked.hex() if revoked else None}

    @methods.method("listconsents")
    def listconsents(address: Any, role: Any = "user") -> list[dict[str, Any]]:
        """Consent grants where ``address`` is the ``user`` (default) or the
        ``grantee``, oldest first, with status active, expired or revoked."""
        if role not in ("user", "grantee"):
            raise RpcError(E.INVALID_PARAMS, "role must be 'user' or 'grantee'")
        prefix = k.BY_USER if role == "user" else k.BY_GRANTEE
        st = chain.state
        out = []
        for txid in st.consents_by(prefix, address_arg(address)):
            record = st.consent(txid)
            if record is not None:
                out.append(consent_json(txid, record))
        return out

    @methods.method("checkconsent")
    def checkconsent(user: Any, grantee: Any, scope: Any) -> dict[str, Any]:
        """Does ``user`` grant ``grantee`` access to ``scope`` at the next
        block's height?  ``granted`` with the grant's txid as proof."""
        if not isinstance(scope, str) or not scope:
            raise RpcError(E.INVALID_PARAMS, "scope must be a non-empty string")
        user_pkh, grantee_pkh = address_arg(user), address_arg(grantee)
        st = chain.state
        height = chain.height + 1
        latest = None
        for txid in reversed(st.consents_by(k.BY_USER, user_pkh)):
            record = st.consent(txid)
            if record is not None and record.grantee == grantee_pkh and record.scope == scope:
                data = consent_json(txid, record)
                if data["status"] == "active":
                    return {"granted": True, "proof": txid.hex(), "until": record.until,
                            "height": height, "grant": data}
                latest = latest or data
        reason = "no grant" if latest is None else f"the latest grant is {latest['status']}"
        return {"granted": False, "proof": None, "until": None, "height": height,
                "reason": reason, "grant": latest}
