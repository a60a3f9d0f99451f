"""Who may not connect: operator bans (persisted) and discouraged hosts.

Only the operator bans (``ban``/``setban``), for ``default_seconds`` unless
told otherwise; a ban is kept in the node's database under
:data:`o2ocli.storage.schema.PEER_BAN` so a restart keeps it.  Misbehaviour
never bans: it discourages a public host for a while (in memory, see
:class:`o2ocli.p2p.misbehaviour.Discouraged`).
"""

from __future__ import annotations

from typing import Any

from o2ocli.storage.schema import PEER_BAN

from .interface import KeyValueStore
from .misbehaviour import Discouraged

__all__ = ["BanList"]


class BanList:
    """Operator bans and discouraged hosts of one node."""

    def __init__(self, db: KeyValueStore, default_seconds: int, now: float) -> None:
        self.db = db
        self.default_seconds = default_seconds
        self.bans: dict[str, int] = {}
        """Operator bans: host → until (unix time)."""
        self.discouraged = Discouraged()
        for key, value in db.iterate(PEER_BAN):
            until = int.from_bytes(value, "big")
            if until > now:
                self.bans[key[len(PEER_BAN):].decode()] = until

    def banned(self, host: str, now: float) -> bool:
        """True if ``host`` is banned at ``now`` (an expired ban is lifted)."""
        until = self.bans.get(host)
        if until is None:
            return False
        if until <= now:
            self.unban(host)
            return False
        return True

    def ban(self, host: str, seconds: int | None, now: float) -> int:
        """Ban ``host`` for ``seconds`` (default: ``default_seconds``); returns until when."""
        until = int(now) + (seconds if seconds is not None else self.default_seconds)
        self.bans[host] = until
        with self.db.write_batch() as batch:
            batch.put(PEER_BAN + host.encode(), until.to_bytes(8, "big"))
        return until

    def unban(self, host: str) -> bool:
        """Lift a ban; returns False if there was none."""
        existed = self.bans.pop(host, None) is not None
        with self.db.write_batch() as batch:
            batch.delete(PEER_BAN + host.encode())
        return existed

    def banned_list(self, now: float) -> list[dict[str, Any]]:
        """Current (operator) bans."""
        return [{"host": h, "until": u} for h, u in sorted(self.bans.items()) if u > now]

    def discouraged_list(self, now: float) -> list[dict[str, Any]]:
        """Public hosts discouraged after misbehaving."""
        return self.discouraged.listing(now)
