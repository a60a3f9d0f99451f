"""Governance: proposals and votes (tags 0x50, 0x51)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from o2ocli.crypto.hashes import sha256d

from ..encoding import domain_preimage
from .base import KeySig, KeySigs, PayloadType, bound_body, register
from .spec import U8, U32, U64, Bytes, Fixed, List, Optional, wire

__all__ = [
    "GovProposal",
    "GovVote",
    "WEIGHT_TOKENS",
    "WEIGHT_CUSTOMERS",
    "MAX_GOV_TITLE_FIELD",
    "MAX_GOV_TEXT_FIELD",
    "MAX_GOV_OPTION_FIELD",
    "MAX_GOV_OPTIONS_FIELD",
    "MAX_VOTE_OUTPOINTS",
    "MAX_VOTE_KEYS",
    "VOTE_SIG_TAG",
    "vote_sig_digest",
]

WEIGHT_TOKENS = 0
"""Voting weight: one vote per base unit of the proposal's asset held at the snapshot."""
WEIGHT_CUSTOMERS = 1
"""Voting weight: one vote per distinct buyer key with a purchase from the merchant."""
MAX_GOV_TITLE_FIELD = 512
"""Decoder cap on a proposal title (the consensus rule allows 1..120 bytes)."""
MAX_GOV_TEXT_FIELD = 8192
"""Decoder cap on a proposal text (the consensus rule allows at most 4000 bytes)."""
MAX_GOV_OPTION_FIELD = 512
"""Decoder cap on one option's text (the consensus rule allows 1..100 bytes)."""
MAX_GOV_OPTIONS_FIELD = 64
"""Decoder cap on the number of options (the consensus rule allows 2..16)."""
MAX_VOTE_OUTPOINTS = 256
"""Most outpoints one vote may name."""
MAX_VOTE_KEYS = 16
"""Most keys that sign one vote."""
VOTE_SIG_TAG = b"o2o/gov-vote"


@register(0x50)
@dataclass(frozen=True, slots=True)
class GovProposal(PayloadType):
    """A proposal put to a vote.  Its id is its txid; its snapshot is the
    height of the block it is mined in, its end that height plus
    ``voting_blocks``.  The tx burns ``deposit`` native coin."""

    title: bytes = wire(Bytes(MAX_GOV_TITLE_FIELD, "proposal title"))
    """UTF-8 title (checked by consensus)."""
    text: bytes = wire(Bytes(MAX_GOV_TEXT_FIELD, "proposal text"))
    """UTF-8 text, may be empty (checked by consensus)."""
    options: tuple[bytes, ...] = wire(
        List(Bytes(MAX_GOV_OPTION_FIELD, "proposal option"), MAX_GOV_OPTIONS_FIELD,
             "proposal options"))
    """The choices, numbered from 1 in this order."""
    weight: int = wire(U8("proposal weight"))
    """:data:`WEIGHT_TOKENS` or :data:`WEIGHT_CUSTOMERS`."""
    asset: bytes = wire(Fixed(32, "proposal asset"))
    """The asset whose holders vote (tokens weight): a token id, or 32 zero
    bytes for the native coin."""
    merchant: bytes | None = wire(
        Optional(Fixed(20, "proposal merchant"), "proposal merchant flag"))
    """Pubkey hash of the merchant whose customers vote (customers weight only)."""
    voting_blocks: int = wire(U32("proposal voting blocks"))
    """Votes are accepted in the ``voting_blocks`` blocks after the proposal's."""
    deposit: int = wire(U64("proposal deposit"))
    """Native coin (base units) the tx burns; at least the chain's ``gov_deposit``."""


@register(0x51)
@dataclass(frozen=True, slots=True)
class GovVote(PayloadType):
    """A ballot on a proposal.  ``keys[0]`` is the voter; every key signs
    :func:`vote_sig_digest`.  Tokens weight: ``outpoints`` are coins of the
    proposal's asset, unspent at the snapshot, each owned by one of the keys.
    Customers weight: ``purchase`` is a purchase by the one key from the merchant."""

    proposal: bytes = wire(Fixed(32, "vote proposal"))
    """Txid of the proposal."""
    option: int = wire(U8("vote option"))
    """The chosen option, from 1."""
    outpoints: tuple[bytes, ...] = wire(
        List(Fixed(36, "vote outpoint"), MAX_VOTE_OUTPOINTS, "vote outpoints"))
    """Wire-form outpoints (txid ‖ index u32 little-endian) voting with their amounts."""
    purchase: bytes | None = wire(Optional(Fixed(32, "vote purchase"), "vote purchase flag"))
    """Txid of the voter's purchase (customers weight)."""
    keys: tuple[KeySig, ...] = wire(
        KeySigs(MAX_VOTE_KEYS, "vote keys", "vote pubkey", "vote signature"))
    """(pubkey, signature) of the voter and of every other owner of a named outpoint."""


def vote_sig_digest(vote: GovVote, chain_id: str, outpoints: Sequence[bytes] = ()) -> bytes:
    """The digest each key of a vote signs: the vote's fields (pubkeys, not
    signatures) and the wire-form outpoints of the carrying tx's inputs, so an
    old ballot cannot be replayed in a new tx to undo a changed vote."""
    return sha256d(domain_preimage(VOTE_SIG_TAG, chain_id, bound_body(vote, outpoints)))
