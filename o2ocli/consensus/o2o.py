"""Consensus rules of the O2O payloads: loyalty tokens, rewards, reviews.

The rules read the chain through an :class:`O2OState` passed in (the
chainstate implements it; :class:`O2OBlockView` layers a block's own changes
on top while the block is being checked), so they stay pure: no I/O, no clock.

Context-free rules (:func:`check_o2o_payload`) look at the payload alone.
Contextual rules (:func:`check_o2o_inputs`) look at the spent coins, the
chain state and the height of the block, and return an :class:`O2OEffect`:
which per-asset supply changes the payload allows, how much native coin it
burns, extra signatures to verify, and the state changes to record.

Tokens
    * A token is issued in two steps.  A :class:`~o2ocli.core.payloads.TokenCommit`
      publishes a salted hash of the symbol and of the lock of its output 0; a
      later block carries the
      :class:`~o2ocli.core.payloads.TokenIssue` that reveals it, spending output 0
      of the commit.  Someone who sees the reveal in the mempool cannot claim the
      symbol first: they would need their own commitment mined in an earlier block.
    * Symbols are first come, first served: the asset id is a hash of the
      symbol, and an asset id can be issued once.
    * The issue burns the chain's ``token_issue_fee`` of native coin.
    * A mintable token has exactly one authority output (asset
      :func:`~o2ocli.core.payloads.authority_asset_id`, amount 1).  Minting
      spends and recreates it; it moves like any output (handing over control);
      a :class:`~o2ocli.core.payloads.TokenFreeze` destroys it, fixing the supply.
    * A burn destroys tokens from the tx's own inputs.
    * A reward lists the purchases (or reviews) it rewards; each can be
      rewarded once per token, and only by the merchant they paid (or
      reviewed): the payload carries the merchant keys, each signs it together
      with the tx's inputs (so it cannot be copied into another tx), each listed
      purchase paid (review is about) the address of one of them and was not
      paid by one of them, and some of the token goes to an address that is not
      a merchant key's.

Reviews
    * A review names a purchase in the main chain, at most ``review_window``
      blocks old, that paid the merchant address at least ``min_purchase``.
    * Its key must be a buyer's (:func:`check_review_buyer`): own money that
      paid the purchase (for an escrow spend, the escrow's payer; an escrow
      refund has no buyer), must not be the merchant's, and must sign the review.
    * One review per purchase; one reply per review, signed by the merchant.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from o2ocli.core.encoding import Reader, Writer
from o2ocli.core.locks import Escrow, Lock, PayToAddress, lock_bytes
from o2ocli.core.payloads import (
    REWARD_PURCHASES,
    REWARD_REVIEWS,
    TRACE_EVENTS,
    ConsentGrant,
    ConsentRevoke,
    Review,
    ReviewReply,
    TokenBurn,
    TokenCommit,
    TokenFreeze,
    TokenIssue,
    TokenMint,
    TokenReward,
    TraceEvent,
    TraceRegister,
    authority_asset_id,
    consent_sig_digest,
    item_sig_digest,
    reply_sig_digest,
    review_sig_digest,
    revoke_sig_digest,
    reward_sig_digest,
    token_commitment,
)
from o2ocli.core.tx import NATIVE_ASSET, Coin, Outpoint, SigPair, Tx
from o2ocli.crypto.hashes import hash160

from .errors import TxInvalid
from .locks import SigCheck
from .params import MAX_AMOUNT, ConsensusParams

__all__ = [
    "O2O_PAYLOADS",
    "STATE_DEPENDENT_REASONS",
    "MIN_SYMBOL_LEN",
    "MAX_SYMBOL_LEN",
    "MAX_TOKEN_NAME",
    "MAX_DECIMALS",
    "MAX_REVIEW_TEXT",
    "TokenRecord",
    "ReviewRecord",
    "ItemRecord",
    "ConsentRecord",
    "check_name",
    "O2OState",
    "EMPTY_STATE",
    "O2OEffect",
    "NO_EFFECT",
    "O2OBlockView",
    "check_symbol",
    "check_text",
    "check_o2o_payload",
    "check_o2o_inputs",
    "o2o_claims",
    "tx_signers",
    "paid_to",
    "spent_locks",
    "refunds_escrow",
    "purchase_buyers",
    "check_review_buyer",
]

O2O_PAYLOADS = (TokenCommit, TokenIssue, TokenMint, TokenBurn, TokenFreeze, TokenReward,
                Review, ReviewReply, TraceRegister, TraceEvent, ConsentGrant, ConsentRevoke)
"""Payload types ruled by this module."""

MIN_SYMBOL_LEN = 3
MAX_SYMBOL_LEN = 12
MAX_TOKEN_NAME = 64
"""Most bytes of a token's display name (UTF-8)."""
MAX_DECIMALS = 8
MAX_REVIEW_TEXT = 1000
"""Most bytes of a review or reply text (UTF-8)."""
MAX_ITEM_ID = 64
"""Most characters of an item id (``A-Z a-z 0-9 . _ : / -``)."""
MAX_SCOPE = 32
"""Most characters of a consent scope or a trace data key (``a-z 0-9 . _ -``)."""
MAX_TRACE_TEXT = 256
"""Most bytes of a product, location, note or data value (UTF-8)."""
_ITEM_ID_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:/-")
_SCOPE_CHARS = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789._-")
_SYMBOL_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")

STATE_DEPENDENT_REASONS = frozenset({
    "bad-token-no-commit",
    "bad-token-reveal-early",
    "bad-token-commitment",
    "bad-token-symbol-taken",
    "bad-token-unknown",
    "bad-token-fixed-supply",
    "bad-token-no-authority",
    "bad-token-supply-overflow",
    "bad-token-reward-duplicate",
    "bad-token-reward-unknown",
    "bad-review-no-purchase",
    "bad-review-window",
    "bad-review-duplicate",
    "bad-reply-no-review",
    "bad-reply-duplicate",
    "bad-escrow-release-short",
    "bad-escrow-multiple",
    "bad-trace-duplicate",
    "bad-trace-unknown-item",
    "bad-consent-expired",
    "bad-consent-unknown",
    "bad-consent-revoked",
})
"""Reasons that depend on the chain a node has seen (the purchase may be in a
block it has not received yet, a claim may be taken on another branch): an
honest peer can relay such a tx, so a refusal for these is not misbehaviour.
Reasons that only look at txs both sides have (a purchase that was found, the
inputs) are misbehaviour, like any other broken rule."""


# --------------------------------------------------------------------------
# Records kept by the chainstate
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """The registry entry of one issued token."""

    asset: bytes
    """Asset id."""
    symbol: str
    """Upper-case symbol."""
    name: str
    """Display name."""
    decimals: int
    """Display decimals."""
    issuer: bytes
    """Pubkey hash that issued it (owner of the commit output)."""
    supply: int
    """Base units in existence: issued + minted - burned."""
    mintable: bool
    """True while the authority output exists (more can be minted)."""
    height: int
    """Height of the issuing block."""
    txid: bytes
    """Txid of the issuing (reveal) transaction."""

    def to_bytes(self) -> bytes:
        """Stored encoding."""
        w = Writer()
        w.raw(self.asset)
        w.var_bytes(self.symbol.encode())
        w.var_bytes(self.name.encode())
        w.u8(self.decimals)
        w.var_bytes(self.issuer)
        w.u64(self.supply)
        w.u8(1 if self.mintable else 0)
        w.u32(self.height)
        w.raw(self.txid)
        return w.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> TokenRecord:
        """Inverse of :meth:`to_bytes`."""
        r = Reader(data)
        record = cls(
            r.raw(32, "asset"),
            r.var_bytes("symbol", 64).decode(),
            r.var_bytes("name", 256).decode(),
            r.u8("decimals"),
            r.var_bytes("issuer", 20),
            r.u64("supply"),
            r.u8("mintable") == 1,
            r.u32("height"),
            r.raw(32, "txid"),
        )
        r.finish("token record")
        return record


@dataclass(frozen=True, slots=True)
class ReviewRecord:
    """What the chainstate keeps about an accepted review."""

    merchant: bytes
    """Pubkey hash of the reviewed merchant address."""
    reviewer: bytes
    """Pubkey hash of the reviewer's key."""
    purchase: bytes
    """Txid of the purchase behind the review."""
    rating: int
    """1..5."""
    value: int
    """Native coin the purchase paid the merchant address (base units)."""
    height: int
    """Height of the block holding the review."""

    def to_bytes(self) -> bytes:
        """Stored encoding."""
        w = Writer()
        w.raw(self.merchant)
        w.raw(self.reviewer)
        w.raw(self.purchase)
        w.u8(self.rating)
        w.u64(self.value)
        w.u32(self.height)
        return w.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> ReviewRecord:
        """Inverse of :meth:`to_bytes`."""
        r = Reader(data)
        record = cls(
            r.raw(20, "merchant"),
            r.raw(20, "reviewer"),
            r.raw(32, "purchase"),
            r.u8("rating"),
            r.u64("value"),
            r.u32("height"),
        )
        r.finish("review record")
        return record


@dataclass(frozen=True, slots=True)
class ItemRecord:
    """A registered item or batch (traceability)."""

    merchant: bytes
    """Pubkey hash of the registering merchant."""
    item_id: str
    """The merchant's item id."""
    product: str
    """Product description."""
    height: int
    """Height of the registration."""
    txid: bytes
    """Txid of the registration."""

    def to_bytes(self) -> bytes:
        """Stored encoding."""
        w = Writer()
        w.raw(self.merchant)
        w.var_bytes(self.item_id.encode())
        w.var_bytes(self.product.encode())
        w.u32(self.height)
        w.raw(self.txid)
        return w.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> ItemRecord:
        """Inverse of :meth:`to_bytes`."""
        r = Reader(data)
        record = cls(r.raw(20, "merchant"), r.var_bytes("item id", 256).decode(),
                     r.var_bytes("product", 4096).decode(), r.u32("height"), r.raw(32, "txid"))
        r.finish("item record")
        return record


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    """A consent grant."""

    user: bytes
    """Pubkey hash of the user who granted."""
    grantee: bytes
    """Pubkey hash of the merchant granted access."""
    scope: str
    """Data scope."""
    until: int
    """Last height the grant holds."""
    height: int
    """Height of the grant."""

    def to_bytes(self) -> bytes:
        """Stored encoding."""
        w = Writer()
        w.raw(self.user)
        w.raw(self.grantee)
        w.var_bytes(self.scope.encode())
        w.u32(self.until)
        w.u32(self.height)
        return w.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> ConsentRecord:
        """Inverse of :meth:`to_bytes`."""
        r = Reader(data)
        record = cls(r.raw(20, "user"), r.raw(20, "grantee"), r.var_bytes("scope", 256).decode(),
                     r.u32("until"), r.u32("height"))
        r.finish("consent record")
        return record


class O2OState(Protocol):
    """What the O2O rules read from the chain (as of the parent block)."""

    def token(self, asset: bytes) -> TokenRecord | None:
        """The registry entry of token ``asset``, or None."""
        ...

    def main_tx(self, txid: bytes) -> tuple[Tx, int] | None:
        """A main-chain transaction and its height, or None."""
        ...

    def rewarded_by(self, asset: bytes, ref: bytes) -> bytes | None:
        """Txid of the reward that paid ``asset`` for ``ref``, or None."""
        ...

    def review_of_purchase(self, purchase: bytes) -> bytes | None:
        """Txid of the review of ``purchase``, or None."""
        ...

    def review(self, txid: bytes) -> ReviewRecord | None:
        """The record of review ``txid``, or None."""
        ...

    def reply_of(self, review: bytes) -> bytes | None:
        """Txid of the reply to ``review``, or None."""
        ...

    def item(self, asset: bytes) -> ItemRecord | None:
        """The registration of item ``asset``, or None."""
        ...

    def consent(self, txid: bytes) -> ConsentRecord | None:
        """The consent grant ``txid``, or None."""
        ...

    def revoked_by(self, grant: bytes) -> bytes | None:
        """Txid of the revocation of ``grant``, or None."""
        ...


class _EmptyState:
    """A chain with no tokens, reviews or transactions (for rules run without one)."""

    def token(self, asset: bytes) -> TokenRecord | None:
        return None

    def main_tx(self, txid: bytes) -> tuple[Tx, int] | None:
        return None

    def rewarded_by(self, asset: bytes, ref: bytes) -> bytes | None:
        return None

    def review_of_purchase(self, purchase: bytes) -> bytes | None:
        return None

    def review(self, txid: bytes) -> ReviewRecord | None:
        return None

    def reply_of(self, review: bytes) -> bytes | None:
        return None

    def item(self, asset: bytes) -> ItemRecord | None:
        return None

    def consent(self, txid: bytes) -> ConsentRecord | None:
        return None

    def revoked_by(self, grant: bytes) -> bytes | None:
        return None


EMPTY_STATE: O2OState = _EmptyState()


@dataclass(slots=True)
class O2OEffect:
    """What one O2O transaction does, as found by :func:`check_o2o_inputs`."""

    deltas: dict[bytes, int] = field(default_factory=dict)
    """Asset → allowed ``outputs - inputs`` (0 for any asset not listed)."""
    burned: int = 0
    """Native coin destroyed (not claimable as a fee)."""
    checks: list[SigCheck] = field(default_factory=list)
    """Payload signatures to verify."""
    tokens: dict[bytes, TokenRecord] = field(default_factory=dict)
    """New or updated registry entries."""
    rewarded: dict[tuple[bytes, bytes], bytes] = field(default_factory=dict)
    """(asset, ref) → reward txid."""
    reviews: dict[bytes, ReviewRecord] = field(default_factory=dict)
    """Review txid → record."""
    replies: dict[bytes, bytes] = field(default_factory=dict)
    """Review txid → reply txid."""
    escrows: dict[Outpoint, tuple[bytes, int]] = field(default_factory=dict)
    """Escrow outpoint spent → (spending txid, path) (see :mod:`.escrow`)."""
    items: dict[bytes, ItemRecord] = field(default_factory=dict)
    """Item asset → registration."""
    consents: dict[bytes, ConsentRecord] = field(default_factory=dict)
    """Grant txid → consent record."""
    revocations: dict[bytes, bytes] = field(default_factory=dict)
    """Grant txid → revoking txid."""


NO_EFFECT = O2OEffect()
"""The effect of a payload without O2O rules (shared: never mutate it)."""


class O2OBlockView:
    """An :class:`O2OState` plus the changes of the transactions checked so far
    in one block; :attr:`changes` is what connecting the block records."""

    def __init__(self, base: O2OState) -> None:
        self.base = base
        self.changes = O2OEffect()
        self._reviewed: dict[bytes, bytes] = {}

    def token(self, asset: bytes) -> TokenRecord | None:
        record = self.changes.tokens.get(asset)
        return record if record is not None else self.base.token(asset)

    def main_tx(self, txid: bytes) -> tuple[Tx, int] | None:
        return self.base.main_tx(txid)

    def rewarded_by(self, asset: bytes, ref: bytes) -> bytes | None:
        found = self.changes.rewarded.get((asset, ref))
        return found if found is not None else self.base.rewarded_by(asset, ref)

    def review_of_purchase(self, purchase: bytes) -> bytes | None:
        found = self._reviewed.get(purchase)
        return found if found is not None else self.base.review_of_purchase(purchase)

    def review(self, txid: bytes) -> ReviewRecord | None:
        found = self.changes.reviews.get(txid)
        return found if found is not None else self.base.review(txid)

    def reply_of(self, review: bytes) -> bytes | None:
        found = self.changes.replies.get(review)
        return found if found is not None else self.base.reply_of(review)

    def item(self, asset: bytes) -> ItemRecord | None:
        found = self.changes.items.get(asset)
        return found if found is not None else self.base.item(asset)

    def consent(self, txid: bytes) -> ConsentRecord | None:
        found = self.changes.consents.get(txid)
        return found if found is not None else self.base.consent(txid)

    def revoked_by(self, grant: bytes) -> bytes | None:
        found = self.changes.revocations.get(grant)
        return found if found is not None else self.base.revoked_by(grant)

    def apply(self, effect: O2OEffect) -> None:
        """Record the changes of a transaction that passed."""
        if effect is NO_EFFECT:
            return
        self.changes.tokens.update(effect.tokens)
        self.changes.rewarded.update(effect.rewarded)
        self.changes.reviews.update(effect.reviews)
        self.changes.replies.update(effect.replies)
        self.changes.escrows.update(effect.escrows)
        self.changes.items.update(effect.items)
        self.changes.consents.update(effect.consents)
        self.changes.revocations.update(effect.revocations)
        for txid, record in effect.reviews.items():
            self._reviewed[record.purchase] = txid


# --------------------------------------------------------------------------
# Context-free rules
# --------------------------------------------------------------------------


def check_symbol(symbol: bytes) -> None:
    """Rule: a token symbol is 3..12 characters of ``A-Z`` and ``0-9`` (upper
    case: symbols are case-insensitive, and the payload carries the canonical form)."""
    if not MIN_SYMBOL_LEN <= len(symbol) <= MAX_SYMBOL_LEN or not set(symbol) <= _SYMBOL_CHARS:
        raise TxInvalid(
            "bad-token-symbol",
            f"symbol must be {MIN_SYMBOL_LEN}-{MAX_SYMBOL_LEN} characters of A-Z and 0-9",
        )


_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                           "\u2066\u2067\u2068\u2069")


def check_text(text: bytes, what: str, reason: str, max_len: int, *, allow_empty: bool) -> None:
    """Rule: a text field is valid UTF-8 of at most ``max_len`` bytes with no
    control characters: Unicode category Cc (which includes newlines), line and
    paragraph separators, and bidirectional formatting marks (which could make
    a text display differently from what was signed)."""
    if len(text) > max_len:
        raise TxInvalid(f"{reason}-length", f"{what} is {len(text)} bytes, limit {max_len}")
    if not text and not allow_empty:
        raise TxInvalid(f"{reason}-length", f"{what} is empty")
    try:
        decoded = text.decode("utf-8", errors="strict")
    except UnicodeDecodeError:
        raise TxInvalid(f"{reason}-utf8", f"{what} is not valid UTF-8") from None
    for ch in decoded:
        if unicodedata.category(ch) in _FORBIDDEN_CATEGORIES or ch in _BIDI_CONTROLS:
            raise TxInvalid(f"{reason}-control", f"{what} contains a control character")


def check_o2o_payload(tx: Tx) -> None:
    """Context-free rules of an O2O payload (anything else passes)."""
    payload = tx.payload
    if payload.TAG < 0x10:  # no payload, fee claim, genesis: not O2O
        return
    if isinstance(payload, TokenIssue):
        check_symbol(payload.symbol)
        check_text(payload.name, "token name", "bad-token-name", MAX_TOKEN_NAME, allow_empty=False)
        if payload.decimals > MAX_DECIMALS:
            raise TxInvalid("bad-token-decimals", f"decimals must be 0..{MAX_DECIMALS}")
    elif isinstance(payload, (TokenMint, TokenBurn)):
        if not 1 <= payload.amount <= MAX_AMOUNT:
            raise TxInvalid("bad-token-amount", "mint or burn amount must be 1..MAX_AMOUNT")
    elif isinstance(payload, TokenReward):
        if payload.kind not in (REWARD_PURCHASES, REWARD_REVIEWS):
            raise TxInvalid("bad-token-reward-kind", f"unknown reward kind {payload.kind}")
        if not payload.refs:
            raise TxInvalid("bad-token-reward-refs", "a reward lists at least one txid")
        if len(set(payload.refs)) != len(payload.refs):
            raise TxInvalid("bad-token-reward-refs", "a reward lists a txid twice")
        if not payload.keys:
            raise TxInvalid("bad-token-reward-keys", "a reward carries at least one merchant key")
        if len({k.pubkey for k in payload.keys}) != len(payload.keys):
            raise TxInvalid("bad-token-reward-keys", "a reward lists a merchant key twice")
    elif isinstance(payload, Review):
        if not 1 <= payload.rating <= 5:
            raise TxInvalid("bad-review-rating", f"rating must be 1..5, got {payload.rating}")
        check_text(payload.text, "review text", "bad-review-text", MAX_REVIEW_TEXT,
                   allow_empty=True)
    elif isinstance(payload, ReviewReply):
        check_text(payload.text, "reply text", "bad-reply-text", MAX_REVIEW_TEXT,
                   allow_empty=False)
    elif isinstance(payload, TraceRegister):
        check_name(payload.item_id, "item id", "bad-trace-item-id", _ITEM_ID_CHARS, MAX_ITEM_ID)
        check_text(payload.product, "product", "bad-trace-product", MAX_TRACE_TEXT,
                   allow_empty=False)
        keys = [key for key, _ in payload.data]
        if len(set(keys)) != len(keys):
            raise TxInvalid("bad-trace-data", "a data key appears twice")
        for key, value in payload.data:
            check_name(key, "data key", "bad-trace-data", _SCOPE_CHARS, MAX_SCOPE)
            check_text(value, "data value", "bad-trace-data", MAX_TRACE_TEXT, allow_empty=True)
    elif isinstance(payload, TraceEvent):
        if payload.event >= len(TRACE_EVENTS):
            raise TxInvalid("bad-trace-event", f"unknown trace event type {payload.event}")
        check_text(payload.location, "location", "bad-trace-location", MAX_TRACE_TEXT,
                   allow_empty=True)
        check_text(payload.note, "note", "bad-trace-note", MAX_TRACE_TEXT, allow_empty=True)
    elif isinstance(payload, ConsentGrant):
        check_name(payload.scope, "scope", "bad-consent-scope", _SCOPE_CHARS, MAX_SCOPE)


def check_name(value: bytes, what: str, reason: str, allowed: frozenset[int], limit: int) -> None:
    """Rule: an identifier is 1..``limit`` characters from ``allowed``."""
    if not 1 <= len(value) <= limit or not set(value) <= allowed:
        raise TxInvalid(reason, f"{what} must be 1-{limit} characters of "
                                f"{bytes(sorted(allowed)).decode()}")


def o2o_claims(tx: Tx) -> list[bytes]:
    """Keys of the one-time things ``tx`` claims (a symbol, a purchase's review,
    a review's reply, a (token, purchase) reward): two txs with a common claim
    can never both be mined, so a mempool keeps only the first."""
    payload = tx.payload
    if isinstance(payload, TokenIssue):
        return [b"T" + payload.asset]
    if isinstance(payload, Review):
        return [b"V" + payload.purchase]
    if isinstance(payload, ReviewReply):
        return [b"Y" + payload.review]
    if isinstance(payload, TokenReward):
        return [b"W" + payload.asset + ref for ref in payload.refs]
    if isinstance(payload, TraceRegister):
        return [b"I" + payload.asset]
    if isinstance(payload, ConsentRevoke):
        return [b"L" + payload.grant]
    return []


# --------------------------------------------------------------------------
# Contextual rules
# --------------------------------------------------------------------------


def tx_signers(tx: Tx) -> set[bytes]:
    """Pubkey hashes of every key in the witnesses of ``tx`` (the keys that
    sign it, once its signatures are verified)."""
    return {hash160(pair.pubkey) for txin in tx.inputs for pair in txin.witness}


def spent_locks(tx: Tx, state: O2OState) -> list[Lock | None]:
    """The lock of each coin a main-chain ``tx`` spent, in input order, read
    from the main-chain transactions that created them (None where not found,
    which a consistent chain never has: spent coins are never forgotten)."""
    locks: list[Lock | None] = []
    for txin in tx.inputs:
        found = state.main_tx(txin.prevout.txid)
        outputs = found[0].outputs if found is not None else ()
        index = txin.prevout.index
        locks.append(outputs[index].lock if index < len(outputs) else None)
    return locks


def _escrow_inputs(tx: Tx, spent: Sequence[Lock | None]) -> list[tuple[Escrow, Sequence[SigPair]]]:
    """(lock, witness) of each input of ``tx`` that spends an Escrow output."""
    return [(lock, txin.witness) for lock, txin in zip(spent, tx.inputs, strict=True)
            if isinstance(lock, Escrow)]


def refunds_escrow(tx: Tx, spent: Sequence[Lock | None]) -> bool:
    """True if ``tx`` refunds an escrow: an input spends an Escrow output by the
    refund path (signed by one payee alone, :mod:`.escrow`)."""
    for lock, witness in _escrow_inputs(tx, spent):
        payees = {pkh for pkh, _ in lock.payees}
        if len(witness) == 1 and hash160(witness[0].pubkey) in payees:
            return True
    return False


def purchase_buyers(tx: Tx, spent: Sequence[Lock | None]) -> frozenset[bytes]:
    """The buyers of ``tx`` (pubkey hashes): the owners of the money it spent,
    given the locks of the coins it spent (:func:`spent_locks`).

    * A tx that refunds an escrow (:func:`refunds_escrow`) has none: it gives
      the payer's own money back.
    * A tx that spends Escrow outputs otherwise (released or reclaimed by the
      payer, or settled by the arbiter with a party) was paid by those
      escrows' payers: they are its buyers, and nobody else is (not the
      arbiter nor a payee that co-signed or added an input for the fee).
    * Otherwise, the owners of the spent coins: the address of a
      pay-to-address coin, every address of a multisig coin.

    :func:`check_review_buyer` removes the reviewed merchant's own address.
    """
    escrows = _escrow_inputs(tx, spent)
    if escrows:
        if refunds_escrow(tx, spent):
            return frozenset()
        return frozenset(lock.payer for lock, _ in escrows)
    return frozenset(pkh for lock in spent if lock is not None for pkh in lock.addresses())


def check_review_buyer(
    reviewer: bytes, merchant: bytes, purchase: Tx, spent: Sequence[Lock | None]
) -> None:
    """Rule: the reviewer (a pubkey hash) is a buyer of the purchase other than
    the reviewed ``merchant`` address: an owner of the money that paid it
    (:func:`purchase_buyers`).  ``spent`` holds the locks of the coins the
    purchase spent.

    A refund of an escrow is no purchase (``bad-review-refund``): it pays the
    escrow's payer its own money back, so the payee who signed it cannot review
    the payer, and no one else can either.  Anyone else who is not a buyer is
    refused as ``bad-review-not-buyer``: the arbiter of an escrow, a payee, a
    key that only co-signed, the merchant's own inputs (its change).  When
    several customers' coins paid the merchant together, each is a buyer (the
    first review uses up the purchase's one review).
    """
    if refunds_escrow(purchase, spent):
        raise TxInvalid("bad-review-refund",
                        "the purchase is an escrow refund (the payer's money back): "
                        "nobody can review it")
    if reviewer == merchant or reviewer not in purchase_buyers(purchase, spent):
        raise TxInvalid(
            "bad-review-not-buyer",
            "the reviewer's key did not fund the purchase (a buyer owns money that paid it; "
            "for an escrow, only its payer does)",
        )


def paid_to(tx: Tx, pubkey_hash: bytes) -> int:
    """Native coin ``tx`` pays to the plain address ``pubkey_hash``."""
    lock = PayToAddress(pubkey_hash)
    return sum(o.amount for o in tx.outputs if o.asset == NATIVE_ASSET and o.lock == lock)


def _asset_total(items: Sequence[object], asset: bytes) -> int:
    return sum(o.amount for o in items if o.asset == asset)  # type: ignore[attr-defined]


def _require_token(state: O2OState, asset: bytes) -> TokenRecord:
    record = state.token(asset)
    if record is None:
        raise TxInvalid("bad-token-unknown", f"no token with asset id {asset.hex()[:16]}…")
    return record


def _require_authority(coins: Sequence[Coin], record: TokenRecord, action: str) -> bytes:
    if not record.mintable:
        raise TxInvalid(
            "bad-token-fixed-supply", f"{record.symbol} has a fixed supply; nothing can {action}"
        )
    authority = authority_asset_id(record.asset)
    if _asset_total([c.output for c in coins], authority) != 1:
        raise TxInvalid(
            "bad-token-no-authority",
            f"the tx must spend the mint authority output of {record.symbol} to {action}",
        )
    return authority


def _check_issue(
    tx: Tx, payload: TokenIssue, coins: Sequence[Coin], height: int,
    params: ConsensusParams, state: O2OState,
) -> O2OEffect:
    """Rules of a token issue (the reveal)."""
    first = tx.inputs[0].prevout
    if first.index != 0:
        raise TxInvalid("bad-token-no-commit", "input 0 must spend output 0 of the commit tx")
    if coins[0].height >= height:
        raise TxInvalid(
            "bad-token-reveal-early", "the commit must be mined in an earlier block than the issue"
        )
    found = state.main_tx(first.txid)
    if found is None or not isinstance(found[0].payload, TokenCommit):
        raise TxInvalid("bad-token-no-commit", "input 0 does not spend a token commit")
    expected = token_commitment(payload.symbol.decode(), payload.salt,
                                lock_bytes(coins[0].output.lock))
    if found[0].payload.commitment != expected:
        raise TxInvalid("bad-token-commitment", "symbol and salt do not match the commitment")
    asset = payload.asset
    symbol = payload.symbol.decode()
    if state.token(asset) is not None:
        raise TxInvalid("bad-token-symbol-taken", f"symbol {symbol} is already issued")
    supply = _asset_total(tx.outputs, asset)
    authority = authority_asset_id(asset)
    authority_outputs = [o for o in tx.outputs if o.asset == authority]
    if payload.mintable:
        if len(authority_outputs) != 1 or authority_outputs[0].amount != 1:
            raise TxInvalid(
                "bad-token-authority", "a mintable issue creates exactly one authority output of 1"
            )
    elif authority_outputs:
        raise TxInvalid("bad-token-authority", "a fixed-supply issue creates no authority output")
    if supply == 0 and not payload.mintable:
        raise TxInvalid("bad-token-empty", "a fixed-supply token needs an initial supply")
    issuer_lock = coins[0].output.lock.addresses()
    record = TokenRecord(
        asset, symbol, payload.name.decode(), payload.decimals,
        issuer_lock[0] if issuer_lock else b"", supply, payload.mintable, height, tx.txid,
    )
    deltas = {asset: supply, authority: 1 if payload.mintable else 0}
    return O2OEffect(deltas=deltas, burned=params.token_issue_fee, tokens={asset: record})


def _check_reward(
    tx: Tx, payload: TokenReward, params: ConsensusParams, state: O2OState
) -> O2OEffect:
    """Rules of a reward payment."""
    record = _require_token(state, payload.asset)
    signers = {hash160(k.pubkey) for k in payload.keys}
    merchant_locks = {PayToAddress(s) for s in signers}
    if not any(o.asset == payload.asset and o.lock not in merchant_locks for o in tx.outputs):
        raise TxInvalid(
            "bad-token-reward-empty",
            f"the reward pays no {record.symbol} to anyone but the merchant",
        )
    rewarded: dict[tuple[bytes, bytes], bytes] = {}
    for ref in payload.refs:
        earlier = state.rewarded_by(payload.asset, ref)
        if earlier is not None:
            raise TxInvalid(
                "bad-token-reward-duplicate",
                f"{ref.hex()[:16]}… was already rewarded with {record.symbol} "
                f"(by {earlier.hex()[:16]}…)",
            )
        if payload.kind == REWARD_PURCHASES:
            found = state.main_tx(ref)
            if found is None:
                raise TxInvalid(
                    "bad-token-reward-unknown", f"purchase {ref.hex()[:16]}… is not in the chain"
                )
            purchase = found[0]
            # One pass over the purchase's outputs (set lookups), whatever the
            # number of merchant keys.
            if not any(o.asset == NATIVE_ASSET and o.lock in merchant_locks
                       for o in purchase.outputs):
                raise TxInvalid(
                    "bad-token-reward-not-merchant",
                    f"purchase {ref.hex()[:16]}… did not pay a merchant key of the reward",
                )
            if not signers.isdisjoint(tx_signers(purchase)):
                raise TxInvalid(
                    "bad-token-reward-own-purchase",
                    f"purchase {ref.hex()[:16]}… was paid by a merchant key of the reward "
                    "(a buyer cannot reward its own purchase)",
                )
        else:
            review = state.review(ref)
            if review is None:
                raise TxInvalid(
                    "bad-token-reward-unknown", f"review {ref.hex()[:16]}… is not in the chain"
                )
            if review.merchant not in signers:
                raise TxInvalid(
                    "bad-token-reward-not-merchant",
                    f"review {ref.hex()[:16]}… is not about a merchant key of the reward",
                )
        rewarded[(payload.asset, ref)] = tx.txid
    outpoints = tx.wire_outpoints()
    digest = reward_sig_digest(payload, params.chain_id, outpoints)
    checks = [(k.pubkey, k.signature, digest) for k in payload.keys]
    return O2OEffect(checks=checks, rewarded=rewarded)


def _check_review(
    tx: Tx, payload: Review, height: int, params: ConsensusParams, state: O2OState
) -> O2OEffect:
    """Rules of a review."""
    found = state.main_tx(payload.purchase)
    if found is None:
        raise TxInvalid(
            "bad-review-no-purchase", f"purchase {payload.purchase.hex()[:16]}… is not in the chain"
        )
    purchase, purchase_height = found
    if height - purchase_height > params.review_window:
        raise TxInvalid(
            "bad-review-window",
            f"the purchase is {height - purchase_height} blocks old, the window is "
            f"{params.review_window}",
        )
    value = paid_to(purchase, payload.merchant)
    if value == 0:
        raise TxInvalid("bad-review-wrong-merchant", "the purchase did not pay this merchant")
    if value < params.min_purchase:
        raise TxInvalid(
            "bad-review-purchase-too-small",
            f"the purchase paid {value}, the minimum for a review is {params.min_purchase}",
        )
    reviewer = hash160(payload.pubkey)
    if reviewer == payload.merchant:
        raise TxInvalid("bad-review-self", "a merchant cannot review itself")
    earlier = state.review_of_purchase(payload.purchase)
    if earlier is not None:
        raise TxInvalid(
            "bad-review-duplicate", f"the purchase was already reviewed ({earlier.hex()[:16]}…)"
        )
    # Last: the only rule that reads more of the chain (the coins the purchase spent).
    check_review_buyer(reviewer, payload.merchant, purchase, spent_locks(purchase, state))
    record = ReviewRecord(
        payload.merchant, reviewer, payload.purchase, payload.rating, value, height
    )
    check = (payload.pubkey, payload.signature, review_sig_digest(payload, params.chain_id))
    return O2OEffect(checks=[check], reviews={tx.txid: record})


def _check_reply(
    tx: Tx, payload: ReviewReply, params: ConsensusParams, state: O2OState
) -> O2OEffect:
    """Rules of a merchant's reply."""
    review = state.review(payload.review)
    if review is None:
        raise TxInvalid(
            "bad-reply-no-review", f"review {payload.review.hex()[:16]}… is not in the chain"
        )
    if hash160(payload.pubkey) != review.merchant:
        raise TxInvalid("bad-reply-not-merchant", "only the reviewed merchant can reply")
    earlier = state.reply_of(payload.review)
    if earlier is not None:
        raise TxInvalid(
            "bad-reply-duplicate", f"the review already has a reply ({earlier.hex()[:16]}…)"
        )
    check = (payload.pubkey, payload.signature, reply_sig_digest(payload, params.chain_id))
    return O2OEffect(checks=[check], replies={payload.review: tx.txid})


def check_o2o_inputs(
    tx: Tx,
    coins: Sequence[Coin],
    height: int,
    params: ConsensusParams,
    state: O2OState,
) -> O2OEffect:
    """Contextual rules of ``tx``'s payload at ``height`` against ``state``.

    Returns the payload's effect (an empty one for payloads without rules here).
    """
    payload = tx.payload
    if isinstance(payload, TokenIssue):
        return _check_issue(tx, payload, coins, height, params, state)
    if isinstance(payload, TokenMint):
        record = _require_token(state, payload.asset)
        authority = _require_authority(coins, record, "mint")
        if record.supply + payload.amount > MAX_AMOUNT:
            raise TxInvalid("bad-token-supply-overflow", f"{record.symbol} supply would overflow")
        updated = replace(record, supply=record.supply + payload.amount)
        return O2OEffect(
            deltas={payload.asset: payload.amount, authority: 0},
            tokens={payload.asset: updated},
        )
    if isinstance(payload, TokenBurn):
        record = _require_token(state, payload.asset)
        held = _asset_total([c.output for c in coins], payload.asset)
        if held < payload.amount:
            raise TxInvalid(
                "bad-token-burn-exceeds-inputs",
                f"burns {payload.amount} {record.symbol} but its inputs hold {held}",
            )
        updated = replace(record, supply=record.supply - payload.amount)
        return O2OEffect(deltas={payload.asset: -payload.amount}, tokens={payload.asset: updated})
    if isinstance(payload, TokenFreeze):
        record = _require_token(state, payload.asset)
        authority = _require_authority(coins, record, "freeze")
        return O2OEffect(
            deltas={authority: -1}, tokens={payload.asset: replace(record, mintable=False)}
        )
    if isinstance(payload, TokenReward):
        return _check_reward(tx, payload, params, state)
    if isinstance(payload, Review):
        return _check_review(tx, payload, height, params, state)
    if isinstance(payload, ReviewReply):
        return _check_reply(tx, payload, params, state)
    if isinstance(payload, TraceRegister):
        return _check_trace_register(tx, payload, height, params, state)
    if isinstance(payload, TraceEvent):
        if state.item(payload.asset) is None:
            raise TxInvalid("bad-trace-unknown-item",
                            f"no item {payload.asset.hex()[:16]}… is registered")
        if _asset_total([c.output for c in coins], payload.asset) != 1:
            raise TxInvalid("bad-trace-not-custodian",
                            "a trace event must spend the item (signed by its custodian)")
        return O2OEffect()
    if isinstance(payload, ConsentGrant):
        return _check_consent_grant(tx, payload, height, params)
    if isinstance(payload, ConsentRevoke):
        return _check_consent_revoke(tx, payload, params, state)
    return O2OEffect()


def _check_trace_register(
    tx: Tx, payload: TraceRegister, height: int, params: ConsensusParams, state: O2OState
) -> O2OEffect:
    """Rules of an item registration."""
    if hash160(payload.pubkey) != payload.merchant:
        raise TxInvalid("bad-trace-not-merchant", "the registration is not signed by the merchant")
    asset = payload.asset
    if state.item(asset) is not None:
        raise TxInvalid("bad-trace-duplicate",
                        f"item {payload.item_id.decode()} is already registered by this merchant")
    outputs = [o for o in tx.outputs if o.asset == asset]
    if len(outputs) != 1 or outputs[0].amount != 1:
        raise TxInvalid("bad-trace-item-output", "a registration creates one item output of 1")
    record = ItemRecord(payload.merchant, payload.item_id.decode(), payload.product.decode(),
                        height, tx.txid)
    outpoints = tx.wire_outpoints()
    digest = item_sig_digest(payload, params.chain_id, outpoints)
    return O2OEffect(deltas={asset: 1}, items={asset: record},
                     checks=[(payload.pubkey, payload.signature, digest)])


def _check_consent_grant(
    tx: Tx, payload: ConsentGrant, height: int, params: ConsensusParams
) -> O2OEffect:
    """Rules of a consent grant."""
    user = hash160(payload.pubkey)
    if user == payload.grantee:
        raise TxInvalid("bad-consent-self", "a user cannot grant consent to itself")
    if payload.until < height:
        raise TxInvalid("bad-consent-expired",
                        f"the grant ends at height {payload.until}, before this block ({height})")
    record = ConsentRecord(user, payload.grantee, payload.scope.decode(), payload.until, height)
    outpoints = tx.wire_outpoints()
    digest = consent_sig_digest(payload, params.chain_id, outpoints)
    return O2OEffect(checks=[(payload.pubkey, payload.signature, digest)],
                     consents={tx.txid: record})


def _check_consent_revoke(
    tx: Tx, payload: ConsentRevoke, params: ConsensusParams, state: O2OState
) -> O2OEffect:
    """Rules of a consent revocation."""
    grant = state.consent(payload.grant)
    if grant is None:
        raise TxInvalid("bad-consent-unknown", f"no consent grant {payload.grant.hex()[:16]}…")
    if hash160(payload.pubkey) != grant.user:
        raise TxInvalid("bad-consent-not-user", "only the user who granted can revoke")
    earlier = state.revoked_by(payload.grant)
    if earlier is not None:
        raise TxInvalid("bad-consent-revoked",
                        f"the grant was already revoked ({earlier.hex()[:16]}…)")
    check = (payload.pubkey, payload.signature, revoke_sig_digest(payload, params.chain_id))
    return O2OEffect(checks=[check], revocations={payload.grant: tx.txid})

