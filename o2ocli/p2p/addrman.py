"""The address manager: a bounded, bucketed book of peer listening addresses.

Modelled on Bitcoin Core's addrman (``src/addrman.cpp``), so that one peer
flooding ``addr`` messages cannot fill the book with its own addresses and
eclipse the node:

* Addresses live in one of two tables: **new** (heard of) and **tried** (we
  completed an outbound handshake with it).  Each table is a fixed grid of
  buckets × slots, so the book never holds more than
  ``NEW_BUCKETS * BUCKET_SIZE + TRIED_BUCKETS * BUCKET_SIZE`` entries.
* A new address's bucket is chosen by a keyed hash of the *source's* network
  group and the address's group: everything one source group tells us lands
  in at most ``NEW_BUCKETS_PER_SOURCE_GROUP`` buckets.  The key is a random
  per-node secret, so an attacker cannot aim at buckets.  A tried address's
  bucket depends on its own group only.
* Two addresses wanting the same slot: the worse one goes (a *terrible*
  entry always loses; otherwise the one seen longer ago).  Moving an address
  to tried evicts the slot's old tried entry back to the new table.
* At most ``MAX_PER_SOURCE_GROUP`` new-table entries per source group.
* Only numeric IPv4/IPv6 addresses are accepted (no host names, no
  unspecified/multicast/reserved ranges); loopback addresses only from a
  loopback source (a local test network), never from a remote peer.
* ``last_seen`` given by a peer is clamped to now and aged by two hours
  (``TIME_PENALTY``), as in Bitcoin Core.
* Selection for dialing picks the tried or the new table with even odds, then
  a random non-empty bucket, then a random entry, weighting down recently
  tried and often failed ones: a flooder's thousands of entries weigh as
  much as the handful of buckets they fill, not as their count.

Network groups: IPv4 /16, IPv6 /32, and each loopback address on its own
(so that local multi-node tests, whose nodes all listen on 127.0.0.1, are one
group that can still be dialed: see :meth:`AddrMan.select`'s fallback).

Numeric addresses and their network groups are :mod:`o2ocli.p2p.netaddr`'s;
per-peer ``addr`` processing is rate limited by
:class:`~o2ocli.p2p.addrlimit.AddrRateLimiter` (both re-exported here).

Everything here is pure logic with an explicit ``now``; :class:`AddrStore`
is the small adapter that loads and saves the book in the chain database.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import secrets
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from o2ocli.storage.schema import PEER_ADDR

from .addrlimit import ADDR_BURST, AddrRateLimiter
from .netaddr import Key, acceptable_ip, host_group, netgroup, parse_ip

__all__ = [
    "AddrEntry",
    "AddrMan",
    "AddrRateLimiter",
    "AddrStore",
    "ADDR_BURST",
    "host_group",
    "netgroup",
    "parse_ip",
    "BUCKET_SIZE",
    "NEW_BUCKETS",
    "TRIED_BUCKETS",
    "MAX_ENTRIES",
    "MAX_PER_SOURCE_GROUP",
    "TIME_PENALTY",
]

BUCKET_SIZE = 32
NEW_BUCKETS = 256
TRIED_BUCKETS = 64
NEW_BUCKETS_PER_SOURCE_GROUP = 16
TRIED_BUCKETS_PER_GROUP = 4
MAX_ENTRIES = (NEW_BUCKETS + TRIED_BUCKETS) * BUCKET_SIZE
"""The book's hard bound (10,240)."""
MAX_PER_SOURCE_GROUP = 256
"""New-table entries one source network group may have put in the book."""
TIME_PENALTY = 2 * 3600
"""Seconds subtracted from a relayed address's ``last_seen``."""
HORIZON_DAYS = 30
"""An entry not seen for this long is terrible."""
RETRIES = 3
"""Failed attempts after which a never-reached entry is terrible."""
MAX_FAILURES = 10
MIN_FAIL_DAYS = 7
SELECT_PROBES = 100


# ------------------------------------------------------------------ entries
@dataclass(slots=True)
class AddrEntry:
    """What the book knows about one listening address."""

    host: str
    """Normalised numeric IP (``str(ipaddress.ip_address(...))``)."""
    port: int
    group: str
    """The address's network group."""
    source_group: str
    """Network group of the peer that told us about it."""
    last_seen: int = 0
    """Unix time it was last known to be up (penalised if relayed)."""
    last_try: int = 0
    """Unix time of our last dial."""
    last_success: int = 0
    """Unix time of our last completed outbound handshake."""
    attempts: int = 0
    """Failed dials since the last success."""
    tried: bool = False
    bucket: int = -1
    pos: int = -1

    @property
    def key(self) -> Key:
        return (self.host, self.port)

    def is_terrible(self, now: int) -> bool:
        """Worth forgetting first (Bitcoin Core's ``IsTerrible``)."""
        if self.last_try and now - self.last_try < 60:
            return False  # being tried right now
        if self.last_seen > now + 600:
            return True
        if now - self.last_seen > HORIZON_DAYS * 86400:
            return True
        if self.last_success == 0 and self.attempts >= RETRIES:
            return True
        return now - self.last_success > MIN_FAIL_DAYS * 86400 and self.attempts >= MAX_FAILURES

    def chance(self, now: int) -> float:
        """Relative odds of being picked for a dial."""
        odds = 1.0
        if now - self.last_try < 600:
            odds *= 0.01
        return odds * 0.66 ** min(self.attempts, 8)


# ------------------------------------------------------------------ the book
class AddrMan:
    """The bucketed address book (pure: every method takes ``now``)."""

    def __init__(self, secret: bytes, rng: random.Random | None = None) -> None:
        if len(secret) != 32:
            raise ValueError("the address manager's secret must be 32 bytes")
        self.secret = secret
        self.rng = rng if rng is not None else random.Random(secrets.randbits(64))
        self.entries: dict[Key, AddrEntry] = {}
        self.new_table: dict[int, dict[int, Key]] = {}
        self.tried_table: dict[int, dict[int, Key]] = {}
        self.per_source: Counter[str] = Counter()
        self.dirty: set[Key] = set()
        """Entries changed since the last :meth:`AddrStore.save`."""
        self.removed: set[Key] = set()
        self.stats: Counter[str] = Counter()
        """``added``, ``invalid``, ``source_cap``, ``evicted``, ``collision_dropped``."""

    # ---------------------------------------------------------- hashing
    def _hash(self, *parts: object) -> int:
        data = "\x1f".join(str(p) for p in parts).encode()
        return int.from_bytes(hashlib.blake2b(data, digest_size=8, key=self.secret).digest(),
                              "big")

    def new_bucket(self, group: str, source_group: str) -> int:
        """The new-table bucket for an address of ``group`` heard from ``source_group``."""
        spread = self._hash("n1", group, source_group) % NEW_BUCKETS_PER_SOURCE_GROUP
        return self._hash("n2", source_group, spread) % NEW_BUCKETS

    def tried_bucket(self, key: Key, group: str) -> int:
        """The tried-table bucket for ``key`` (of network ``group``)."""
        spread = self._hash("t1", *key) % TRIED_BUCKETS_PER_GROUP
        return self._hash("t2", group, spread) % TRIED_BUCKETS

    def position(self, tried: bool, bucket: int, key: Key) -> int:
        """The slot of ``key`` in ``bucket``."""
        return self._hash("p", "t" if tried else "n", bucket, *key) % BUCKET_SIZE

    # ------------------------------------------------------------ queries
    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, key: object) -> bool:
        return key in self.entries

    def get(self, host: str, port: int) -> AddrEntry | None:
        """The entry for ``host:port`` (any spelling of the IP), or None."""
        ip = parse_ip(host)
        return None if ip is None else self.entries.get((str(ip), port))

    def counts(self) -> dict[str, int]:
        """Sizes: ``new``, ``tried``, ``total``, ``capacity``, ``source_groups``."""
        tried = sum(len(b) for b in self.tried_table.values())
        return {"new": len(self.entries) - tried, "tried": tried, "total": len(self.entries),
                "capacity": MAX_ENTRIES, "source_groups": len(self.per_source)}

    # ------------------------------------------------------------ adding
    def add(self, host: str, port: int, source: str, seen: int, now: int, *,
            penalty: int = TIME_PENALTY) -> bool:
        """Learn that ``host:port`` listens, told by ``source`` (a host).

        ``seen`` is the sender's claim: clamped to ``now`` and aged by
        ``penalty`` unless the source is the address itself.  Returns True if
        the book gained the address.
        """
        ip = parse_ip(host)
        src_ip = parse_ip(source)
        if ip is None or not 0 < port < 65536 or not acceptable_ip(ip):
            self.stats["invalid"] += 1
            return False
        if ip.is_loopback and not (src_ip is not None and src_ip.is_loopback):
            self.stats["invalid"] += 1
            return False
        key = (str(ip), port)
        if src_ip is not None and src_ip == ip:
            penalty = 0
        if seen > now or seen < 0:
            seen = now
        seen = max(0, seen - penalty)
        entry = self.entries.get(key)
        if entry is not None:
            if seen > entry.last_seen:
                if seen - entry.last_seen > 1200:
                    self.dirty.add(key)
                entry.last_seen = seen
            return False
        source_group = netgroup(src_ip) if src_ip is not None else host_group(source)
        if self.per_source[source_group] >= MAX_PER_SOURCE_GROUP:
            self.stats["source_cap"] += 1
            return False
        entry = AddrEntry(key[0], port, netgroup(ip), source_group, last_seen=seen)
        if not self._place_new(entry, now):
            self.stats["collision_dropped"] += 1
            return False
        self.entries[key] = entry
        self.dirty.add(key)
        self.removed.discard(key)
        self.stats["added"] += 1
        return True

    def _worse(self, old: AddrEntry, new: AddrEntry, now: int) -> bool:
        """True if ``old`` should give its slot to ``new``."""
        if old.is_terrible(now):
            return True
        if new.is_terrible(now):
            return False
        return old.last_seen < new.last_seen

    def _place_new(self, entry: AddrEntry, now: int) -> bool:
        bucket = self.new_bucket(entry.group, entry.source_group)
        pos = self.position(False, bucket, entry.key)
        slots = self.new_table.setdefault(bucket, {})
        occupant = slots.get(pos)
        if occupant is not None:
            old = self.entries[occupant]
            if not self._worse(old, entry, now):
                return False
            self._drop(old)
            self.stats["evicted"] += 1
            slots = self.new_table.setdefault(bucket, {})
        slots[pos] = entry.key
        entry.tried, entry.bucket, entry.pos = False, bucket, pos
        self.per_source[entry.source_group] += 1
        return True

    def _unlink(self, entry: AddrEntry) -> None:
        table = self.tried_table if entry.tried else self.new_table
        slots = table.get(entry.bucket)
        if slots is not None and slots.get(entry.pos) == entry.key:
            del slots[entry.pos]
            if not slots:
                del table[entry.bucket]
        if not entry.tried:
            self.per_source[entry.source_group] -= 1
            if self.per_source[entry.source_group] <= 0:
                del self.per_source[entry.source_group]
        entry.bucket = entry.pos = -1

    def _drop(self, entry: AddrEntry) -> None:
        self._unlink(entry)
        del self.entries[entry.key]
        self.dirty.discard(entry.key)
        self.removed.add(entry.key)

    def remove(self, host: str, port: int) -> bool:
        """Forget ``host:port``; False if it was not in the book."""
        entry = self.get(host, port)
        if entry is None:
            return False
        self._drop(entry)
        return True

    # ------------------------------------------------------------- outcomes
    def attempt(self, host: str, port: int, now: int) -> None:
        """We dialed ``host:port`` and it failed."""
        entry = self.get(host, port)
        if entry is not None:
            entry.last_try = now
            entry.attempts += 1
            self.dirty.add(entry.key)

    def good(self, host: str, port: int, now: int) -> bool:
        """An outbound handshake with ``host:port`` completed: move it to tried.

        The tried slot's previous occupant goes back to the new table (or is
        dropped if that slot is taken by a better entry)."""
        entry = self.get(host, port)
        if entry is None:
            return False
        entry.last_seen = entry.last_try = entry.last_success = now
        entry.attempts = 0
        self.dirty.add(entry.key)
        if entry.tried:
            return True
        self._unlink(entry)
        self._place_tried(entry, now)
        return True

    def _place_tried(self, entry: AddrEntry, now: int) -> None:
        bucket = self.tried_bucket(entry.key, entry.group)
        pos = self.position(True, bucket, entry.key)
        slots = self.tried_table.setdefault(bucket, {})
        occupant = slots.get(pos)
        if occupant is not None:
            old = self.entries[occupant]
            del slots[pos]
            old.tried = False
            old.bucket = old.pos = -1
            self.stats["evicted_from_tried"] += 1
            if not self._place_new(old, now):
                del self.entries[old.key]
                self.removed.add(old.key)
                self.dirty.discard(old.key)
            else:
                self.dirty.add(old.key)
        slots[pos] = entry.key
        entry.tried, entry.bucket, entry.pos = True, bucket, pos

    # ------------------------------------------------------------ selection
    def select(self, now: int, usable: Callable[[AddrEntry], bool] = lambda e: True,
               avoid_groups: Iterable[str] = ()) -> AddrEntry | None:
        """An address to dial, or None.

        Prefers entries whose group is not in ``avoid_groups`` (the groups of
        our outbound peers); only if there is none does it return one in an
        avoided group.  ``usable`` filters out connected, banned or backing
        off addresses."""
        avoid = frozenset(avoid_groups)
        found = self._probe(now, lambda e: e.group not in avoid and usable(e))
        return found if found is not None else self._scan(usable, avoid)

    def _probe(self, now: int, ok: Callable[[AddrEntry], bool]) -> AddrEntry | None:
        if not self.entries:
            return None
        factor = 1.0
        for _ in range(SELECT_PROBES):
            use_tried = bool(self.tried_table) and (
                not self.new_table or self.rng.random() < 0.5)
            table = self.tried_table if use_tried else self.new_table
            slots = table[self.rng.choice(list(table))]
            entry = self.entries[self.rng.choice(list(slots.values()))]
            if ok(entry) and self.rng.random() < entry.chance(now) * factor:
                return entry
            factor *= 1.2
        return None

    def _scan(self, usable: Callable[[AddrEntry], bool],
              avoid: frozenset[str]) -> AddrEntry | None:
        """One pass over every entry when probing found nothing: a usable
        entry outside ``avoid`` if there is one, else any usable entry,
        picked like :meth:`_probe` (table, bucket, entry)."""
        preferred: dict[bool, dict[int, list[AddrEntry]]] = {True: {}, False: {}}
        fallback: dict[bool, dict[int, list[AddrEntry]]] = {True: {}, False: {}}
        for entry in self.entries.values():
            if usable(entry):
                tables = fallback if entry.group in avoid else preferred
                tables[entry.tried].setdefault(entry.bucket, []).append(entry)
        for tables in (preferred, fallback):
            choices = [t for t in (True, False) if tables[t]]
            if choices:
                buckets = tables[self.rng.choice(choices)]
                return self.rng.choice(buckets[self.rng.choice(list(buckets))])
        return None

    def get_addr(self, now: int, max_count: int = 1000, max_pct: int = 23) -> list[AddrEntry]:
        """A random sample of non-terrible entries to answer ``getaddr`` with
        (all of a small book; else ``max_pct`` percent, at most ``max_count``)."""
        good = [e for e in self.entries.values() if not e.is_terrible(now)]
        count = len(good) if len(good) <= 100 else len(good) * max_pct // 100
        return self.rng.sample(good, min(count, max_count))


# -------------------------------------------------------------- persistence
class AddrStore:
    """Loads and saves an :class:`AddrMan` under one key prefix of a database
    with ``get``/``iterate``/``write_batch`` (see :mod:`o2ocli.storage.db`).

    ``PREFIX ‖ "host:port"`` → JSON ``{"seen", "src", "tried", "ok", "try",
    "n"}``; ``PREFIX ‖ 00 ‖ "key"`` → the 32-byte bucket secret."""

    def __init__(self, db: Any, prefix: bytes = PEER_ADDR) -> None:
        self.db = db
        self.prefix = prefix
        self.secret_key = prefix + b"\x00key"

    def load(self, now: int, rng: random.Random | None = None) -> AddrMan:
        """The stored book (a fresh one with a new secret if there is none).

        Entries are placed again with the stored secret; any that no longer
        fit (or are malformed) are dropped from the database."""
        secret = self.db.get(self.secret_key)
        fresh = secret is None or len(secret) != 32
        if fresh:
            secret = secrets.token_bytes(32)
        book = AddrMan(secret, rng)
        rows: list[tuple[AddrEntry, bool]] = []
        stale: list[bytes] = []
        for key, value in self.db.iterate(self.prefix):
            if key == self.secret_key:
                continue
            entry = self._decode(key[len(self.prefix):], value)
            if entry is None:
                stale.append(key)
            else:
                rows.append(entry)
        rows.sort(key=lambda r: not r[1])  # tried entries first
        for entry, tried in rows:
            if entry.key in book.entries:
                continue
            if tried:
                book.entries[entry.key] = entry
                book._place_tried(entry, now)
            elif book.per_source[entry.source_group] < MAX_PER_SOURCE_GROUP and \
                    book._place_new(entry, now):
                book.entries[entry.key] = entry
            else:
                book.removed.add(entry.key)
        book.dirty.clear()
        with self.db.write_batch(sync=False) as batch:
            if fresh:
                batch.put(self.secret_key, secret)
            for key in stale:
                batch.delete(key)
        self.save(book)
        return book

    def _decode(self, name: bytes, value: bytes) -> tuple[AddrEntry, bool] | None:
        try:
            host, _, port_text = name.decode().rpartition(":")
            port = int(port_text)
            info = json.loads(value)
            ip = parse_ip(host)
            if ip is None or not 0 < port < 65536 or not isinstance(info, dict):
                return None
            source = info.get("src")
            entry = AddrEntry(
                str(ip), port, netgroup(ip),
                source if isinstance(source, str) and source else netgroup(ip),
                last_seen=int(info.get("seen", 0)), last_try=int(info.get("try", 0)),
                last_success=int(info.get("ok", 0)), attempts=int(info.get("n", 0)))
            return entry, bool(info.get("tried", False))
        except (ValueError, TypeError, UnicodeDecodeError):
            return None

    def _name(self, key: Key) -> bytes:
        return self.prefix + f"{key[0]}:{key[1]}".encode()

    def save(self, book: AddrMan) -> int:
        """Write what changed since the last save; returns the number of rows."""
        if not book.dirty and not book.removed:
            return 0
        rows = 0
        with self.db.write_batch(sync=False) as batch:
            for key in book.removed:
                batch.delete(self._name(key))
                rows += 1
            for key in book.dirty:
                e = book.entries.get(key)
                if e is None:
                    continue
                batch.put(self._name(key), json.dumps(
                    {"seen": e.last_seen, "src": e.source_group, "tried": e.tried,
                     "ok": e.last_success, "try": e.last_try, "n": e.attempts},
                    separators=(",", ":")).encode())
                rows += 1
        book.dirty.clear()
        book.removed.clear()
        return rows


def backoff(attempts: int, cap: float) -> float:
    """Seconds to wait before redialing after ``attempts`` failures."""
    return min(cap, math.pow(2.0, max(attempts, 1)))
