"""What the RPC methods need from the node: the explicit context every method
function takes first.  :class:`o2ocli.node.runtime.Node` implements it; tests
may pass a started node directly."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # pragma: no cover
    from o2ocli.chainspec import ChainSpec
    from o2ocli.core.finality import Evidence, FinalityVote
    from o2ocli.core.tx import Tx

    from ..chain import ChainManager
    from ..mempool import Mempool, MempoolEntry, MempoolError
    from ..producer import Proposals

__all__ = ["NodeContext"]


class NodeContext(Protocol):
    """The node as the RPC methods see it."""

    spec: ChainSpec
    chain: ChainManager
    mempool: Mempool
    p2p: Any
    """The peer manager, or None when networking is not running."""
    proposals: Proposals
    validator_address: bytes | None

    def peer_count(self) -> int: ...

    def syncing(self) -> bool: ...

    def submit_tx(self, tx: Tx, source: Any = None) -> MempoolEntry: ...

    def submit_txs(
        self, txs: list[Tx], sources: list[Any] | None = None
    ) -> list[MempoolEntry | MempoolError]: ...

    def request_stop(self) -> None: ...

    def _after_votes(
        self, new: list[FinalityVote], evidence: list[Evidence], source: Any
    ) -> None: ...
