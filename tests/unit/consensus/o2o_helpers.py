"""Shared by the O2O rule tests: an in-memory O2O state."""

from __future__ import annotations


class FakeState:
    """An in-memory :class:`~o2ocli.consensus.o2o.O2OState` (dicts), plus
    helpers to put a tx in the "main chain" and to record a tx's effect."""

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

    def token(self, asset):
        return self.tokens.get(asset)

    def main_tx(self, txid):
        return self.txs.get(txid)

    def rewarded_by(self, asset, ref):
        return self.rewarded.get((asset, ref))

    def review_of_purchase(self, purchase):
        return self.reviewed.get(purchase)

    def review(self, txid):
        return self.reviews.get(txid)

    def reply_of(self, review):
        return self.replies.get(review)

    def item(self, asset):
        return self.items.get(asset)

    def consent(self, txid):
        return self.consents.get(txid)

    def revoked_by(self, grant):
        return self.revocations.get(grant)

    # -- test helpers -----------------------------------------------------
    def mine(self, tx, height):
        """Put ``tx`` in the main chain at ``height``."""
        self.txs[tx.txid] = (tx, height)

    def apply(self, effect):
        """Record an accepted tx's effect (what connecting its block would do)."""
        self.tokens.update(effect.tokens)
        self.rewarded.update(effect.rewarded)
        for txid, record in effect.reviews.items():
            self.reviews[txid] = record
            self.reviewed[record.purchase] = txid
        self.replies.update(effect.replies)
        self.items.update(effect.items)
        self.consents.update(effect.consents)
        self.revocations.update(effect.revocations)
