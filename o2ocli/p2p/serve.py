"""Answering a peer's requests: ``getheaders``, ``getdata`` (blocks, compact blocks,
mempool txs) and ``getblocktxn``.

Requests are served in order, and only while the peer reads what it was sent:
past SEND_PAUSE_BYTES of unsent data the rest waits until it has read it, and
a peer with more than MAX_QUEUED_REQUESTS waiting, or getblocktxn and
getheaders requests holding more than MAX_QUEUED_INDEXES indexes and locator
hashes waiting, is disconnected (a waiting getblocktxn holds up to 50 000
indexes: counted as one request, 10 000 of them would hold some 20 GB; 10 000
getheaders with 64-hash locators some 45 MB).
"""

from __future__ import annotations

import asyncio

from o2ocli.storage.schema import block_key

from .compactmsg import MAX_BLOCKTXN
from .interface import NodeLink
from .messages import (
    INV_BLOCK,
    INV_CMPCT_BLOCK,
    MAX_HEADERS,
    BlockMsg,
    GetBlockTxn,
    GetData,
    GetHeaders,
    Headers,
    NotFound,
    RawBlock,
    TxMsg,
)
from .peer import MAX_QUEUED_REQUESTS, SEND_PAUSE_BYTES, Peer

__all__ = ["queue_request", "serve_requests", "MAX_QUEUED_INDEXES"]

MAX_QUEUED_INDEXES = 4 * MAX_BLOCKTXN
"""Transactions asked for by getblocktxn requests, and locator hashes of
getheaders requests, waiting for the peer to read (about 8 MB of indexes, or
about 20 MB of locator hashes, at most)."""


def queue_request(node: NodeLink, peer: Peer, msg: GetHeaders | GetData | GetBlockTxn
                  ) -> None:
    """Serve a request now, or after what the peer has not read yet."""
    items = msg.items if isinstance(msg, GetData) else (msg,)
    if len(peer.requests) + len(items) > MAX_QUEUED_REQUESTS:
        peer.close("not reading its data (too many requests waiting)")
        return
    if isinstance(msg, GetBlockTxn | GetHeaders):
        weight = _weight(msg)
        if peer.queued_indexes + weight > MAX_QUEUED_INDEXES:
            what = "getblocktxn indexes" if isinstance(msg, GetBlockTxn) else \
                "getheaders locator hashes"
            peer.close(f"not reading its data (too many {what} waiting)")
            return
        peer.queued_indexes += weight
    peer.requests.extend(items)
    serve_requests(node, peer)


def _weight(msg: GetBlockTxn | GetHeaders) -> int:
    """What a waiting request holds, in :data:`MAX_QUEUED_INDEXES` units: a
    getblocktxn's indexes; a getheaders' locator hashes and stop hash."""
    if isinstance(msg, GetBlockTxn):
        return len(msg.indexes)
    return len(msg.locator) + 1


def serve_requests(node: NodeLink, peer: Peer) -> None:
    """Serve queued requests in order until the peer's unsent data passes
    SEND_PAUSE_BYTES; then resume once it has read it."""
    if peer.serving is not None:
        return
    missing: list[tuple[int, bytes]] = []
    while peer.requests and not peer.closed:
        if peer.unsent > SEND_PAUSE_BYTES:
            peer.serving = asyncio.create_task(_serve_when_read(node, peer),
                                               name=f"peer-{peer.id}-serve")
            break
        request = peer.requests.popleft()
        if isinstance(request, GetHeaders):
            peer.queued_indexes -= _weight(request)
            _serve_headers(node, peer, request)
        elif isinstance(request, GetBlockTxn):
            peer.queued_indexes -= _weight(request)
            peer.manager.compact.serve_blocktxn(peer, request)
        elif not _serve_item(node, peer, *request):
            missing.append(request)
    if missing and not peer.closed:
        peer.send(NotFound(tuple(missing)))


async def _serve_when_read(node: NodeLink, peer: Peer) -> None:
    try:
        await peer.wait_sent()
    except (ConnectionError, RuntimeError):
        return
    finally:
        peer.serving = None
    serve_requests(node, peer)


def _serve_headers(node: NodeLink, peer: Peer, msg: GetHeaders) -> None:
    state = node.chain.state
    start = 1
    for block_hash in msg.locator:
        entry = state.get_index(block_hash)
        if entry is not None and state.is_main_chain(entry):
            start = entry.height + 1
            break
    headers = []
    for height in range(start, min(node.chain.height, start + MAX_HEADERS - 1) + 1):
        block_hash = state.get_block_hash(height)
        entry = state.get_index(block_hash) if block_hash else None
        if entry is None:
            break
        headers.append(entry.header)
        if block_hash == msg.stop:
            break
    for header in headers:
        peer.known_blocks.add(header.hash)
    peer.send(Headers(tuple(headers)))


def _serve_item(node: NodeLink, peer: Peer, kind: int, item: bytes) -> bool:
    """Send one requested block or mempool transaction; False if we lack it.
    A compact block is sent only for a recent block; any other in full."""
    if kind == INV_CMPCT_BLOCK:
        compact = peer.manager.compact.compact(item)
        if compact is not None:
            peer.send(compact)
            peer.known_blocks.add(item)
            return True
        kind = INV_BLOCK
    if kind == INV_BLOCK:
        raw = node.db.get(block_key(item))
        if raw is None:
            return False
        peer.send(BlockMsg(RawBlock(raw)))
        peer.known_blocks.add(item)
        return True
    # Only mempool transactions are served (as in Bitcoin Core): a
    # confirmed one would cost a block decode per request.
    entry = node.mempool.get_entry(item)
    if entry is None:
        return False
    peer.send(TxMsg(entry.tx))
    peer.known_txs.add(item)
    return True
