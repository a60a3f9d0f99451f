"""Reads of the chainstate beyond the blocks: the UTXO set's summary, the
address indexes, and the O2O state and its query indexes.

:class:`ChainQueries` is mixed into :class:`~o2ocli.storage.chainstate.ChainState`:
it reads ``self.db`` and the chainstate's ``get`` (a coin) and ``get_tx``.
:meth:`ChainQueries.read` and :meth:`ChainQueries.main_tx` are the
:class:`~o2ocli.consensus.state.O2OState` the O2O rules read; the typed
helpers below them decode through the families' readers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from o2ocli.consensus import consent, escrow, gov, profile, reviews, tokens, trace
from o2ocli.consensus.consent import ConsentRecord
from o2ocli.consensus.gov import ProposalRecord
from o2ocli.consensus.reviews import ReviewRecord
from o2ocli.consensus.state import StateKey
from o2ocli.consensus.tokens import TokenRecord
from o2ocli.consensus.trace import ItemRecord
from o2ocli.core.block import BlockHeader
from o2ocli.core.encoding import DecodeError
from o2ocli.core.tx import Coin, Outpoint, Tx

from . import schema as k
from .db import Database
from .utxocommit import UtxoCommitment, scan_commitment

__all__ = ["ChainQueries", "UtxoStats"]


@dataclass(frozen=True, slots=True)
class UtxoStats:
    """A summary of the UTXO set that two nodes can compare."""

    height: int
    """Tip height the stats are for."""
    tip: bytes
    """Tip hash the stats are for."""
    hash: bytes
    """MuHash3072 digest of the set (:mod:`.utxocommit`)."""
    count: int
    """Number of unspent outputs."""
    totals: dict[bytes, int]
    """Asset id → sum of unspent amounts."""


class ChainQueries:
    """Index and O2O reads over ``self.db`` (see the module docstring)."""

    db: Database

    # Provided by ChainState:
    def get(self, outpoint: Outpoint) -> Coin | None:
        """The unspent coin at ``outpoint``, or None."""
        raise NotImplementedError

    def get_tx(self, txid: bytes) -> tuple[Tx, bytes, int] | None:
        """(tx, block hash, height) of a main-chain transaction, or None."""
        raise NotImplementedError

    def _tip_header(self) -> BlockHeader:
        raise NotImplementedError

    def address_coins(self, pubkey_hash: bytes) -> list[tuple[Outpoint, Coin]]:
        """Unspent outputs whose lock involves ``pubkey_hash``."""
        result = []
        for key in self.db.iterate_keys(k.ADDR_UTXO + pubkey_hash):
            outpoint = Outpoint.from_bytes(key[21:])
            coin = self.get(outpoint)
            if coin is not None:
                result.append((outpoint, coin))
        return result

    def address_history(self, pubkey_hash: bytes) -> list[tuple[int, bytes]]:
        """(height, txid) of main-chain txs touching ``pubkey_hash``, oldest first."""
        prefix = k.ADDR_HISTORY + pubkey_hash
        return [
            (int.from_bytes(key[21:25], "big"), key[25:57])
            for key in self.db.iterate_keys(prefix)
        ]

    # ---------------------------------------------------- O2O state (consensus)
    def read(self, key: StateKey) -> bytes | None:
        """The O2O state value under ``key`` (namespace, id), or None."""
        return self.db.get(k.O2O_NAMESPACES[key[0]] + key[1])

    def main_tx(self, txid: bytes) -> tuple[Tx, int] | None:
        """A main-chain tx and its height, or None."""
        found = self.get_tx(txid)
        return None if found is None else (found[0], found[2])

    # ------------------------------------------------------- O2O query helpers
    def token(self, asset: bytes) -> TokenRecord | None:
        """The registry record of token ``asset``, or None."""
        return tokens.read_token(self, asset)

    def rewarded_by(self, asset: bytes, ref: bytes) -> bytes | None:
        """Txid of the reward that paid ``asset`` for ``ref``, or None."""
        return tokens.rewarded_by(self, asset, ref)

    def review_of_purchase(self, purchase: bytes) -> bytes | None:
        """Txid of the review of ``purchase``, or None."""
        return reviews.review_of_purchase(self, purchase)

    def review(self, txid: bytes) -> ReviewRecord | None:
        """The record of review ``txid``, or None."""
        return reviews.read_review(self, txid)

    def reply_of(self, review: bytes) -> bytes | None:
        """Txid of the reply to ``review``, or None."""
        return reviews.reply_of(self, review)

    def iter_tokens(self) -> Iterator[TokenRecord]:
        """Every issued token, in asset id order."""
        for _, value in self.db.iterate(k.O2O_NAMESPACES[tokens.TOKEN.name]):
            yield TokenRecord.from_bytes(value)

    def item(self, asset: bytes) -> ItemRecord | None:
        """The registration of item ``asset``, or None."""
        return trace.read_item(self, asset)

    def consent(self, txid: bytes) -> ConsentRecord | None:
        """The consent grant ``txid``, or None."""
        return consent.read_consent(self, txid)

    def revoked_by(self, grant: bytes) -> bytes | None:
        """Txid of the revocation of ``grant``, or None."""
        return consent.revoked_by(self, grant)

    def _index_keys(self, namespace: str, ident: bytes) -> Iterator[bytes]:
        """Ids (without ``ident``) of the index entries under ``namespace`` ‖ ``ident``."""
        prefix = k.O2O_NAMESPACES[namespace] + ident
        skip = len(prefix)
        for key in self.db.iterate_keys(prefix):
            yield key[skip:]

    def item_moves(self, asset: bytes) -> list[tuple[int, bytes]]:
        """(height, txid) of every main-chain tx that moved item ``asset``, oldest first."""
        return [(int.from_bytes(rest[:4], "big"), rest[4:36])
                for rest in self._index_keys(trace.ITEM_MOVES.name, asset)]

    def consents_by(self, prefix: bytes, pkh: bytes) -> list[bytes]:
        """Grant txids by user (``prefix`` ``k.BY_USER``) or grantee (``k.BY_GRANTEE``)."""
        return [key[25:57] for key in self.db.iterate_keys(prefix + pkh)]

    def profile_history(self, user: bytes) -> list[tuple[int, bytes]]:
        """(height, txid) of every profile commitment of ``user``, oldest first."""
        return [(int.from_bytes(rest[:4], "big"), rest[4:36])
                for rest in self._index_keys(profile.PROFILE_HISTORY.name, user)]

    def escrow_settlement(self, outpoint: Outpoint) -> tuple[bytes, int] | None:
        """(spending txid, path) of a settled escrow output, or None."""
        return escrow.read_settlement(self, outpoint.to_bytes())

    def token_burns(self, asset: bytes, limit: int) -> list[tuple[int, bytes, int]]:
        """(height, txid, amount) of the newest ``limit`` main-chain burns of
        token ``asset``, newest first."""
        prefix = k.O2O_NAMESPACES[tokens.TOKEN_BURNS.name] + asset
        skip = len(prefix)
        found = []
        for key, value in self.db.iterate(prefix, reverse=True):
            if len(found) >= limit:
                break
            found.append((int.from_bytes(key[skip:skip + 4], "big"), key[skip + 4:skip + 36],
                          int.from_bytes(value, "big")))
        return found

    def token_of_authority(self, authority: bytes) -> TokenRecord | None:
        """The token whose mint authority asset is ``authority``, or None."""
        asset = self.read((tokens.TOKEN_AUTHORITY.name, authority))
        return None if asset is None else self.token(asset)

    def asset_coins(self, asset: bytes) -> list[tuple[Outpoint, Coin]]:
        """Unspent outputs of a non-native ``asset``."""
        result = []
        for key in self.db.iterate_keys(k.ASSET_UTXO + asset):
            outpoint = Outpoint.from_bytes(key[33:])
            coin = self.get(outpoint)
            if coin is not None:
                result.append((outpoint, coin))
        return result

    def reviews_by_merchant(self, merchant: bytes) -> list[bytes]:
        """Txids of the reviews of ``merchant``, oldest first."""
        return [rest[4:36] for rest in self._index_keys(reviews.REVIEWS_BY_MERCHANT.name,
                                                        merchant)]

    def reviews_by_reviewer(self, reviewer: bytes) -> list[bytes]:
        """Txids of the reviews written by ``reviewer``, oldest first."""
        return [rest[4:36] for rest in self._index_keys(reviews.REVIEWS_BY_REVIEWER.name,
                                                        reviewer)]

    def gov_proposal(self, txid: bytes) -> ProposalRecord | None:
        """The record of governance proposal ``txid``, or None."""
        return gov.read_proposal(self, txid)

    def iter_gov_proposals(self) -> Iterator[tuple[bytes, ProposalRecord]]:
        """(txid, record) of every proposal, in txid order."""
        for key, value in self.db.iterate(k.O2O_NAMESPACES[gov.GOV_PROPOSAL.name]):
            yield key[1:], ProposalRecord.from_bytes(value)

    def gov_ballots(self, proposal: bytes) -> Iterator[tuple[bytes, bytes]]:
        """(voter pubkey hash, encoded :class:`~o2ocli.consensus.gov.BallotRecord`)
        of every current ballot on ``proposal``, in voter order."""
        prefix = k.O2O_NAMESPACES[gov.GOV_BALLOT.name] + proposal
        for key, value in self.db.iterate(prefix):
            yield key[33:], value

    def coin_spent_at(self, outpoint: Outpoint) -> int | None:
        """Height of the main-chain block that spent ``outpoint``, or None."""
        return gov.spent_at(self, outpoint)

    def iter_utxos(self) -> Iterator[tuple[Outpoint, Coin]]:
        """Every unspent output, in key order."""
        for key, value in self.db.iterate(k.UTXO):
            yield Outpoint.from_bytes(key[1:]), Coin.from_bytes(value)

    def utxo_stats(self, block_hash: bytes | None = None) -> UtxoStats:
        """Hash, count and per-asset totals of the UTXO set after the tip (or
        after the main-chain block ``block_hash``): one read of the stored
        commitment (:mod:`.utxocommit`), never a scan.  Raises
        :class:`KeyError` for a block that is not on the main chain."""
        header = self._tip_header()
        if block_hash is not None and block_hash != header.hash:
            header = self._header_of(block_hash)
        data = self.db.get(k.commit_key(header.hash))
        if data is None:
            raise KeyError(f"no UTXO commitment stored for block {header.hash.hex()}")
        try:
            c = UtxoCommitment.from_bytes(data)
        except DecodeError as exc:
            raise KeyError(f"the UTXO commitment of block {header.hash.hex()} is unreadable: "
                           f"{exc}") from None
        return UtxoStats(header.height, header.hash, c.hash, c.count, c.totals)

    def scan_utxo_stats(self) -> UtxoStats:
        """:meth:`utxo_stats` recomputed from a full scan of the UTXO set (slow:
        every coin is read and hashed; ``chain verify-utxo``).  Raises
        :class:`~o2ocli.core.encoding.DecodeError` on an undecodable coin."""
        c = scan_commitment((key[1:], value) for key, value in self.db.iterate(k.UTXO))
        tip = self._tip_header()
        return UtxoStats(tip.height, tip.hash, c.hash, c.count, c.totals)

    def _header_of(self, block_hash: bytes) -> BlockHeader:
        raise NotImplementedError

    def utxo_set_hash(self) -> bytes:
        """Just the hash part of :meth:`utxo_stats`."""
        return self.utxo_stats().hash
