"""Shared by the O2O rule tests: an in-memory O2O state, and typed views of
the generic (namespace, id) → bytes state and effects."""

from __future__ import annotations

from dataclasses import dataclass, field

from o2ocli.consensus import consent, escrow, reviews, tokens, trace
from o2ocli.consensus.consent import ConsentRecord
from o2ocli.consensus.reviews import ReviewRecord
from o2ocli.consensus.state import O2OEffect
from o2ocli.consensus.tokens import TokenRecord
from o2ocli.consensus.trace import ItemRecord
from o2ocli.core.tx import Outpoint


@dataclass
class Decoded:
    """The writes of an :class:`O2OEffect`, decoded per family (indexes left out)."""

    tokens: dict = field(default_factory=dict)
    rewarded: dict = field(default_factory=dict)
    reviews: dict = field(default_factory=dict)
    replies: dict = field(default_factory=dict)
    items: dict = field(default_factory=dict)
    consents: dict = field(default_factory=dict)
    revocations: dict = field(default_factory=dict)
    escrows: dict = field(default_factory=dict)


def decoded(effect: O2OEffect) -> Decoded:
    """The typed content of ``effect.writes``."""
    out = Decoded()
    for (ns, ident), value in effect.writes.items():
        if ns == tokens.TOKEN.name:
            out.tokens[ident] = TokenRecord.from_bytes(value)
        elif ns == tokens.REWARDED.name:
            out.rewarded[(ident[:32], ident[32:])] = value
        elif ns == reviews.REVIEW.name:
            out.reviews[ident] = ReviewRecord.from_bytes(value)
        elif ns == reviews.REPLY.name:
            out.replies[ident] = value
        elif ns == trace.ITEM.name:
            out.items[ident] = ItemRecord.from_bytes(value)
        elif ns == consent.CONSENT.name:
            out.consents[ident] = ConsentRecord.from_bytes(value)
        elif ns == consent.REVOKED.name:
            out.revocations[ident] = value
        elif ns == escrow.ESCROW_SETTLED.name:
            out.escrows[Outpoint.from_bytes(ident)] = (value[:32], value[32])
    return out


def effect_of(*, tokens=None, rewarded=None, reviews=None, replies=None,
              items=None, consents=None, revocations=None) -> O2OEffect:
    """An effect writing the given typed records (the inverse of :func:`decoded`)."""
    from o2ocli.consensus import consent as c
    from o2ocli.consensus import reviews as r
    from o2ocli.consensus import tokens as t
    from o2ocli.consensus import trace as tr

    writes: dict = {}
    for record in (tokens or {}).values():
        writes.update(t.token_writes(record))
    for (asset, ref), txid in (rewarded or {}).items():
        writes[t.rewarded_key(asset, ref)] = txid
    for txid, record in (reviews or {}).items():
        writes.update(r.review_writes(txid, record))
    for review, txid in (replies or {}).items():
        writes[r.REPLY.key(review)] = txid
    for asset, record in (items or {}).items():
        writes[tr.ITEM.key(asset)] = record.to_bytes()
    for txid, record in (consents or {}).items():
        writes.update(c.consent_writes(txid, record))
    for grant, txid in (revocations or {}).items():
        writes[c.REVOKED.key(grant)] = txid
    return O2OEffect(writes=writes)


class Typed:
    """Typed reads (the family readers) over any O2O state."""

    def __init__(self, state):
        self.state = state

    def token(self, asset):
        return tokens.read_token(self.state, asset)

    def rewarded_by(self, asset, ref):
        return tokens.rewarded_by(self.state, asset, ref)

    def review_of_purchase(self, purchase):
        return reviews.review_of_purchase(self.state, purchase)

    def review(self, txid):
        return reviews.read_review(self.state, txid)

    def reply_of(self, review):
        return reviews.reply_of(self.state, review)

    def item(self, asset):
        return trace.read_item(self.state, asset)

    def consent(self, txid):
        return consent.read_consent(self.state, txid)

    def revoked_by(self, grant):
        return consent.revoked_by(self.state, grant)

    def main_tx(self, txid):
        return self.state.main_tx(txid)


def typed(state) -> Typed:
    """Typed reads over ``state``."""
    return Typed(state)


class FakeState:
    """An in-memory :class:`~o2ocli.consensus.state.O2OState` kept as typed
    dicts (what tests set up and inspect), plus helpers to put a tx in the
    "main chain" and to record a tx's effect."""

    def __init__(self):
        self.tokens = {}
        self.txs = {}
        self.rewarded = {}
        self.reviewed = {}
        self.reviews = {}
        self.replies = {}
        self.items = {}
        self.consents = {}
        self.revocations = {}

    # -- O2OState ---------------------------------------------------------
    def read(self, key):
        ns, ident = key
        if ns == tokens.TOKEN.name:
            record = self.tokens.get(ident)
            return None if record is None else record.to_bytes()
        if ns == tokens.REWARDED.name:
            return self.rewarded.get((ident[:32], ident[32:]))
        if ns == reviews.REVIEW_OF_PURCHASE.name:
            return self.reviewed.get(ident)
        if ns == reviews.REVIEW.name:
            record = self.reviews.get(ident)
            return None if record is None else record.to_bytes()
        if ns == reviews.REPLY.name:
            return self.replies.get(ident)
        if ns == trace.ITEM.name:
            record = self.items.get(ident)
            return None if record is None else record.to_bytes()
        if ns == consent.CONSENT.name:
            record = self.consents.get(ident)
            return None if record is None else record.to_bytes()
        if ns == consent.REVOKED.name:
            return self.revocations.get(ident)
        return None

    def main_tx(self, txid):
        return self.txs.get(txid)

    # -- typed reads --------------------------------------------------------
    def token(self, asset):
        return self.tokens.get(asset)

    def review_of_purchase(self, purchase):
        return self.reviewed.get(purchase)

    def item(self, asset):
        return self.items.get(asset)

    def consent(self, txid):
        return self.consents.get(txid)

    # -- test helpers -----------------------------------------------------
    def mine(self, tx, height):
        """Put ``tx`` in the main chain at ``height``."""
        self.txs[tx.txid] = (tx, height)

    def apply(self, effect):
        """Record an accepted tx's effect (what connecting its block would do)."""
        d = decoded(effect)
        self.tokens.update(d.tokens)
        self.rewarded.update(d.rewarded)
        for txid, record in d.reviews.items():
            self.reviews[txid] = record
            self.reviewed[record.purchase] = txid
        self.replies.update(d.replies)
        self.items.update(d.items)
        self.consents.update(d.consents)
        self.revocations.update(d.revocations)
