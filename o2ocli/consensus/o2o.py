"""Dispatcher of the O2O payload rules: finds a payload's family rules by its tag.

Each O2O family lives in one module with its records, its state namespaces,
its context-free and contextual rules and its claims:

=====================  ========================================================
module                 family
=====================  ========================================================
:mod:`.tokens`         loyalty tokens: commit, issue, mint, burn, freeze, reward
:mod:`.reviews`        reviews of purchases and merchants' replies
:mod:`.trace`          traceability: item registrations and trace events
:mod:`.consent`        consent grants and revocations
:mod:`.gov`            governance: proposals and votes
:mod:`.escrow`         the escrow lock (its settlements are O2O state too)
:mod:`.profile`        profile commitments, and consent grants naming one
=====================  ========================================================

A family exports ``RULES`` (payload tag → :class:`~.state.FamilyRules`) and
``NAMESPACES`` (its :class:`~.state.Namespace` s); this module merges them in
:data:`RULES` and :data:`NAMESPACES` (one line per family), and the generic
state they write is described in :mod:`.state`.  Payloads without an entry
(no payload, fee claim, genesis) have no O2O rules.

The names this module had before the split are re-exported, so
``from o2ocli.consensus.o2o import TokenRecord`` keeps working.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from o2ocli.core.payloads import (
    ConsentGrant,
    ConsentGrantProfile,
    ConsentRevoke,
    GovProposal,
    GovVote,
    ProfileCommit,
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
)
from o2ocli.core.tx import Coin, Tx

from . import consent, escrow, gov, profile, reviews, tokens, trace
from .consent import MAX_SCOPE, ConsentRecord
from .fields import check_name, check_text
from .params import ConsensusParams
from .purchases import paid_to, purchase_buyers, refunds_escrow, spent_locks, tx_signers
from .reviews import MAX_REVIEW_TEXT, ReviewRecord, check_review_buyer
from .state import (
    EMPTY_STATE,
    NO_EFFECT,
    FamilyRules,
    Namespace,
    O2OBlockView,
    O2OEffect,
    O2OState,
    StateKey,
)
from .tokens import (
    MAX_DECIMALS,
    MAX_SYMBOL_LEN,
    MAX_TOKEN_NAME,
    MIN_SYMBOL_LEN,
    TokenRecord,
    check_symbol,
)
from .trace import MAX_ITEM_ID, MAX_TRACE_TEXT, ItemRecord, index_item_moves

__all__ = [
    "RULES",
    "NAMESPACES",
    "BLOCK_INDEXERS",
    "O2O_PAYLOADS",
    "STATE_DEPENDENT_REASONS",
    "MIN_SYMBOL_LEN",
    "MAX_SYMBOL_LEN",
    "MAX_TOKEN_NAME",
    "MAX_DECIMALS",
    "MAX_REVIEW_TEXT",
    "MAX_ITEM_ID",
    "MAX_SCOPE",
    "MAX_TRACE_TEXT",
    "TokenRecord",
    "ReviewRecord",
    "ItemRecord",
    "ConsentRecord",
    "StateKey",
    "Namespace",
    "FamilyRules",
    "O2OState",
    "EMPTY_STATE",
    "O2OEffect",
    "NO_EFFECT",
    "O2OBlockView",
    "check_name",
    "check_symbol",
    "check_text",
    "check_o2o_payload",
    "check_o2o_inputs",
    "o2o_claims",
    "claim_description",
    "block_writes",
    "tx_signers",
    "paid_to",
    "spent_locks",
    "refunds_escrow",
    "purchase_buyers",
    "check_review_buyer",
]

RULES: dict[int, FamilyRules] = {
    **tokens.RULES,
    **reviews.RULES,
    **trace.RULES,
    **consent.RULES,
    **gov.RULES,
    **profile.RULES,
}
"""Payload tag → its family's rules (one line per family)."""

NAMESPACES: dict[str, Namespace] = {
    ns.name: ns
    for family in (tokens, reviews, trace, consent, escrow, gov, profile)
    for ns in family.NAMESPACES
}
"""Namespace name → declaration, for every family."""

BlockIndexer = Callable[[Sequence[Tx], int, O2OState], dict[StateKey, bytes]]
BLOCK_INDEXERS: tuple[BlockIndexer, ...] = (index_item_moves,)
"""Index writes derived from a whole block (txs, height, state with the block's writes)."""

O2O_PAYLOADS = (TokenCommit, TokenIssue, TokenMint, TokenBurn, TokenFreeze, TokenReward,
                Review, ReviewReply, TraceRegister, TraceEvent, ConsentGrant, ConsentRevoke,
                GovProposal, GovVote, ConsentGrantProfile, ProfileCommit)
"""Payload types ruled by the O2O families (kept for importers: the rules
themselves are found by tag in :data:`RULES`)."""

STATE_DEPENDENT_REASONS = frozenset().union(
    *(family.STATE_DEPENDENT_REASONS
      for family in (tokens, reviews, trace, consent, escrow, gov, profile))
)
"""Reasons that depend on the chain a node has seen (the purchase may be in a
block it has not received yet, a claim may be taken on another branch): an
honest peer can relay such a tx, so a refusal for these is not misbehaviour.
Reasons that only look at txs both sides have (a purchase that was found, the
inputs) are misbehaviour, like any other broken rule."""


def check_o2o_payload(tx: Tx, rules: dict[int, FamilyRules] = RULES) -> None:
    """Context-free rules of an O2O payload (anything else passes)."""
    family = rules.get(tx.payload.TAG)
    if family is not None:
        family.check(tx)


def check_o2o_inputs(
    tx: Tx,
    coins: Sequence[Coin],
    height: int,
    params: ConsensusParams,
    state: O2OState,
    rules: dict[int, FamilyRules] = RULES,
) -> O2OEffect:
    """Contextual rules of ``tx``'s payload at ``height`` against ``state``.

    Returns the payload's effect (an empty one for payloads without rules here).
    """
    family = rules.get(tx.payload.TAG)
    if family is None:
        return O2OEffect()
    return family.contextual(tx, coins, height, params, state)


def o2o_claims(tx: Tx, rules: dict[int, FamilyRules] = RULES) -> list[StateKey]:
    """Keys of the one-time things ``tx`` claims (a symbol, a purchase's review,
    a review's reply, a (token, purchase) reward, an item, a grant's
    revocation): two txs with a common claim can never both be mined, so a
    mempool keeps only the first.  A claim is the state key the tx would write."""
    family = rules.get(tx.payload.TAG)
    return [] if family is None else family.claims(tx)


def claim_description(claim: StateKey) -> str:
    """What ``claim`` claims, for people."""
    ns = NAMESPACES.get(claim[0])
    return (ns.claim if ns is not None else None) or "thing"


def block_writes(
    txs: Sequence[Tx], height: int, changes: O2OEffect, state: O2OState,
    namespaces: dict[str, Namespace] = NAMESPACES,
) -> list[tuple[StateKey, bytes | None]]:
    """Everything connecting a block writes to the O2O state, given the writes
    of its transactions (``changes``, as collected by :class:`O2OBlockView`)
    and ``state`` at its parent: each write followed by the index writes its
    namespace derives from it (:attr:`Namespace.derive`), then the block
    indexers' writes (:data:`BLOCK_INDEXERS`)."""
    items: list[tuple[StateKey, bytes | None]] = []
    for key, value in changes.writes.items():
        items.append((key, value))
        ns = namespaces.get(key[0])
        if ns is not None and ns.derive is not None and value is not None:
            items.extend(ns.derive(key[1], value).items())
    if BLOCK_INDEXERS:
        view = O2OBlockView(state)
        view.apply(changes)
        for indexer in BLOCK_INDEXERS:
            items.extend(indexer(txs, height, view).items())
    return items
