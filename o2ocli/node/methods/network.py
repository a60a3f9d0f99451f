"""RPC methods about peers and the node process: connections, bans, stop."""

from __future__ import annotations

from typing import Any

from o2ocli.rpc import errors as E
from o2ocli.rpc.errors import RpcError

from .context import NodeContext
from .params import host_port, int_arg
from .table import MethodTable

__all__ = ["TABLE", "peer_manager", "getpeerinfo", "getaddrmaninfo", "addpeer", "ban", "unban",
           "setnetworkactive", "stop"]

TABLE = MethodTable()


def peer_manager(node: NodeContext) -> Any:
    """The node's peer manager (an RPC error when networking is not running)."""
    if node.p2p is None:
        raise RpcError(E.MISC_ERROR, "peer-to-peer networking is not running")
    return node.p2p


@TABLE.method("getpeerinfo")
def getpeerinfo(node: NodeContext) -> dict[str, Any]:
    """Connected peers, recent disconnects (newest first, with the reason),
    operator bans, discouraged hosts and the listening address."""
    manager = peer_manager(node)
    listen = f"{manager.listen[0]}:{manager.listen_port}" if manager.listen else None
    return {
        "peers": [peer.info() for peer in manager.peers.values() if not peer.closed],
        "recent_disconnects": list(reversed(manager.recent_disconnects)),
        "banned": manager.banned_list(),
        "discouraged": manager.discouraged_list(),
        "network_active": manager.network_active,
        "listen": listen,
        "known_addresses": len(manager.addrman),
    }


@TABLE.method("getaddrmaninfo")
def getaddrmaninfo(node: NodeContext) -> dict[str, Any]:
    """The address manager: new/tried sizes, capacity, and flood counters."""
    return peer_manager(node).addrman_info()


@TABLE.method("addpeer")
def addpeer(node: NodeContext, address: Any) -> dict[str, Any]:
    """Keep a connection to ``HOST:PORT`` (dialed at once, redialed if lost)."""
    host, port = host_port(address)
    manager = peer_manager(node)
    if manager.banned(host):
        raise RpcError(E.MISC_ERROR, f"{host} is banned; unban it first")
    manager.add_address(host, port, manual=True)
    return {"added": f"{host}:{port}"}


@TABLE.method("ban")
def ban(node: NodeContext, host: Any, seconds: Any = 24 * 3600) -> dict[str, Any]:
    """Operator ban: refuse ``host`` for ``seconds`` and drop its connections."""
    if not isinstance(host, str) or not host or len(host) > 253:
        raise RpcError(E.INVALID_PARAMS, "host must be a string")
    seconds = int_arg(seconds, "seconds", 1, 10 * 365 * 24 * 3600)
    manager = peer_manager(node)
    manager.ban(host, seconds)
    return {"banned": host, "until": manager.bans[host]}


@TABLE.method("unban")
def unban(node: NodeContext, host: Any) -> dict[str, Any]:
    """Lift the ban on ``host``."""
    if not isinstance(host, str) or not host:
        raise RpcError(E.INVALID_PARAMS, "host must be a string")
    if not peer_manager(node).unban(host):
        raise RpcError(E.NOT_FOUND, f"{host} is not banned")
    return {"unbanned": host}


@TABLE.method("setnetworkactive")
def setnetworkactive(node: NodeContext, active: Any) -> dict[str, Any]:
    """Turn peer-to-peer networking off (drop all peers) or on again."""
    if not isinstance(active, bool):
        raise RpcError(E.INVALID_PARAMS, "active must be true or false")
    peer_manager(node).set_active(active)
    return {"network_active": active}


@TABLE.method("stop")
def stop(node: NodeContext) -> str:
    """Shut the node down gracefully."""
    node.request_stop()
    return "o2ocli node stopping"
