"""Generic O2O state: keys, the state the rules read, the effect they return.

The O2O families (:mod:`.tokens`, :mod:`.reviews`, :mod:`.trace`,
:mod:`.consent`, :mod:`.escrow`) keep their chain state as key → value pairs.
A key is a :data:`StateKey`: a *namespace* name (a short string declared once
by the family that owns it, as a :class:`Namespace`) and an *id* (bytes the
family builds, e.g. an asset id or a txid).  A value is bytes the family
encodes (a record's ``to_bytes``, a txid, or empty for an index entry).

Consensus never spells storage bytes: :mod:`o2ocli.storage.schema` maps each
namespace name to the one-byte key prefix it has on disk (so a LevelDB key is
``prefix ‖ id``), and the chainstate reads, writes and undoes the pairs
without knowing what they mean.  A family adds a namespace by declaring it in
its module (listed in its ``NAMESPACES``) and one line in the schema's table.

A rule reads the state of the parent block through :class:`O2OState` (two
methods: :meth:`~O2OState.read` a key, :meth:`~O2OState.main_tx` a main-chain
transaction) and returns an :class:`O2OEffect`: asset supply changes, native
coin burned, extra signature checks, and the :attr:`~O2OEffect.writes`
(key → new value, or None to delete).  :class:`O2OBlockView` layers the
writes of a block's earlier transactions over the parent's state.

Some namespaces are *indexes* (``index=True``): written with the state for
queries (reviews by merchant, …) and never read by a rule.  An index entry is
written by the rule itself (in its effect), derived from the final value a
block leaves under a key (:attr:`Namespace.derive`), or derived from the whole
block (a family's block indexer, see :func:`o2ocli.consensus.o2o.block_writes`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from o2ocli.core.tx import Coin, Tx

from .locks import SigCheck
from .params import ConsensusParams

__all__ = [
    "StateKey",
    "Namespace",
    "O2OState",
    "EMPTY_STATE",
    "O2OEffect",
    "NO_EFFECT",
    "O2OBlockView",
    "FamilyRules",
]

StateKey = tuple[str, bytes]
"""(namespace name, id): one key of the O2O state."""


@dataclass(frozen=True, slots=True)
class Namespace:
    """One key space of the O2O state, declared by the family that owns it."""

    name: str
    """Stable name (the storage schema maps it to a key prefix)."""
    doc: str
    """What an id and a value are."""
    index: bool = False
    """True for a query index that no rule reads."""
    claim: str | None = None
    """For a one-time claim (:attr:`FamilyRules.claims`): what is claimed, for people."""
    derive: Callable[[bytes, bytes], dict[StateKey, bytes]] | None = None
    """Index writes derived from the value a block leaves under a key of this
    namespace (id, value → writes), written right after it."""

    def key(self, ident: bytes) -> StateKey:
        """The key of ``ident`` in this namespace."""
        return (self.name, ident)


class O2OState(Protocol):
    """What the O2O rules read from the chain (as of the parent block)."""

    def read(self, key: StateKey) -> bytes | None:
        """The value stored under ``key``, or None."""
        ...

    def main_tx(self, txid: bytes) -> tuple[Tx, int] | None:
        """A main-chain transaction and its height, or None."""
        ...


class _EmptyState:
    """A chain with no O2O state and no transactions (for rules run without one)."""

    def read(self, key: StateKey) -> bytes | None:
        return None

    def main_tx(self, txid: bytes) -> tuple[Tx, int] | None:
        return None


EMPTY_STATE: O2OState = _EmptyState()


@dataclass(slots=True)
class O2OEffect:
    """What one O2O transaction does, as found by its family's contextual rule."""

    deltas: dict[bytes, int] = field(default_factory=dict)
    """Asset → allowed ``outputs - inputs`` (0 for any asset not listed)."""
    burned: int = 0
    """Native coin destroyed (not claimable as a fee)."""
    checks: list[SigCheck] = field(default_factory=list)
    """Payload signatures to verify."""
    writes: dict[StateKey, bytes | None] = field(default_factory=dict)
    """State key → new value (None deletes the key)."""


NO_EFFECT = O2OEffect()
"""The effect of a payload without O2O rules (shared: never mutate it)."""

_ABSENT = object()


class O2OBlockView:
    """An :class:`O2OState` plus the writes of the transactions checked so far
    in one block; :attr:`changes` is what connecting the block records."""

    __slots__ = ("base", "changes", "_writes", "_txs")

    def __init__(self, base: O2OState) -> None:
        self.base = base
        self.changes = O2OEffect()
        self._writes = self.changes.writes
        self._txs: dict[bytes, tuple[Tx, int] | None] = {}
        """main_tx answers, kept for the block (the parent's chain does not change)."""

    def read(self, key: StateKey) -> bytes | None:
        found = self._writes.get(key, _ABSENT)
        if found is _ABSENT:
            return self.base.read(key)
        return found  # type: ignore[return-value]

    def main_tx(self, txid: bytes) -> tuple[Tx, int] | None:
        found = self._txs.get(txid, _ABSENT)
        if found is _ABSENT:
            found = self._txs[txid] = self.base.main_tx(txid)
        return found  # type: ignore[return-value]

    def apply(self, effect: O2OEffect) -> None:
        """Record the writes of a transaction that passed."""
        if effect.writes:
            self._writes.update(effect.writes)


PayloadCheck = Callable[[Tx], None]
"""A context-free rule of one payload type (raises TxInvalid)."""
ContextualCheck = Callable[[Tx, Sequence[Coin], int, ConsensusParams, O2OState], O2OEffect]
"""A contextual rule: (tx, spent coins, height, params, state) → effect."""
Claims = Callable[[Tx], list[StateKey]]
"""The one-time keys a tx claims (a mempool keeps one pending tx per claim)."""


def _no_check(tx: Tx) -> None:
    return None


def _no_effect(tx: Tx, coins: Sequence[Coin], height: int, params: ConsensusParams,
               state: O2OState) -> O2OEffect:
    return O2OEffect()


def _no_claims(tx: Tx) -> list[StateKey]:
    return []


@dataclass(frozen=True, slots=True)
class FamilyRules:
    """The rules of one payload type, registered under its tag by its family."""

    check: PayloadCheck = _no_check
    """Context-free rule(s)."""
    contextual: ContextualCheck = _no_effect
    """Contextual rule(s) returning the effect."""
    claims: Claims = _no_claims
    """One-time claims."""
