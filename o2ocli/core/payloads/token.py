"""Loyalty tokens: commit, issue, mint, burn, freeze, reward (tags 0x10..0x15)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from o2ocli.crypto.hashes import sha256d

from ..encoding import Writer, domain_preimage
from .base import KeySig, KeySigs, PayloadType, bound_body, register
from .spec import U8, U64, Bytes, Fixed, Flag, List, wire

__all__ = [
    "TokenCommit",
    "TokenIssue",
    "TokenMint",
    "TokenBurn",
    "TokenFreeze",
    "TokenReward",
    "MAX_SYMBOL_FIELD",
    "MAX_NAME_FIELD",
    "MAX_REWARD_REFS",
    "MAX_REWARD_KEYS",
    "REWARD_PURCHASES",
    "REWARD_REVIEWS",
    "REWARD_SIG_TAG",
    "token_asset_id",
    "authority_asset_id",
    "token_commitment",
    "reward_sig_digest",
]

MAX_SYMBOL_FIELD = 64
"""Decoder cap on a symbol field (the consensus rule allows 3..12 characters)."""
MAX_NAME_FIELD = 256
"""Decoder cap on a token name field (the consensus rule allows 1..64 bytes)."""
MAX_REWARD_REFS = 1000
"""Most txids one reward payload may list."""
MAX_REWARD_KEYS = 100
"""Most merchant keys one reward payload may carry."""
REWARD_PURCHASES = 0
"""Reward kind: the listed txids are purchases paid to the rewarding merchant."""
REWARD_REVIEWS = 1
"""Reward kind: the listed txids are reviews of the rewarding merchant."""
REWARD_SIG_TAG = b"o2o/reward"


def token_asset_id(symbol: str) -> bytes:
    """The asset id of the token with ``symbol`` (case-insensitive)."""
    return sha256d(b"o2o/token\x00" + symbol.upper().encode())


def authority_asset_id(asset: bytes) -> bytes:
    """The asset id of the mint-authority output of token ``asset``."""
    return sha256d(b"o2o/authority\x00" + asset)


def token_commitment(symbol: str, salt: bytes, owner_lock: bytes) -> bytes:
    """The commitment a :class:`TokenCommit` publishes for ``symbol`` and ``salt``,
    bound to ``owner_lock`` (the encoded lock of the commit's output 0, which
    the reveal spends): a copier who republishes the 32 bytes in a commit of
    its own cannot reveal against it, since its output 0 has another lock."""
    w = Writer()
    w.raw(b"o2o/token-commit\x00")
    w.var_bytes(symbol.upper().encode())
    w.raw(salt)
    w.var_bytes(owner_lock)
    return sha256d(w.getvalue())


@register(0x10)
@dataclass(frozen=True, slots=True)
class TokenCommit(PayloadType):
    """Step 1 of issuing a token: commits to a salted hash of the symbol, so
    nobody watching the mempool learns the symbol before it is claimed.  Its
    output 0 is what the reveal must spend (so only the committer can reveal)."""

    commitment: bytes = wire(Fixed(32, "token commitment"))
    """:func:`token_commitment` of the symbol and salt."""


@register(0x11)
@dataclass(frozen=True, slots=True)
class TokenIssue(PayloadType):
    """Step 2 of issuing: reveals the symbol and creates the token.

    The transaction spends output 0 of the matching :class:`TokenCommit` (mined
    in an earlier block) as its first input, creates the initial supply as
    outputs of :func:`token_asset_id` and, if ``mintable``, one output of
    :func:`authority_asset_id` with amount 1.  It burns the chain's issuance fee.
    """

    symbol: bytes = wire(Bytes(MAX_SYMBOL_FIELD, "token symbol"))
    """ASCII symbol, upper case (checked by consensus)."""
    name: bytes = wire(Bytes(MAX_NAME_FIELD, "token name"))
    """Display name, UTF-8."""
    decimals: int = wire(U8("token decimals"))
    """Display decimals, 0..8 (checked by consensus)."""
    mintable: bool = wire(Flag("token mintable flag"))
    """True: an authority output is created and more can be minted."""
    salt: bytes = wire(Fixed(32, "token salt"))
    """The 32-byte salt of the commitment."""

    @property
    def asset(self) -> bytes:
        """The asset id this issue creates."""
        return sha256d(b"o2o/token\x00" + self.symbol.upper())


@register(0x12)
@dataclass(frozen=True, slots=True)
class TokenMint(PayloadType):
    """Creates ``amount`` more of ``asset``; the tx spends and recreates the
    token's authority output."""

    asset: bytes = wire(Fixed(32, "mint asset"))
    """Token asset id."""
    amount: int = wire(U64("mint amount"))
    """Base units created."""


@register(0x13)
@dataclass(frozen=True, slots=True)
class TokenBurn(PayloadType):
    """Destroys ``amount`` of ``asset`` from the tx's own inputs."""

    asset: bytes = wire(Fixed(32, "burn asset"))
    """Token asset id."""
    amount: int = wire(U64("burn amount"))
    """Base units destroyed."""


@register(0x14)
@dataclass(frozen=True, slots=True)
class TokenFreeze(PayloadType):
    """Destroys the authority output of ``asset``: its supply is fixed forever."""

    asset: bytes = wire(Fixed(32, "freeze asset"))
    """Token asset id."""


@register(0x15)
@dataclass(frozen=True, slots=True)
class TokenReward(PayloadType):
    """A payment of ``asset`` that rewards the listed purchases (or reviews);
    each can be rewarded once per token.  ``keys`` are the merchant's: each key
    signs :func:`reward_sig_digest`, and every listed purchase must have paid
    (every review must be about) one of their addresses."""

    asset: bytes = wire(Fixed(32, "reward asset"))
    """Token asset id paid as the reward."""
    kind: int = wire(U8("reward kind"))
    """:data:`REWARD_PURCHASES` or :data:`REWARD_REVIEWS`."""
    refs: tuple[bytes, ...] = wire(List(Fixed(32, "reward ref"), MAX_REWARD_REFS, "reward refs"))
    """Txids of the rewarded purchases or reviews."""
    keys: tuple[KeySig, ...] = wire(
        KeySigs(MAX_REWARD_KEYS, "reward keys", "reward pubkey", "reward signature")
    )
    """(pubkey, signature) of each merchant address involved; the signed part
    lists the pubkeys only."""


def reward_sig_digest(
    reward: TokenReward, chain_id: str, outpoints: Sequence[bytes] = ()
) -> bytes:
    """The digest each merchant key of a reward signs: the payload's fields and
    the outpoint of every input of the carrying tx (``txid ‖ index`` as u32
    little-endian, the wire form), so the signed
    payload cannot be copied into another transaction (and used up by someone
    else)."""
    return sha256d(domain_preimage(REWARD_SIG_TAG, chain_id, bound_body(reward, outpoints)))

