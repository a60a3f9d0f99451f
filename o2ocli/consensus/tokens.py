"""Consensus rules of the token family: loyalty tokens and their rewards.

* A token is issued in two steps.  A :class:`~o2ocli.core.payloads.TokenCommit`
  publishes a salted hash of the symbol and of the lock of its output 0; a
  later block carries the :class:`~o2ocli.core.payloads.TokenIssue` that
  reveals it, spending output 0 of the commit.  Someone who sees the reveal
  in the mempool cannot claim the symbol first: they would need their own
  commitment mined in an earlier block.
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

State (namespaces, see :mod:`.state`): :data:`TOKEN`, :data:`REWARDED`, and
the indexes :data:`TOKEN_AUTHORITY` (derived from the token records a block
leaves) and :data:`TOKEN_BURNS` (written by the burn rule).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from o2ocli.core.encoding import Reader, Writer
from o2ocli.core.locks import PayToAddress, lock_bytes
from o2ocli.core.payloads import (
    REWARD_PURCHASES,
    REWARD_REVIEWS,
    TokenBurn,
    TokenCommit,
    TokenFreeze,
    TokenIssue,
    TokenMint,
    TokenReward,
    authority_asset_id,
    reward_sig_digest,
    token_commitment,
)
from o2ocli.core.tx import NATIVE_ASSET, Coin, Tx
from o2ocli.crypto.hashes import hash160

from .errors import TxInvalid
from .fields import SYMBOL_CHARS, TextField, check_text
from .params import MAX_AMOUNT, ConsensusParams
from .purchases import tx_signers
from .reviews import read_review
from .state import FamilyRules, Namespace, O2OEffect, O2OState, StateKey

__all__ = [
    "STATE_DEPENDENT_REASONS",
    "MIN_SYMBOL_LEN",
    "MAX_SYMBOL_LEN",
    "MAX_TOKEN_NAME",
    "MAX_DECIMALS",
    "TOKEN_NAME",
    "TOKEN",
    "TOKEN_AUTHORITY",
    "REWARDED",
    "TOKEN_BURNS",
    "NAMESPACES",
    "TokenRecord",
    "read_token",
    "rewarded_by",
    "rewarded_key",
    "burn_key",
    "token_writes",
    "check_symbol",
    "check_token_issue_fields",
    "check_token_amount",
    "check_reward_fields",
    "check_token_issue",
    "check_token_mint",
    "check_token_burn",
    "check_token_freeze",
    "check_token_reward",
    "RULES",
]

MIN_SYMBOL_LEN = 3
MAX_SYMBOL_LEN = 12
MAX_TOKEN_NAME = 64
"""Most bytes of a token's display name (UTF-8)."""
MAX_DECIMALS = 8

TOKEN_NAME = TextField("token name", MAX_TOKEN_NAME, False,
                       "bad-token-name-length", "bad-token-name-utf8", "bad-token-name-control")

def _authority_index(asset: bytes, value: bytes) -> dict[StateKey, bytes]:
    """A token left mintable by a block is indexed by its authority asset
    (only a mintable token ever had one; the entry outlives a freeze)."""
    if not TokenRecord.from_bytes(value).mintable:
        return {}
    return {(TOKEN_AUTHORITY.name, authority_asset_id(asset)): asset}


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
})
"""Reasons of this family that depend on the chain a node has seen
(see :data:`o2ocli.consensus.o2o.STATE_DEPENDENT_REASONS`)."""

TOKEN = Namespace("token", "asset id → TokenRecord (the token registry)", claim="token symbol",
                  derive=_authority_index)
REWARDED = Namespace("token-rewarded", "asset id ‖ rewarded txid → txid of the reward",
                     claim="reward (one reward per purchase and token)")
TOKEN_AUTHORITY = Namespace("token-authority", "authority asset id → the token asset id it "
                            "controls", index=True)
TOKEN_BURNS = Namespace("token-burns", "asset id ‖ height u32 BE ‖ burn txid → amount u64 BE "
                        "(a token's burns in height order)", index=True)
NAMESPACES = (TOKEN, TOKEN_AUTHORITY, REWARDED, TOKEN_BURNS)


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


# --------------------------------------------------------------------------
# Keys and reads
# --------------------------------------------------------------------------


def read_token(state: O2OState, asset: bytes) -> TokenRecord | None:
    """The registry entry of token ``asset``, or None."""
    data = state.read((TOKEN.name, asset))
    return None if data is None else TokenRecord.from_bytes(data)


def rewarded_key(asset: bytes, ref: bytes) -> StateKey:
    """The key recording that ``ref`` was rewarded with ``asset`` (also the
    mempool claim of a reward for it)."""
    return (REWARDED.name, asset + ref)


def rewarded_by(state: O2OState, asset: bytes, ref: bytes) -> bytes | None:
    """Txid of the reward that paid ``asset`` for ``ref``, or None."""
    return state.read(rewarded_key(asset, ref))


def burn_key(asset: bytes, height: int, txid: bytes) -> StateKey:
    """The :data:`TOKEN_BURNS` entry of burn ``txid`` of ``asset`` at ``height``."""
    return (TOKEN_BURNS.name, asset + height.to_bytes(4, "big") + txid)


def token_writes(record: TokenRecord) -> dict[StateKey, bytes | None]:
    """The write that stores ``record`` (the authority index is derived from
    the value the block leaves, :data:`TOKEN`'s ``derive``)."""
    return {(TOKEN.name, record.asset): record.to_bytes()}


# --------------------------------------------------------------------------
# Context-free rules
# --------------------------------------------------------------------------


def check_symbol(symbol: bytes) -> None:
    """Rule: a token symbol is 3..12 characters of ``A-Z`` and ``0-9`` (upper
    case: symbols are case-insensitive, and the payload carries the canonical form)."""
    if not MIN_SYMBOL_LEN <= len(symbol) <= MAX_SYMBOL_LEN or not set(symbol) <= SYMBOL_CHARS:
        raise TxInvalid(
            "bad-token-symbol",
            f"symbol must be {MIN_SYMBOL_LEN}-{MAX_SYMBOL_LEN} characters of A-Z and 0-9",
        )


def check_token_issue_fields(tx: Tx) -> None:
    """Rule: an issue has a valid symbol (:func:`check_symbol`), a display name
    of 1..64 bytes of text (:data:`TOKEN_NAME`) and 0..8 decimals."""
    payload: TokenIssue = tx.payload  # type: ignore[assignment]
    check_symbol(payload.symbol)
    check_text(payload.name, TOKEN_NAME)
    if payload.decimals > MAX_DECIMALS:
        raise TxInvalid("bad-token-decimals", f"decimals must be 0..{MAX_DECIMALS}")


def check_token_amount(tx: Tx) -> None:
    """Rule: a mint or a burn moves 1..MAX_AMOUNT base units."""
    payload: TokenMint | TokenBurn = tx.payload  # type: ignore[assignment]
    if not 1 <= payload.amount <= MAX_AMOUNT:
        raise TxInvalid("bad-token-amount", "mint or burn amount must be 1..MAX_AMOUNT")


def check_reward_fields(tx: Tx) -> None:
    """Rule: a reward has a known kind, lists 1+ distinct txids and carries
    1+ distinct merchant keys."""
    payload: TokenReward = tx.payload  # type: ignore[assignment]
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


# --------------------------------------------------------------------------
# Contextual rules
# --------------------------------------------------------------------------


def _asset_total(items: Sequence[object], asset: bytes) -> int:
    return sum(o.amount for o in items if o.asset == asset)  # type: ignore[attr-defined]


def _require_token(state: O2OState, asset: bytes) -> TokenRecord:
    record = read_token(state, asset)
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


def check_token_issue(
    tx: Tx, coins: Sequence[Coin], height: int, params: ConsensusParams, state: O2OState
) -> O2OEffect:
    """Rule: an issue (the reveal) spends output 0 of a token commit mined in
    an earlier block, matches its commitment, claims a symbol not yet issued,
    creates one authority output of 1 if and only if mintable (a fixed supply
    needs an initial supply), and burns the chain's ``token_issue_fee``."""
    payload: TokenIssue = tx.payload  # type: ignore[assignment]
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
    if state.read((TOKEN.name, asset)) is not None:
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
    return O2OEffect(deltas=deltas, burned=params.token_issue_fee, writes=token_writes(record))


def check_token_mint(
    tx: Tx, coins: Sequence[Coin], height: int, params: ConsensusParams, state: O2OState
) -> O2OEffect:
    """Rule: a mint names an issued, mintable token, spends its authority
    output (and recreates it), and keeps the supply within MAX_AMOUNT."""
    payload: TokenMint = tx.payload  # type: ignore[assignment]
    record = _require_token(state, payload.asset)
    authority = _require_authority(coins, record, "mint")
    if record.supply + payload.amount > MAX_AMOUNT:
        raise TxInvalid("bad-token-supply-overflow", f"{record.symbol} supply would overflow")
    updated = replace(record, supply=record.supply + payload.amount)
    return O2OEffect(deltas={payload.asset: payload.amount, authority: 0},
                     writes=token_writes(updated))


def check_token_burn(
    tx: Tx, coins: Sequence[Coin], height: int, params: ConsensusParams, state: O2OState
) -> O2OEffect:
    """Rule: a burn names an issued token and destroys no more of it than the
    tx's inputs hold (it is listed in the :data:`TOKEN_BURNS` index)."""
    payload: TokenBurn = tx.payload  # type: ignore[assignment]
    record = _require_token(state, payload.asset)
    held = _asset_total([c.output for c in coins], payload.asset)
    if held < payload.amount:
        raise TxInvalid(
            "bad-token-burn-exceeds-inputs",
            f"burns {payload.amount} {record.symbol} but its inputs hold {held}",
        )
    updated = replace(record, supply=record.supply - payload.amount)
    writes = token_writes(updated)
    writes[burn_key(payload.asset, height, tx.txid)] = payload.amount.to_bytes(8, "big")
    return O2OEffect(deltas={payload.asset: -payload.amount}, writes=writes)


def check_token_freeze(
    tx: Tx, coins: Sequence[Coin], height: int, params: ConsensusParams, state: O2OState
) -> O2OEffect:
    """Rule: a freeze names an issued, mintable token and destroys its
    authority output (spends it, creates none): the supply is fixed from then on."""
    payload: TokenFreeze = tx.payload  # type: ignore[assignment]
    record = _require_token(state, payload.asset)
    authority = _require_authority(coins, record, "freeze")
    return O2OEffect(deltas={authority: -1},
                     writes=token_writes(replace(record, mintable=False)))


def check_token_reward(
    tx: Tx, coins: Sequence[Coin], height: int, params: ConsensusParams, state: O2OState
) -> O2OEffect:
    """Rule: a reward pays an issued token to someone other than its merchant
    keys, for purchases (reviews) in the chain that paid (are about) one of
    the keys, not paid by one of them, each not yet rewarded with that token;
    every merchant key signs the payload with the tx's inputs."""
    payload: TokenReward = tx.payload  # type: ignore[assignment]
    record = _require_token(state, payload.asset)
    signers = {hash160(k.pubkey) for k in payload.keys}
    merchant_locks = {PayToAddress(s) for s in signers}
    if not any(o.asset == payload.asset and o.lock not in merchant_locks for o in tx.outputs):
        raise TxInvalid(
            "bad-token-reward-empty",
            f"the reward pays no {record.symbol} to anyone but the merchant",
        )
    writes: dict[StateKey, bytes | None] = {}
    for ref in payload.refs:
        key = rewarded_key(payload.asset, ref)
        earlier = state.read(key)
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
            review = read_review(state, ref)
            if review is None:
                raise TxInvalid(
                    "bad-token-reward-unknown", f"review {ref.hex()[:16]}… is not in the chain"
                )
            if review.merchant not in signers:
                raise TxInvalid(
                    "bad-token-reward-not-merchant",
                    f"review {ref.hex()[:16]}… is not about a merchant key of the reward",
                )
        writes[key] = tx.txid
    outpoints = tx.wire_outpoints()
    digest = reward_sig_digest(payload, params.chain_id, outpoints)
    checks = [(k.pubkey, k.signature, digest) for k in payload.keys]
    return O2OEffect(checks=checks, writes=writes)


# --------------------------------------------------------------------------
# Claims and registration
# --------------------------------------------------------------------------


def issue_claims(tx: Tx) -> list[StateKey]:
    """An issue claims its symbol."""
    return [(TOKEN.name, tx.payload.asset)]  # type: ignore[attr-defined]


def reward_claims(tx: Tx) -> list[StateKey]:
    """A reward claims (token, ref) for each ref it rewards."""
    payload: TokenReward = tx.payload  # type: ignore[assignment]
    return [rewarded_key(payload.asset, ref) for ref in payload.refs]


RULES = {
    TokenCommit.TAG: FamilyRules(),
    TokenIssue.TAG: FamilyRules(check_token_issue_fields, check_token_issue, issue_claims),
    TokenMint.TAG: FamilyRules(check_token_amount, check_token_mint),
    TokenBurn.TAG: FamilyRules(check_token_amount, check_token_burn),
    TokenFreeze.TAG: FamilyRules(contextual=check_token_freeze),
    TokenReward.TAG: FamilyRules(check_reward_fields, check_token_reward, reward_claims),
}
"""Payload tag → rules, registered by :mod:`.o2o`."""
