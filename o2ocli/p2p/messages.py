"""Wire format of the peer-to-peer protocol.

Frame (all integers little-endian)::

    magic:4   network magic from the chain spec (a frame for another network
              is refused before anything else is read)
    type:u8   message type (table below)
    length:u32  payload length, at most MAX_PAYLOAD
    checksum:4  first 4 bytes of SHA-256d(payload)
    payload

Payloads use the canonical encoding of :mod:`o2ocli.core.encoding`; every list
has a hard cap checked before anything is allocated, and trailing bytes are an
error.  A peer that sends a malformed frame or payload is banned.

====  ==========  ==============================================================
type  name        payload
====  ==========  ==============================================================
1     version     protocol:u32 chain_id:var_str genesis:32 height:u32
                  total_difficulty:varint listen_port:u16 nonce:u64
                  user_agent:var_str(≤256)
2     verack      (empty)
3     ping        nonce:u64
4     pong        nonce:u64
5     getheaders  n:varint(≤64) hash:32 × n (block locator, newest first)
                  stop:32 (zero = as many as allowed)
6     headers     n:varint(≤2000) header × n (full header encoding)
7     getdata     n:varint(≤1000) (kind:u8 hash:32) × n
8     block       block encoding
9     tx          transaction encoding
10    inv         n:varint(≤5000) (kind:u8 hash:32) × n
11    notfound    n:varint(≤1000) (kind:u8 hash:32) × n
12    getaddr     (empty)
13    addr        n:varint(≤1000) (host:var_str(≤64) port:u16 last_seen:u64) × n
14    votes       n:varint(≤256) vote × n (finality votes, 169 bytes each)
15    evidence    n:varint(≤16) evidence × n (two conflicting votes each)
16    cmpctblock  header, txids, prefilled txs, votes, evidence (protocol ≥ 2)
17    getblocktxn block_hash:32 n:varint(≤50000) index:varint × n (protocol ≥ 2)
18    blocktxn    block_hash:32 n:varint(≤50000) tx × n (protocol ≥ 2)
====  ==========  ==============================================================

``kind``: 1 = transaction, 2 = block, 3 = block in compact form (``getdata``
and ``notfound`` only, protocol ≥ 2).  Compact block relay (types 16-18, kind
3) is described in :mod:`o2ocli.p2p.compactmsg`; it is only used with peers
whose version message says protocol 2 or more, so version 1 peers (which
would ban us for an unknown type or kind) are sent full blocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from o2ocli.core.block import Block, BlockHeader
from o2ocli.core.encoding import DecodeError, Reader, Writer
from o2ocli.core.finality import Evidence, FinalityVote
from o2ocli.core.tx import Tx
from o2ocli.crypto.hashes import sha256d

from .compactmsg import INV_CMPCT_BLOCK, BlockTxn, CmpctBlock, GetBlockTxn

__all__ = [
    "PROTOCOL_VERSION",
    "MAX_PAYLOAD",
    "FRAME_HEADER_SIZE",
    "INV_TX",
    "INV_BLOCK",
    "INV_CMPCT_BLOCK",
    "COMPACT_PROTOCOL",
    "ProtocolError",
    "Version",
    "Verack",
    "Ping",
    "Pong",
    "GetHeaders",
    "Headers",
    "GetData",
    "BlockMsg",
    "RawBlock",
    "TxMsg",
    "Inv",
    "NotFound",
    "GetAddr",
    "Addr",
    "Votes",
    "EvidenceMsg",
    "CmpctBlock",
    "GetBlockTxn",
    "BlockTxn",
    "Message",
    "encode_frame",
    "parse_frame_header",
    "decode_payload",
    "MESSAGE_TYPES",
]

PROTOCOL_VERSION = 2
COMPACT_PROTOCOL = 2
"""Peers announcing at least this protocol version take compact block relay."""
MAX_PAYLOAD = 8 * 1024 * 1024
FRAME_HEADER_SIZE = 13
MAX_LOCATOR = 64
MAX_HEADERS = 2000
MAX_GETDATA = 1000
MAX_INV = 5000
MAX_ADDR = 1000
MAX_VOTES = 256
MAX_EVIDENCE = 16
INV_TX, INV_BLOCK = 1, 2


class ProtocolError(Exception):
    """A peer broke the protocol (bad frame or payload); the peer gets banned."""


@dataclass(frozen=True, slots=True)
class Version:
    """Handshake: who we are and what chain we follow."""

    TYPE: ClassVar[int] = 1
    protocol: int
    chain_id: str
    genesis: bytes
    height: int
    total_difficulty: int
    listen_port: int
    nonce: int
    user_agent: str

    def encode(self, w: Writer) -> None:
        w.u32(self.protocol)
        w.var_bytes(self.chain_id.encode())
        w.raw(self.genesis)
        w.u32(self.height)
        w.varint(self.total_difficulty)
        w.u16(self.listen_port)
        w.u64(self.nonce)
        w.var_bytes(self.user_agent.encode()[:256])

    @classmethod
    def decode(cls, r: Reader) -> Version:
        protocol = r.u32("protocol")
        chain_id = r.var_bytes("chain id", 64).decode("ascii", "replace")
        genesis = r.raw(32, "genesis")
        height = r.u32("height")
        td = r.varint("total difficulty")
        port = r.u16("listen port")
        nonce = r.u64("nonce")
        agent = r.var_bytes("user agent", 256).decode("utf-8", "replace")
        return cls(protocol, chain_id, genesis, height, td, port, nonce, agent)


@dataclass(frozen=True, slots=True)
class _Empty:
    def encode(self, w: Writer) -> None:
        pass

    @classmethod
    def decode(cls, r: Reader) -> _Empty:
        return cls()


@dataclass(frozen=True, slots=True)
class Verack(_Empty):
    """Handshake accepted."""

    TYPE: ClassVar[int] = 2


@dataclass(frozen=True, slots=True)
class GetAddr(_Empty):
    """Ask for known peer addresses."""

    TYPE: ClassVar[int] = 12


@dataclass(frozen=True, slots=True)
class Ping:
    """Liveness probe; answered by a Pong with the same nonce."""

    TYPE: ClassVar[int] = 3
    nonce: int

    def encode(self, w: Writer) -> None:
        w.u64(self.nonce)

    @classmethod
    def decode(cls, r: Reader) -> Ping:
        return cls(r.u64("nonce"))


@dataclass(frozen=True, slots=True)
class Pong(Ping):
    """Answer to a Ping."""

    TYPE: ClassVar[int] = 4

    @classmethod
    def decode(cls, r: Reader) -> Pong:
        return cls(r.u64("nonce"))


@dataclass(frozen=True, slots=True)
class GetHeaders:
    """Ask for headers following the first locator hash we share."""

    TYPE: ClassVar[int] = 5
    locator: tuple[bytes, ...]
    stop: bytes = bytes(32)

    def encode(self, w: Writer) -> None:
        w.varint(len(self.locator))
        for h in self.locator:
            w.raw(h)
        w.raw(self.stop)

    @classmethod
    def decode(cls, r: Reader) -> GetHeaders:
        n = r.count("locator", MAX_LOCATOR)
        locator = tuple(r.raw(32, "locator hash") for _ in range(n))
        return cls(locator, r.raw(32, "stop hash"))


@dataclass(frozen=True, slots=True)
class Headers:
    """Consecutive headers (each the parent of the next)."""

    TYPE: ClassVar[int] = 6
    headers: tuple[BlockHeader, ...]

    def encode(self, w: Writer) -> None:
        w.varint(len(self.headers))
        for h in self.headers:
            h.encode(w)

    @classmethod
    def decode(cls, r: Reader) -> Headers:
        n = r.count("headers", MAX_HEADERS)
        return cls(tuple(BlockHeader.decode(r) for _ in range(n)))


@dataclass(frozen=True, slots=True)
class _Items:
    items: tuple[tuple[int, bytes], ...]
    LIMIT: ClassVar[int] = MAX_GETDATA
    KINDS: ClassVar[tuple[int, ...]] = (INV_TX, INV_BLOCK, INV_CMPCT_BLOCK)

    def encode(self, w: Writer) -> None:
        w.varint(len(self.items))
        for kind, h in self.items:
            w.u8(kind)
            w.raw(h)

    @classmethod
    def decode(cls, r: Reader) -> _Items:
        n = r.count("items", cls.LIMIT)
        items = []
        for _ in range(n):
            kind = r.u8("item kind")
            if kind not in cls.KINDS:
                raise DecodeError(f"unknown item kind {kind}")
            items.append((kind, r.raw(32, "item hash")))
        return cls(tuple(items))


@dataclass(frozen=True, slots=True)
class GetData(_Items):
    """Ask for blocks or transactions by hash."""

    TYPE: ClassVar[int] = 7


@dataclass(frozen=True, slots=True)
class Inv(_Items):
    """Announce transactions or blocks by hash."""

    TYPE: ClassVar[int] = 10
    LIMIT: ClassVar[int] = MAX_INV
    KINDS: ClassVar[tuple[int, ...]] = (INV_TX, INV_BLOCK)


@dataclass(frozen=True, slots=True)
class NotFound(_Items):
    """Requested items the peer does not have."""

    TYPE: ClassVar[int] = 11


@dataclass(frozen=True, slots=True)
class RawBlock:
    """An encoded block sent as is (serving stored blocks without decoding them)."""

    data: bytes

    def to_bytes(self) -> bytes:
        return self.data


@dataclass(frozen=True, slots=True)
class BlockMsg:
    """A full block."""

    TYPE: ClassVar[int] = 8
    block: Block | RawBlock

    def encode(self, w: Writer) -> None:
        w.raw(self.block.to_bytes())

    @classmethod
    def decode(cls, r: Reader) -> BlockMsg:
        raw = r.raw(r.remaining, "block")
        return cls(Block.from_bytes(raw))


@dataclass(frozen=True, slots=True)
class TxMsg:
    """A transaction."""

    TYPE: ClassVar[int] = 9
    tx: Tx

    def encode(self, w: Writer) -> None:
        self.tx.encode(w)

    @classmethod
    def decode(cls, r: Reader) -> TxMsg:
        return cls(Tx.from_bytes(r.raw(r.remaining, "tx")))


@dataclass(frozen=True, slots=True)
class Addr:
    """Known peer addresses: (host, port, last_seen)."""

    TYPE: ClassVar[int] = 13
    addresses: tuple[tuple[str, int, int], ...]

    def encode(self, w: Writer) -> None:
        w.varint(len(self.addresses))
        for host, port, seen in self.addresses:
            w.var_bytes(host.encode()[:64])
            w.u16(port)
            w.u64(seen)

    @classmethod
    def decode(cls, r: Reader) -> Addr:
        n = r.count("addresses", MAX_ADDR)
        out = []
        for _ in range(n):
            host = r.var_bytes("host", 64).decode("ascii", "replace")
            out.append((host, r.u16("port"), r.u64("last seen")))
        return cls(tuple(out))


@dataclass(frozen=True, slots=True)
class Votes:
    """Finality votes (relayed as they are accepted)."""

    TYPE: ClassVar[int] = 14
    votes: tuple[FinalityVote, ...]

    def encode(self, w: Writer) -> None:
        w.varint(len(self.votes))
        for vote in self.votes:
            vote.encode(w)

    @classmethod
    def decode(cls, r: Reader) -> Votes:
        n = r.count("votes", MAX_VOTES)
        return cls(tuple(FinalityVote.decode(r) for _ in range(n)))


@dataclass(frozen=True, slots=True)
class EvidenceMsg:
    """Equivocation evidence (pairs of conflicting votes)."""

    TYPE: ClassVar[int] = 15
    evidence: tuple[Evidence, ...]

    def encode(self, w: Writer) -> None:
        w.varint(len(self.evidence))
        for ev in self.evidence:
            ev.encode(w)

    @classmethod
    def decode(cls, r: Reader) -> EvidenceMsg:
        n = r.count("evidence", MAX_EVIDENCE)
        return cls(tuple(Evidence.decode(r) for _ in range(n)))


Message = (
    Version | Verack | Ping | Pong | GetHeaders | Headers | GetData | BlockMsg | TxMsg | Inv
    | NotFound | GetAddr | Addr | Votes | EvidenceMsg | CmpctBlock | GetBlockTxn | BlockTxn
)
MESSAGE_TYPES: dict[int, type] = {
    cls.TYPE: cls
    for cls in (Version, Verack, Ping, Pong, GetHeaders, Headers, GetData, BlockMsg, TxMsg,
                Inv, NotFound, GetAddr, Addr, Votes, EvidenceMsg, CmpctBlock, GetBlockTxn,
                BlockTxn)
}


def encode_frame(magic: bytes, msg: Message) -> bytes:
    """The complete frame for ``msg``."""
    w = Writer()
    msg.encode(w)
    payload = w.getvalue()
    if len(payload) > MAX_PAYLOAD:
        raise ValueError("message too large")
    head = Writer()
    head.raw(magic)
    head.u8(msg.TYPE)
    head.u32(len(payload))
    head.raw(sha256d(payload)[:4])
    return head.getvalue() + payload


def parse_frame_header(magic: bytes, head: bytes) -> tuple[int, int, bytes]:
    """Check a 13-byte frame header; returns (type, length, checksum)."""
    if len(head) != FRAME_HEADER_SIZE:
        raise ProtocolError(f"frame header must be {FRAME_HEADER_SIZE} bytes")
    if head[:4] != magic:
        raise ProtocolError(f"wrong network magic {head[:4].hex()}")
    kind = head[4]
    if kind not in MESSAGE_TYPES:
        raise ProtocolError(f"unknown message type {kind}")
    length = int.from_bytes(head[5:9], "little")
    if length > MAX_PAYLOAD:
        raise ProtocolError(f"frame of {length} bytes exceeds the {MAX_PAYLOAD}-byte limit")
    return kind, length, head[9:13]


def decode_payload(kind: int, payload: bytes, checksum: bytes) -> Message:
    """Verify the checksum and decode one message (ProtocolError otherwise)."""
    if sha256d(payload)[:4] != checksum:
        raise ProtocolError("bad frame checksum")
    cls = MESSAGE_TYPES[kind]
    try:
        r = Reader(payload)
        msg = cls.decode(r)
        r.finish(cls.__name__)
    except DecodeError as exc:
        raise ProtocolError(f"malformed {cls.__name__}: {exc}") from None
    return msg
