"""What the P2P layer needs from the node: the :class:`NodeLink` protocol.

:mod:`o2ocli.p2p` never imports :mod:`o2ocli.node` (see docs/architecture.rst).
The peer manager and the block sync are handed an object with the members
below; the running :class:`o2ocli.node.runtime.Node` has them (structurally:
it does not name this protocol), and tests hand in smaller stand-ins.

The node's database is reached through :attr:`NodeLink.db`, a plain key-value
store: P2P keeps its address book and operator bans there, under the key
prefixes of :mod:`o2ocli.storage.schema`, and reads stored blocks to serve
them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from o2ocli.consensus.poa import PoAParams, Snapshot
from o2ocli.core.block import Block
from o2ocli.core.finality import Evidence, FinalityVote
from o2ocli.core.tx import Tx
from o2ocli.storage.chainstate import IndexEntry

__all__ = [
    "ChainStateView",
    "ChainView",
    "KeyValueStore",
    "MempoolView",
    "NetworkSpec",
    "NodeLink",
    "TxRejection",
    "WriteBatch",
]


class WriteBatch(Protocol):
    """An atomic group of writes (committed when its context exits)."""

    def put(self, key: bytes, value: bytes) -> None: ...

    def delete(self, key: bytes) -> None: ...


class KeyValueStore(Protocol):
    """The node's database as P2P uses it (see :class:`o2ocli.storage.db.Database`)."""

    def get(self, key: bytes) -> bytes | None: ...

    def iterate(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]: ...

    def write_batch(self) -> AbstractContextManager[Any]: ...


class NetworkSpec(Protocol):
    """The two chain-spec fields a handshake checks."""

    network_magic: bytes
    chain_id: str


class ChainStateView(Protocol):
    """Read-only questions about the block index and the main chain."""

    def get_index(self, block_hash: bytes) -> IndexEntry | None: ...

    def get_block_hash(self, height: int) -> bytes | None: ...

    def is_main_chain(self, entry: IndexEntry) -> bool: ...

    def has_tx(self, txid: bytes) -> bool: ...


class VotePool(Protocol):
    """Finality votes gossiped but not yet in a block."""

    def ordered(self) -> list[tuple[FinalityVote, bytes]]: ...


class FinalityView(Protocol):
    pool: VotePool


class ChainView(Protocol):
    """The node's chain: tip, headers, PoA snapshots and its (maybe offset) clock."""

    genesis: Block
    poa: PoAParams
    state: ChainStateView
    finality: FinalityView

    @property
    def tip(self) -> IndexEntry: ...

    @property
    def height(self) -> int: ...

    @property
    def finalized_height(self) -> int: ...

    def clock(self) -> float: ...

    def snapshot(self, block_hash: bytes) -> Snapshot: ...


class MempoolView(Protocol):
    """Membership and lookup of unconfirmed transactions (``get_entry(txid).tx``)."""

    def __contains__(self, txid: object) -> bool: ...

    def get_entry(self, txid: bytes) -> Any: ...


class TxRejection(Protocol):
    """A refused relayed transaction, as :meth:`NodeLink.submit_txs` reports it:
    an exception with the reason string and whether a consensus rule (not
    policy) refused it (then the sender is scored)."""

    reason: str
    consensus: bool


class NodeLink(Protocol):
    """The node as seen from the P2P layer."""

    spec: NetworkSpec
    chain: ChainView
    mempool: MempoolView
    db: KeyValueStore

    def submit_block(self, block: Block, *, source: Any = None) -> Any:
        """Connect (or store) a block; raises ``BlockInvalid`` or ``ChainStateError``."""
        ...

    def prefetch_block(self, block: Block) -> None:
        """A block arrived that will be connected later: its signatures may be
        verified ahead, while the blocks before it connect."""
        ...

    def submit_txs(self, txs: list[Tx], sources: list[Any] | None = None) -> Sequence[Any]:
        """Accept many relayed txs; one result per tx, an ``Exception`` that is a
        :class:`TxRejection` for each one refused."""
        ...

    def on_votes(self, votes: list[FinalityVote], source: Any = None) -> int:
        """Gossiped finality votes; returns how many were new."""
        ...

    def on_evidence(self, items: list[Evidence], source: Any = None) -> int:
        """Gossiped equivocation evidence; returns how many were new."""
        ...
