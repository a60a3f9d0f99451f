"""Peer addresses: numeric IPv4/IPv6 parsing and network groups.

Network groups: IPv4 /16, IPv6 /32, and each loopback address on its own (so
that local multi-node tests, whose nodes all listen on 127.0.0.1, are one
group that can still be dialed).  The address manager
(:mod:`o2ocli.p2p.addrman`) buckets by them and the dialer spreads outbound
connections over them.
"""

from __future__ import annotations

import ipaddress

__all__ = ["IP", "Key", "acceptable_ip", "host_group", "netgroup", "parse_ip"]

Key = tuple[str, int]
"""A listening address: ``(numeric host, port)``."""
IP = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_ip(host: str) -> IP | None:
    """The numeric IP address ``host`` spells, or None (host names, junk).

    IPv4-mapped IPv6 addresses are returned as IPv4.
    """
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def netgroup(ip: IP) -> str:
    """The network group of ``ip``: IPv4 /16, IPv6 /32, loopback per address."""
    if ip.is_loopback:
        return f"lo:{ip}"
    if isinstance(ip, ipaddress.IPv4Address):
        a, b = ip.packed[:2]
        return f"4:{a}.{b}"
    return "6:" + ip.packed[:4].hex()


def host_group(host: str) -> str:
    """The network group of ``host``; a host name is a group of its own."""
    ip = parse_ip(host)
    return netgroup(ip) if ip is not None else f"name:{host.lower()}"


def acceptable_ip(ip: IP) -> bool:
    """Not an unspecified, multicast, reserved or broadcast address."""
    return not (ip.is_unspecified or ip.is_multicast or ip.is_reserved
                or (isinstance(ip, ipaddress.IPv4Address) and ip == ipaddress.IPv4Address(
                    "255.255.255.255")))
