"""Consensus rules of the governance family: proposals and votes.

* A proposal burns a deposit of at least the chain's ``gov_deposit``, offers
  2..16 options and is open for ``voting_blocks`` (1..:data:`MAX_VOTING_BLOCKS`)
  blocks.  Its *snapshot* is its own block's height H; its *end* is
  ``H + voting_blocks``.  The snapshot is the chain state after block H.
* A vote is mined in a block above H and at most the end height, picks an
  option in range, and is signed by every key it names; ``keys[0]`` is the
  *voter*.
* Tokens weight: the vote names outpoints of the proposal's asset created at
  or before H, not spent at or before H (the chainstate's spent-at index,
  :data:`COIN_SPENT_AT`, answers this with one read), each locked to one of
  the vote's keys (pay-to-address coins only).  Its weight is their sum.
* Customers weight: the vote names one purchase mined at or before H that paid
  the merchant at least ``min_purchase``, with the one key of the vote a buyer
  of it (the reviews' purchase rule, :func:`~.reviews.check_review_buyer`).
  Its weight is 1: one customer, one voice.
* Last vote counts: a voter's ballot is kept under (proposal, voter); a later
  vote by the same voter replaces it whole (its outpoints are released, the
  new ones taken).  An outpoint counts at most once per proposal: it is marked
  with the voter whose ballot holds it (:data:`GOV_OUTPOINT`), and a vote by
  any *other* voter naming it is refused, whether or not the coin moved after
  the snapshot (a moved coin is still the same outpoint; a coin it became was
  created after the snapshot).

State (namespaces, see :mod:`.state`): :data:`GOV_PROPOSAL`, :data:`GOV_BALLOT`
(the indexed votes the tally is computed from), :data:`GOV_OUTPOINT`, and
:data:`COIN_SPENT_AT`, which the chainstate writes itself for every spent coin.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from o2ocli.core.encoding import Reader, Writer
from o2ocli.core.locks import PayToAddress
from o2ocli.core.payloads import (
    WEIGHT_CUSTOMERS,
    WEIGHT_TOKENS,
    GovProposal,
    GovVote,
    vote_sig_digest,
)
from o2ocli.core.tx import NATIVE_ASSET, Coin, Outpoint, Tx
from o2ocli.crypto.hashes import hash160

from .errors import TxInvalid
from .fields import TextField, check_text
from .params import ConsensusParams
from .purchases import paid_to, spent_locks
from .reviews import check_review_buyer
from .state import FamilyRules, Namespace, O2OEffect, O2OState, StateKey
from .tokens import read_token

__all__ = [
    "STATE_DEPENDENT_REASONS",
    "MIN_OPTIONS",
    "MAX_OPTIONS",
    "MAX_VOTING_BLOCKS",
    "TITLE",
    "TEXT",
    "OPTION",
    "GOV_PROPOSAL",
    "GOV_BALLOT",
    "GOV_OUTPOINT",
    "COIN_SPENT_AT",
    "NAMESPACES",
    "ProposalRecord",
    "BallotRecord",
    "read_proposal",
    "read_ballot",
    "spent_at",
    "wire_outpoint",
    "check_proposal_fields",
    "check_proposal",
    "check_vote_fields",
    "check_vote",
    "RULES",
]

MIN_OPTIONS = 2
MAX_OPTIONS = 16
MAX_VOTING_BLOCKS = 1_000_000
"""Longest voting period, in blocks."""
TITLE = TextField("proposal title", 120, False,
                  "bad-gov-title-length", "bad-gov-title-utf8", "bad-gov-title-control")
TEXT = TextField("proposal text", 4000, True,
                 "bad-gov-text-length", "bad-gov-text-utf8", "bad-gov-text-control")
OPTION = TextField("proposal option", 100, False,
                   "bad-gov-option-length", "bad-gov-option-utf8", "bad-gov-option-control")

STATE_DEPENDENT_REASONS = frozenset({
    "bad-gov-unknown-token",
    "bad-gov-vote-no-proposal",
    "bad-gov-vote-ended",
    "bad-gov-vote-outpoint-unknown",
    "bad-gov-vote-outpoint-used",
    "bad-gov-vote-no-purchase",
})
"""Reasons of this family that depend on the chain a node has seen
(see :data:`o2ocli.consensus.o2o.STATE_DEPENDENT_REASONS`)."""

GOV_PROPOSAL = Namespace("gov-proposal", "proposal txid → ProposalRecord")
GOV_BALLOT = Namespace("gov-ballot", "proposal txid ‖ voter pubkey hash → BallotRecord "
                       "(the voter's current ballot)",
                       claim="voter's ballot (one pending vote per voter and proposal)")
GOV_OUTPOINT = Namespace("gov-outpoint", "proposal txid ‖ outpoint (wire form) → pubkey hash "
                         "of the voter whose ballot counts it",
                         claim="outpoint (it votes once per proposal)")
COIN_SPENT_AT = Namespace("coin-spent-at", "outpoint (txid ‖ index u32 BE) → height u32 BE "
                          "of the main-chain block that spent it (written by the chainstate "
                          "for every spent coin, read by the vote rule)")
NAMESPACES = (GOV_PROPOSAL, GOV_BALLOT, GOV_OUTPOINT, COIN_SPENT_AT)


@dataclass(frozen=True, slots=True)
class ProposalRecord:
    """What the chainstate keeps about a proposal (its texts stay in its tx)."""

    weight: int
    asset: bytes
    merchant: bytes | None
    options: int
    """Number of options."""
    snapshot: int
    """Height of the proposal's block."""
    end: int
    """Last height a vote may be mined at."""
    deposit: int
    supply: int
    """The token's supply when the proposal was checked (0: native coin or customers)."""

    def to_bytes(self) -> bytes:
        w = Writer()
        w.u8(self.weight)
        w.raw(self.asset)
        w.u8(0 if self.merchant is None else 1)
        w.raw(self.merchant or bytes(20))
        w.u8(self.options)
        w.u32(self.snapshot)
        w.u32(self.end)
        w.u64(self.deposit)
        w.u64(self.supply)
        return w.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> ProposalRecord:
        r = Reader(data)
        weight, asset, has = r.u8("weight"), r.raw(32, "asset"), r.u8("merchant flag")
        merchant = r.raw(20, "merchant")
        record = cls(weight, asset, merchant if has else None, r.u8("options"),
                     r.u32("snapshot"), r.u32("end"), r.u64("deposit"), r.u64("supply"))
        r.finish("proposal record")
        return record


@dataclass(frozen=True, slots=True)
class BallotRecord:
    """A voter's current ballot on one proposal."""

    option: int
    weight: int
    height: int
    txid: bytes
    """The vote that cast it."""
    outpoints: tuple[bytes, ...]
    """Wire-form outpoints it counts (tokens weight)."""

    def to_bytes(self) -> bytes:
        w = Writer()
        w.u8(self.option)
        w.u64(self.weight)
        w.u32(self.height)
        w.raw(self.txid)
        w.varint(len(self.outpoints))
        for op in self.outpoints:
            w.raw(op)
        return w.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> BallotRecord:
        r = Reader(data)
        option, weight, height, txid = r.u8("option"), r.u64("weight"), r.u32("height"), \
            r.raw(32, "txid")
        ops = tuple(r.raw(36, "outpoint") for _ in range(r.count("outpoints", 1 << 16)))
        r.finish("ballot record")
        return cls(option, weight, height, txid, ops)


def read_proposal(state: O2OState, txid: bytes) -> ProposalRecord | None:
    """The record of proposal ``txid``, or None."""
    data = state.read((GOV_PROPOSAL.name, txid))
    return None if data is None else ProposalRecord.from_bytes(data)


def read_ballot(state: O2OState, proposal: bytes, voter: bytes) -> BallotRecord | None:
    """``voter``'s current ballot on ``proposal``, or None."""
    data = state.read((GOV_BALLOT.name, proposal + voter))
    return None if data is None else BallotRecord.from_bytes(data)


def wire_outpoint(op: bytes) -> Outpoint:
    """The outpoint of a wire-form (index little-endian) outpoint."""
    return Outpoint(op[:32], int.from_bytes(op[32:], "little"))


def spent_at(state: O2OState, outpoint: Outpoint) -> int | None:
    """Height of the main-chain block that spent ``outpoint``, or None if it
    is unspent (or spent in a block not connected yet)."""
    data = state.read((COIN_SPENT_AT.name, outpoint.to_bytes()))
    return None if data is None else int.from_bytes(data, "big")


# --------------------------------------------------------------------------
# Context-free rules
# --------------------------------------------------------------------------


def check_proposal_fields(tx: Tx) -> None:
    """Rule: a proposal has a valid title, text and 2..16 valid options, a known
    weight (a merchant exactly for customers weight), and 1..MAX_VOTING_BLOCKS
    voting blocks."""
    p: GovProposal = tx.payload  # type: ignore[assignment]
    check_text(p.title, TITLE)
    check_text(p.text, TEXT)
    check_option_count(p)
    for option in p.options:
        check_text(option, OPTION)
    check_weight_kind(p)
    check_voting_blocks(p)


def check_option_count(p: GovProposal) -> None:
    """Rule: a proposal offers 2..16 options."""
    if not MIN_OPTIONS <= len(p.options) <= MAX_OPTIONS:
        raise TxInvalid("bad-gov-options", f"a proposal needs {MIN_OPTIONS}..{MAX_OPTIONS} "
                                           f"options, got {len(p.options)}")


def check_weight_kind(p: GovProposal) -> None:
    """Rule: the weight is tokens (no merchant) or customers (with a merchant)."""
    if p.weight not in (WEIGHT_TOKENS, WEIGHT_CUSTOMERS):
        raise TxInvalid("bad-gov-weight", f"unknown voting weight {p.weight}")
    if (p.weight == WEIGHT_CUSTOMERS) != (p.merchant is not None):
        raise TxInvalid("bad-gov-merchant",
                        "a customers vote names a merchant; a tokens vote names none")


def check_voting_blocks(p: GovProposal) -> None:
    """Rule: voting lasts 1..MAX_VOTING_BLOCKS blocks."""
    if not 1 <= p.voting_blocks <= MAX_VOTING_BLOCKS:
        raise TxInvalid("bad-gov-voting-blocks",
                        f"voting blocks must be 1..{MAX_VOTING_BLOCKS}, got {p.voting_blocks}")


def check_vote_fields(tx: Tx) -> None:
    """Rule: a vote picks an option from 1, has 1..MAX_VOTE_KEYS distinct keys,
    and names no outpoint twice."""
    v: GovVote = tx.payload  # type: ignore[assignment]
    if v.option < 1:
        raise TxInvalid("bad-gov-vote-option", "options are numbered from 1")
    pubkeys = [pair.pubkey for pair in v.keys]
    if not pubkeys or len(set(pubkeys)) != len(pubkeys):
        raise TxInvalid("bad-gov-vote-keys", "a vote needs at least one key, each once")
    if len(set(v.outpoints)) != len(v.outpoints):
        raise TxInvalid("bad-gov-vote-duplicate-outpoint", "a vote names an outpoint twice")


# --------------------------------------------------------------------------
# Contextual rules
# --------------------------------------------------------------------------


def check_proposal(
    tx: Tx, coins: Sequence[Coin], height: int, params: ConsensusParams, state: O2OState
) -> O2OEffect:
    """Rule: a proposal burns a deposit of at least ``gov_deposit`` and, for a
    tokens vote, names the native coin or an issued token."""
    p: GovProposal = tx.payload  # type: ignore[assignment]
    if p.deposit < params.gov_deposit:
        raise TxInvalid("bad-gov-deposit-too-small",
                        f"the deposit is {p.deposit}, the minimum is {params.gov_deposit}")
    check_deposit_burned(tx, coins, p.deposit)
    supply = 0
    if p.weight == WEIGHT_TOKENS and p.asset != NATIVE_ASSET:
        token = read_token(state, p.asset)
        if token is None:
            raise TxInvalid("bad-gov-unknown-token", f"no token {p.asset.hex()[:16]}…")
        supply = token.supply
    record = ProposalRecord(p.weight, p.asset, p.merchant, len(p.options), height,
                            height + p.voting_blocks, p.deposit, supply)
    return O2OEffect(burned=p.deposit, writes={(GOV_PROPOSAL.name, tx.txid): record.to_bytes()})


def check_deposit_burned(tx: Tx, coins: Sequence[Coin], deposit: int) -> None:
    """Rule: the proposal's native inputs exceed its native outputs by at least
    the deposit (what is left after the deposit is the fee)."""
    native_in = sum(c.output.amount for c in coins if c.output.asset == NATIVE_ASSET)
    native_out = sum(o.amount for o in tx.outputs if o.asset == NATIVE_ASSET)
    if native_in - native_out < deposit:
        raise TxInvalid("bad-gov-deposit-not-burned",
                        f"the tx must burn a deposit of {deposit}; it leaves "
                        f"{native_in - native_out}")


def check_vote_period(record: ProposalRecord, height: int) -> None:
    """Rule: a vote is mined above its proposal's block and at most at the end height."""
    if height > record.end:
        raise TxInvalid("bad-gov-vote-ended",
                        f"voting ended at height {record.end}; this block is {height}")


def check_vote_option(record: ProposalRecord, option: int) -> None:
    """Rule: the option is one of the proposal's (1..n)."""
    if not 1 <= option <= record.options:
        raise TxInvalid("bad-gov-vote-option",
                        f"option {option} is not one of 1..{record.options}")


def check_vote_outpoint(
    op: bytes, record: ProposalRecord, owners: set[bytes], state: O2OState
) -> int:
    """Rule: a voting outpoint is a coin of the proposal's asset, created at or
    before the snapshot, not spent at or before it, locked to one of the
    vote's keys; returns its amount."""
    outpoint = wire_outpoint(op)
    found = state.main_tx(outpoint.txid)
    if found is None or outpoint.index >= len(found[0].outputs):
        raise TxInvalid("bad-gov-vote-outpoint-unknown", f"no coin {outpoint} in the chain")
    out = found[0].outputs[outpoint.index]
    if found[1] > record.snapshot:
        raise TxInvalid("bad-gov-vote-outpoint-after-snapshot",
                        f"coin {outpoint} was created at height {found[1]}, after the "
                        f"snapshot at {record.snapshot}")
    spent = spent_at(state, outpoint)
    if spent is not None and spent <= record.snapshot:
        raise TxInvalid("bad-gov-vote-outpoint-spent",
                        f"coin {outpoint} was spent at height {spent}, before the snapshot")
    if out.asset != record.asset:
        raise TxInvalid("bad-gov-vote-outpoint-asset",
                        f"coin {outpoint} is not of the proposal's asset")
    if not isinstance(out.lock, PayToAddress) or out.lock.pubkey_hash not in owners:
        raise TxInvalid("bad-gov-vote-not-owner",
                        f"coin {outpoint} is not locked to a key that signs the vote")
    return out.amount


def check_outpoint_unused(proposal: bytes, op: bytes, voter: bytes, state: O2OState) -> None:
    """Rule: an outpoint counts once per proposal: no other voter's ballot holds it
    (the voter's own earlier ballot is replaced)."""
    holder = state.read((GOV_OUTPOINT.name, proposal + op))
    if holder is not None and holder != voter:
        raise TxInvalid("bad-gov-vote-outpoint-used",
                        f"coin {wire_outpoint(op)} already votes in another voter's ballot")


def check_customer(
    v: GovVote, record: ProposalRecord, params: ConsensusParams, state: O2OState,
    voter: bytes | None = None,
) -> None:
    """Rule: a customers vote has one key and no outpoints, and names a purchase
    mined at or before the snapshot that paid the merchant at least
    ``min_purchase``, bought by that key (the reviews' purchase rule).
    ``voter`` overrides the key's hash (a wallet asking before it signs)."""
    if len(v.keys) != 1 or v.outpoints or v.purchase is None:
        raise TxInvalid("bad-gov-vote-shape", "a customers vote has one key, one purchase "
                                              "and no outpoints")
    found = state.main_tx(v.purchase)
    if found is None or found[1] > record.snapshot:
        raise TxInvalid("bad-gov-vote-no-purchase",
                        f"purchase {v.purchase.hex()[:16]}… is not in the chain at the "
                        f"snapshot (height {record.snapshot})")
    purchase = found[0]
    if record.merchant is None or paid_to(purchase, record.merchant) < max(1, params.min_purchase):
        raise TxInvalid("bad-gov-vote-wrong-merchant",
                        "the purchase did not pay the merchant (at least min_purchase)")
    try:
        buyer = voter if voter is not None else hash160(v.keys[0].pubkey)
        check_review_buyer(buyer, record.merchant, purchase,
                           spent_locks(purchase, state))
    except TxInvalid as exc:
        raise TxInvalid("bad-gov-vote-not-buyer", exc.message) from None


def check_vote(
    tx: Tx, coins: Sequence[Coin], height: int, params: ConsensusParams, state: O2OState
) -> O2OEffect:
    """Rule: a vote names a proposal in the chain, is mined by its end, picks one
    of its options, and has weight by the proposal's kind (tokens: its
    outpoints, each checked and unused by other voters; customers: one
    purchase); it replaces the voter's earlier ballot."""
    v: GovVote = tx.payload  # type: ignore[assignment]
    record = read_proposal(state, v.proposal)
    if record is None:
        raise TxInvalid("bad-gov-vote-no-proposal",
                        f"proposal {v.proposal.hex()[:16]}… is not in the chain")
    check_vote_period(record, height)
    check_vote_option(record, v.option)
    voter = hash160(v.keys[0].pubkey)
    writes: dict[StateKey, bytes | None] = {}
    earlier = read_ballot(state, v.proposal, voter)
    if earlier is not None:  # last vote counts: release the earlier ballot's outpoints
        for op in earlier.outpoints:
            writes[(GOV_OUTPOINT.name, v.proposal + op)] = None
    if record.weight == WEIGHT_TOKENS:
        if v.purchase is not None or not v.outpoints:
            raise TxInvalid("bad-gov-vote-shape", "a tokens vote names outpoints, no purchase")
        owners = {hash160(pair.pubkey) for pair in v.keys}
        weight = 0
        for op in v.outpoints:
            weight += check_vote_outpoint(op, record, owners, state)
            check_outpoint_unused(v.proposal, op, voter, state)
            writes[(GOV_OUTPOINT.name, v.proposal + op)] = voter
    else:
        check_customer(v, record, params, state)
        weight = 1
    ballot = BallotRecord(v.option, weight, height, tx.txid, v.outpoints)
    writes[(GOV_BALLOT.name, v.proposal + voter)] = ballot.to_bytes()
    wire = [txin.prevout.txid + txin.prevout.index.to_bytes(4, "little") for txin in tx.inputs]
    digest = vote_sig_digest(v, params.chain_id, wire)
    return O2OEffect(checks=[(pair.pubkey, pair.signature, digest) for pair in v.keys],
                     writes=writes)


# --------------------------------------------------------------------------
# Claims and registration
# --------------------------------------------------------------------------


def vote_claims(tx: Tx) -> list[StateKey]:
    """A pending vote holds its voter's ballot and its outpoints: the mempool
    keeps one pending vote per voter and per outpoint (a voter changes a vote
    once the earlier one is mined), so a block never holds two that conflict."""
    v: GovVote = tx.payload  # type: ignore[assignment]
    claims = [(GOV_BALLOT.name, v.proposal + hash160(v.keys[0].pubkey))] if v.keys else []
    return claims + [(GOV_OUTPOINT.name, v.proposal + op) for op in v.outpoints]


RULES = {
    GovProposal.TAG: FamilyRules(check_proposal_fields, check_proposal),
    GovVote.TAG: FamilyRules(check_vote_fields, check_vote, vote_claims),
}
"""Payload tag → rules, registered by :mod:`.o2o`."""
