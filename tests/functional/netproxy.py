"""A TCP proxy between named test nodes, for network fault injection.

Every directed link ``src -> dst`` gets its own listener on 127.0.0.1: node
``src`` is told to ``--connect`` to :meth:`NetProxy.link_port` ``(src, dst)``
and the proxy forwards each accepted connection to ``dst``'s real P2P port.
Because each listener knows which two nodes it joins, a test can delay, cut
or partition the link between two *named* nodes.

The proxy runs its own asyncio loop in a background thread; every public
method is thread-safe and may be called from the test thread::

    proxy = NetProxy(seed=7)
    proxy.start()
    proxy.add_node("v1", v1.p2p_port)
    proxy.add_node("v2", v2.p2p_port)
    port = proxy.link_port("v2", "v1")          # v2 starts with --connect 127.0.0.1:port
    proxy.set_delay("v1", "v2", 100, jitter_ms=20)  # both directions of the link
    proxy.set_node_delay("v1", 1500)            # every link touching v1
    proxy.set_reorder(200)                      # random extra delay per chunk, up to 200 ms
    proxy.partition([{"v1"}, {"v2"}])           # cross-group links closed and refused
    proxy.heal()
    proxy.drop_link("v1", "v2")                 # close the link's current connections
    proxy.stop()

Bytes are never reordered within one TCP stream: each chunk's delivery time
is at least the previous chunk's.  Buffers are bounded: a direction holding
``max_buffer`` bytes stops reading, so TCP back-pressure reaches the sender.
Closing either side closes both; :meth:`stop` closes every listener and
connection and ends the thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["NetProxy", "LinkStats"]

CHUNK = 64 * 1024
DEFAULT_MAX_BUFFER = 8 * 1024 * 1024


@dataclass
class LinkStats:
    """Counters of one directed link (bytes flowing ``src -> dst``)."""

    accepted: int = 0
    refused: int = 0
    bytes: int = 0
    dropped_bytes: int = 0


@dataclass
class _Shape:
    delay: float = 0.0
    jitter: float = 0.0


@dataclass(eq=False)
class _Conn:
    src: str
    dst: str
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    closed: bool = False


class NetProxy:
    """Proxy listeners for directed links between named nodes (see module doc)."""

    def __init__(self, seed: int = 0, max_buffer: int = DEFAULT_MAX_BUFFER,
                 host: str = "127.0.0.1") -> None:
        self.host = host
        self.max_buffer = max_buffer
        self._rng = random.Random(seed)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._targets: dict[str, int] = {}
        self._servers: dict[tuple[str, str], asyncio.base_events.Server] = {}
        self._ports: dict[tuple[str, str], int] = {}
        self._shape: dict[tuple[str, str], _Shape] = {}
        self._reorder = 0.0
        self._groups: list[frozenset[str]] | None = None
        self._conns: set[_Conn] = set()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._stats: dict[tuple[str, str], LinkStats] = {}

    # ------------------------------------------------------------- threading
    def start(self) -> NetProxy:
        """Start the event loop thread."""
        assert self._thread is None, "already started"
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="netproxy", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def _call(self, coro: Coroutine[Any, Any, Any], timeout: float = 10.0) -> Any:
        assert self._loop is not None, "proxy not started"
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def stop(self) -> None:
        """Close every listener and connection, then end the loop thread."""
        if self._loop is None or self._thread is None:
            return
        with contextlib.suppress(Exception):
            self._call(self._shutdown(), timeout=15)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(15)
        self._thread = None
        self._loop = None

    def __enter__(self) -> NetProxy:
        return self.start() if self._thread is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _shutdown(self) -> None:
        for server in self._servers.values():
            server.close()
        for conn in list(self._conns):
            self._close_conn(conn)
        handlers = list(self._handlers)
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        for server in self._servers.values():
            with contextlib.suppress(Exception):
                await server.wait_closed()
        self._servers.clear()

    # ----------------------------------------------------------------- setup
    def add_node(self, name: str, port: int) -> None:
        """Node ``name`` accepts peers on 127.0.0.1:``port`` (may be changed later)."""
        self._targets[name] = port

    def link_port(self, src: str, dst: str) -> int:
        """The proxy port that ``src`` dials to reach ``dst`` (listener made on first use)."""
        key = (src, dst)
        if key not in self._ports:
            assert dst in self._targets, f"unknown node {dst!r}"
            self._ports[key] = self._call(self._listen(src, dst))
        return self._ports[key]

    async def _listen(self, src: str, dst: str) -> int:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._handlers.add(task)
            try:
                await self._handle(src, dst, reader, writer)
            except asyncio.CancelledError:
                pass  # stopping: the connection is closed, nothing to report
            finally:
                self._handlers.discard(task)

        server = await asyncio.start_server(accept, self.host, 0, limit=CHUNK)
        self._servers[(src, dst)] = server
        return server.sockets[0].getsockname()[1]

    # -------------------------------------------------------------- controls
    def set_delay(self, a: str, b: str, ms: float, jitter_ms: float = 0.0,
                  both: bool = True) -> None:
        """Delay bytes ``a -> b`` (and ``b -> a`` if ``both``) by ``ms`` plus a
        uniform random 0..``jitter_ms``."""
        shape = _Shape(ms / 1000.0, jitter_ms / 1000.0)
        pairs = [(a, b), (b, a)] if both else [(a, b)]
        self._call(self._set_shapes(pairs, shape))

    def set_node_delay(self, name: str, ms: float, jitter_ms: float = 0.0) -> None:
        """Delay every link to and from ``name``."""
        shape = _Shape(ms / 1000.0, jitter_ms / 1000.0)
        pairs = [p for o in self._targets if o != name for p in ((name, o), (o, name))]
        self._call(self._set_shapes(pairs, shape))

    def clear_delays(self) -> None:
        """No delay or jitter on any link (reorder too)."""
        self._call(self._clear_shapes())

    async def _set_shapes(self, pairs: list[tuple[str, str]], shape: _Shape) -> None:
        for pair in pairs:
            self._shape[pair] = shape

    async def _clear_shapes(self) -> None:
        self._shape.clear()
        self._reorder = 0.0

    def set_reorder(self, max_extra_ms: float) -> None:
        """Give every chunk on every link a random extra delay of 0..``max_extra_ms``,
        so deliveries of different connections overtake each other (never within one)."""
        self._call(self._set_reorder(max_extra_ms / 1000.0))

    async def _set_reorder(self, extra: float) -> None:
        self._reorder = extra

    def drop_link(self, a: str, b: str) -> int:
        """Close every current connection between ``a`` and ``b``; returns how many."""
        return self._call(self._drop(lambda c: {c.src, c.dst} == {a, b}))

    def drop_node(self, name: str) -> int:
        """Close every current connection to or from ``name``."""
        return self._call(self._drop(lambda c: name in (c.src, c.dst)))

    async def _drop(self, match: Any) -> int:
        hit = [c for c in self._conns if match(c)]
        for conn in hit:
            self._close_conn(conn)
        return len(hit)

    def partition(self, groups: Iterable[Iterable[str]]) -> None:
        """Split the nodes into ``groups``: a link between two groups has its
        connections closed (bytes in flight dropped) and new ones refused until
        :meth:`heal`.  A node in no group is cut off from everyone."""
        frozen = [frozenset(g) for g in groups]
        self._call(self._partition(frozen))

    async def _partition(self, groups: list[frozenset[str]] | None) -> None:
        self._groups = groups
        for conn in list(self._conns):
            if self._blocked(conn.src, conn.dst):
                self._close_conn(conn)

    def heal(self) -> None:
        """End the partition: every link accepts connections again."""
        self._call(self._partition(None))

    def isolate(self, name: str) -> None:
        """Partition ``name`` from every other node."""
        others = [o for o in self._targets if o != name]
        self.partition([{name}, set(others)])

    def _blocked(self, src: str, dst: str) -> bool:
        if self._groups is None:
            return False
        return not any(src in g and dst in g for g in self._groups)

    # ----------------------------------------------------------------- stats
    def stats(self, src: str, dst: str) -> LinkStats:
        """A copy of the counters of the directed link ``src -> dst``."""
        return self._call(self._copy_stats(src, dst))

    async def _copy_stats(self, src: str, dst: str) -> LinkStats:
        s = self._stats.get((src, dst), LinkStats())
        return LinkStats(s.accepted, s.refused, s.bytes, s.dropped_bytes)

    def connections(self, a: str | None = None, b: str | None = None) -> int:
        """Open connections (between ``a`` and ``b`` if given)."""
        return self._call(self._count(a, b))

    async def _count(self, a: str | None, b: str | None) -> int:
        if a is None:
            return len(self._conns)
        return sum(1 for c in self._conns if {c.src, c.dst} == {a, b})

    # ------------------------------------------------------------ forwarding
    def _stat(self, src: str, dst: str) -> LinkStats:
        return self._stats.setdefault((src, dst), LinkStats())

    async def _handle(self, src: str, dst: str, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        if self._blocked(src, dst):
            self._stat(src, dst).refused += 1
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self._targets[dst], limit=CHUNK), 5.0)
        except (OSError, TimeoutError, asyncio.CancelledError) as exc:
            writer.close()
            if isinstance(exc, asyncio.CancelledError):
                raise
            self._stat(src, dst).refused += 1
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            return
        self._stat(src, dst).accepted += 1
        conn = _Conn(src, dst, [writer, up_writer])
        self._conns.add(conn)
        if self._blocked(src, dst):  # partitioned while we dialed
            self._close_conn(conn)
            return
        pipes = [self._pipe(conn, reader, up_writer, src, dst),
                 self._pipe(conn, up_reader, writer, dst, src)]
        conn.tasks = [asyncio.create_task(p) for p in pipes]
        try:
            await asyncio.gather(*conn.tasks, return_exceptions=True)
        finally:
            for task in conn.tasks:
                task.cancel()
            await asyncio.gather(*conn.tasks, return_exceptions=True)
            self._close_conn(conn)
            for w in conn.writers:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(w.wait_closed(), 5)

    def _close_conn(self, conn: _Conn) -> None:
        self._conns.discard(conn)
        if conn.closed:
            return
        conn.closed = True
        for w in conn.writers:
            with contextlib.suppress(Exception):
                w.transport.abort()  # unsent bytes are dropped, never waited for
        for task in conn.tasks:
            task.cancel()

    def _delivery_delay(self, src: str, dst: str) -> float:
        shape = self._shape.get((src, dst))
        delay = 0.0
        if shape is not None:
            delay = shape.delay + (self._rng.uniform(0, shape.jitter) if shape.jitter else 0)
        if self._reorder:
            delay += self._rng.uniform(0, self._reorder)
        return delay

    async def _pipe(self, conn: _Conn, reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter, src: str, dst: str) -> None:
        """Copy ``src -> dst`` bytes, each chunk released at its delivery time."""
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
        room = asyncio.Semaphore(max(1, self.max_buffer // CHUNK))
        stat = self._stat(src, dst)

        async def read() -> None:
            last = 0.0
            try:
                while True:
                    await room.acquire()  # bounded: at most max_buffer bytes held
                    data = await reader.read(CHUNK)
                    if not data:
                        break
                    # Monotonic per stream: never overtake the previous chunk.
                    last = max(last, time.monotonic() + self._delivery_delay(src, dst))
                    queue.put_nowait((last, data))
            except (ConnectionError, OSError):
                pass
            finally:
                queue.put_nowait(None)

        reading = asyncio.create_task(read())
        held = b""  # taken from the queue, not yet written
        try:
            while True:
                item = await queue.get()
                if item is None:  # the sender closed: flush what it sent, then close
                    writer.close()
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(writer.wait_closed(), 2)
                    break
                at, held = item
                pause = at - time.monotonic()
                if pause > 0:
                    await asyncio.sleep(pause)
                if conn.closed:
                    break
                writer.write(held)
                stat.bytes += len(held)
                held = b""
                await writer.drain()
                room.release()
        except (ConnectionError, OSError):
            pass
        finally:
            reading.cancel()
            stat.dropped_bytes += len(held)
            while not queue.empty():
                item = queue.get_nowait()
                if item is not None:
                    stat.dropped_bytes += len(item[1])
            self._close_conn(conn)
            await asyncio.gather(reading, return_exceptions=True)
