"""Fuzzing a running node over P2P and RPC (bounded, seeded, run in CI).

One ``--dev`` node (the target, sealing a block a second) and one honest full
node connected to it run for the whole module.  Each test is one phase of
hostile input, sent from raw sockets on other loopback addresses
(127.0.0.100 and up) or as HTTP bodies to the RPC port; after each phase:

* the target still answers ``getinfo`` and neither log holds a traceback;
* its resident memory grew less than ``RSS_GROWTH_LIMIT`` over its size
  before the first phase (VmRSS; the peak, VmHWM, is printed);
* the honest peer was never disconnected (the same connection is still a
  ready peer, nothing is banned) and keeps following: its height passes the
  target's height at the end of the phase.

Randomness is seeded by ``O2O_FUZZ_SEED`` (random by default; every assertion
message names it) and the amount of input scales with ``O2O_FUZZ_ROUNDS``
(default 1, a bounded run of well under two minutes).
"""

from __future__ import annotations

import base64
import http.client
import itertools
import json
import os
import random
import secrets
import select
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from o2ocli.chainspec import ChainSpec, load_spec
from o2ocli.consensus.poa import DIFF_NO_TURN, seal_header
from o2ocli.core.block import Block, BlockHeader, block_commitment
from o2ocli.core.encoding import Writer
from o2ocli.core.finality import Evidence, FinalityVote, vote_digest
from o2ocli.core.locks import PayToAddress
from o2ocli.core.tx import NATIVE_ASSET, Outpoint, SigPair, Tx, TxIn, TxOut
from o2ocli.crypto.hashes import sha256d
from o2ocli.crypto.keys import PrivateKey
from o2ocli.node.api import build_methods
from o2ocli.p2p.compactmsg import MAX_BLOCKTXN, compact_block
from o2ocli.p2p.messages import (
    INV_BLOCK,
    INV_TX,
    MAX_ADDR,
    MAX_EVIDENCE,
    MAX_GETDATA,
    MAX_HEADERS,
    MAX_INV,
    MAX_LOCATOR,
    MAX_VOTES,
    MESSAGE_TYPES,
    PROTOCOL_VERSION,
    Addr,
    BlockMsg,
    BlockTxn,
    CmpctBlock,
    EvidenceMsg,
    GetAddr,
    GetBlockTxn,
    GetData,
    GetHeaders,
    Headers,
    Inv,
    NotFound,
    Ping,
    Pong,
    TxMsg,
    Verack,
    Version,
    Votes,
    encode_frame,
)
from o2ocli.testing.chaingen import sign_tx

from .framework import NodeProcess, run_cli, wait_until
from .test_p2p_misbehaviour import RawPeer

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("O2O_FUZZ_SEED") or secrets.randbits(32))
ROUNDS = max(1, int(os.environ.get("O2O_FUZZ_ROUNDS") or 1))
RSS_GROWTH_LIMIT_KB = 150 * 1024
ROUNDTRIP_TIMEOUT = 30.0


def why(message: str) -> str:
    """An assertion message naming the seed (to replay: O2O_FUZZ_SEED=…)."""
    return f"{message} [O2O_FUZZ_SEED={SEED} O2O_FUZZ_ROUNDS={ROUNDS}]"


def rng_for(name: str) -> random.Random:
    """A generator of its own per phase, so one phase replays alone (-k)."""
    return random.Random(f"{SEED}/{name}")


def proc_status_kb(pid: int, field_name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field_name} in /proc/{pid}/status")


# ---------------------------------------------------------------------------
# The target and its honest peer
# ---------------------------------------------------------------------------


@dataclass
class Target:
    dev: NodeProcess
    honest: NodeProcess
    spec: ChainSpec
    info: dict
    honest_address: str
    """The honest node's connection as the target lists it (``host:port``)."""
    rss_before_kb: int
    next_host: Iterator[int] = field(default_factory=lambda: itertools.cycle(range(100, 250)))

    @property
    def magic(self) -> bytes:
        return self.spec.network_magic

    def source(self) -> str:
        """A fresh loopback address for the next raw connection."""
        return f"127.0.0.{next(self.next_host)}"

    def connect(self, source: str | None = None, handshake: bool = True) -> FuzzPeer:
        peer = FuzzPeer(self.dev, source or self.source(), self.magic)
        if handshake:
            peer.handshake(self.info)
        return peer

    def block(self, ref: int | str) -> Block:
        return Block.from_bytes(bytes.fromhex(self.dev.rpc("getblock", ref, 0)))

    def check(self, phase: str) -> None:
        """The invariants every phase must leave intact (see the module doc)."""
        dev, honest = self.dev, self.honest
        assert dev.running(), why(f"{phase}: the node died:\n{dev.log_tail()}")
        assert dev.rpc("getinfo")["chain_id"] == self.info["chain_id"], why(phase)
        rss = proc_status_kb(dev.proc.pid, "VmRSS")
        peak = proc_status_kb(dev.proc.pid, "VmHWM")
        print(f"\nfuzz {phase}: node VmRSS {rss // 1024} MiB (before the fuzz "
              f"{self.rss_before_kb // 1024} MiB), peak VmHWM {peak // 1024} MiB, "
              f"height {dev.height()} [O2O_FUZZ_SEED={SEED}]")
        assert rss - self.rss_before_kb < RSS_GROWTH_LIMIT_KB, why(
            f"{phase}: the node's RSS grew from {self.rss_before_kb} kB to {rss} kB")
        info = dev.rpc("getpeerinfo")
        assert info["banned"] == [], why(f"{phase}: something was banned: {info['banned']}")
        ready = [p["address"] for p in info["peers"] if p["ready"]]
        assert self.honest_address in ready, why(
            f"{phase}: the honest peer {self.honest_address} is gone; ready peers {ready}, "
            f"recent disconnects {info['recent_disconnects'][:5]}")
        assert not [d for d in info["recent_disconnects"] if d["address"] == self.honest_address]
        end = dev.height()
        wait_until(lambda: honest.height() > end, 60,
                   why(f"{phase}: the honest node to pass height {end}"))
        for node in (dev, honest):
            log = node.log_path.read_text(errors="replace")
            assert "Traceback" not in log, why(
                f"{phase}: traceback in {node.name}'s log:\n"
                + log[log.index("Traceback") - 300:][:3000])


@pytest.fixture(scope="module")
def target(tmp_path_factory) -> Iterator[Target]:
    root = tmp_path_factory.mktemp("fuzz")
    dev = NodeProcess(root / "dev", "dev")
    honest = NodeProcess(root / "honest", "honest")
    try:
        dev.start("--dev")
        init = run_cli(honest.datadir, "--chain", "devnet", "node", "init")
        assert init.returncode == 0, init.stderr
        honest.start("--connect", dev.p2p_address)
        spec = load_spec("devnet")
        dev.wait_height(3)
        honest.wait_height(3)

        def honest_peer() -> str | None:
            for peer in dev.rpc("getpeerinfo")["peers"]:
                if peer["ready"] and peer["address"].startswith("127.0.0.1:"):
                    return peer["address"]
            return None

        address = wait_until(honest_peer, 30, "the honest node to be the dev node's peer")
        target = Target(dev, honest, spec, dev.rpc("getinfo"), address,
                        proc_status_kb(dev.proc.pid, "VmRSS"))
        print(f"\nfuzz: O2O_FUZZ_SEED={SEED} O2O_FUZZ_ROUNDS={ROUNDS}")
        yield target
        target.check("end of the module")
    finally:
        for node in (dev, honest):
            node.kill()


# ---------------------------------------------------------------------------
# Raw peers
# ---------------------------------------------------------------------------


class FuzzPeer(RawPeer):
    """A raw connection that tells whether the node is still talking to it."""

    def alive(self, timeout: float = ROUNDTRIP_TIMEOUT) -> bool:
        """Send a ping; True once its pong comes back, False if the node closed
        the connection first (whatever else it sent meanwhile)."""
        nonce = secrets.randbits(64)
        try:
            self.send(encode_frame(self.magic, Ping(nonce)))
            self.sock.settimeout(timeout)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                msg = self.read_message()
                if isinstance(msg, Pong) and msg.nonce == nonce:
                    return True
        except (ConnectionError, OSError):
            return False
        raise AssertionError(why(f"no pong and no close within {timeout:.0f} s"))


def frame(magic: bytes, kind: int, payload: bytes, checksum: bytes | None = None) -> bytes:
    """A frame with any type and payload (the checksum right unless given)."""
    return (magic + bytes([kind]) + len(payload).to_bytes(4, "little")
            + (checksum if checksum is not None else sha256d(payload)[:4]) + payload)


def payload_of(msg: Any) -> bytes:
    w = Writer()
    msg.encode(w)
    return w.getvalue()


def varint(n: int) -> bytes:
    w = Writer()
    w.varint(n)
    return w.getvalue()


def make_vote(key: PrivateKey, chain_id: str, source: tuple[int, bytes],
              target: tuple[int, bytes]) -> FinalityVote:
    digest = vote_digest(chain_id, source[0], source[1], target[0], target[1])
    return FinalityVote(key.public_key.to_bytes(), source[0], source[1], target[0], target[1],
                        key.sign(digest))


def orphan_tx(rng: random.Random, chain_id: str, inputs: int = 1, pairs: int = 1) -> Tx:
    """A signed-looking transaction spending outputs nobody has."""
    key = PrivateKey.generate()
    tx = Tx(tuple(TxIn(Outpoint(rng.randbytes(32), rng.randrange(4))) for _ in range(inputs)),
            (TxOut(NATIVE_ASSET, 1000, PayToAddress(key.public_key.hash160())),))
    if pairs == 1:
        return sign_tx(tx, [[key]] * inputs, chain_id)
    pair = SigPair(key.public_key.to_bytes(), key.sign(tx.sighash(chain_id)))
    return tx.with_witnesses([(pair,) * pairs] * inputs)


def samples(t: Target, rng: random.Random) -> dict[int, bytes]:
    """A valid payload of every message type, from the target's real chain."""
    chain_id = t.spec.chain_id
    height = t.dev.height()
    blocks = [t.block(h) for h in range(max(1, height - 2), height + 1)]
    tip = blocks[-1]
    votes = tuple(v for b in blocks for v in b.votes)[:4]
    key = PrivateKey.generate()
    genesis = bytes.fromhex(t.info["genesis_hash"])
    evidence = Evidence.of(make_vote(key, chain_id, (0, genesis), (height, rng.randbytes(32))),
                           make_vote(key, chain_id, (0, genesis), (height, rng.randbytes(32))))
    items = tuple((rng.choice((INV_TX, INV_BLOCK)), rng.randbytes(32)) for _ in range(3))
    msgs = [
        Version(PROTOCOL_VERSION, chain_id, genesis, 0, 0, 0, rng.getrandbits(64), "fuzz"),
        Verack(), Ping(rng.getrandbits(64)), Pong(rng.getrandbits(64)),
        GetHeaders((tip.header.prev_hash, genesis)), Headers(tuple(b.header for b in blocks)),
        GetData(items), BlockMsg(tip), TxMsg(orphan_tx(rng, chain_id, inputs=2)), Inv(items),
        NotFound(items), GetAddr(),
        Addr((("10.1.2.3", 18444, int(time.time())), ("fuzz.example", 1, 0))),
        Votes(votes or (make_vote(key, chain_id, (0, genesis), (height, tip.hash)),)),
        EvidenceMsg((evidence,)),
        compact_block(tip), GetBlockTxn(tip.hash, (0,)), BlockTxn(rng.randbytes(32), ()),
    ]
    out = {type(m).TYPE: payload_of(m) for m in msgs}
    assert sorted(out) == sorted(MESSAGE_TYPES) == list(range(1, 19))
    return out


def mutate(rng: random.Random, data: bytes) -> bytes:
    """One random mutation: truncate, flip, insert, delete, append or replace."""
    how = rng.randrange(7)
    if how == 0 and data:
        return data[:rng.randrange(len(data))]
    if how == 1 and data:
        out = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
        return bytes(out)
    if how == 2:
        at = rng.randint(0, len(data))
        return data[:at] + rng.randbytes(rng.randint(1, 16)) + data[at:]
    if how == 3 and len(data) > 1:
        at = rng.randrange(len(data))
        return data[:at] + data[at + rng.randint(1, 32):]
    if how == 4:
        return data + rng.randbytes(rng.randint(1, 8))
    if how == 5 and data:
        out = bytearray(data)
        for _ in range(rng.randint(1, 4)):  # interesting values where counts live
            at = rng.randrange(len(out))
            out[at] = rng.choice((0x00, 0x01, 0x7F, 0x80, 0xFD, 0xFE, 0xFF))
        return bytes(out)
    return rng.randbytes(rng.randint(0, 400))


def random_message(t: Target, rng: random.Random, known: list[bytes], type_: int) -> Any:
    """A message of type ``type_`` that encodes correctly but whose fields are
    random: real hashes of the target's chain mixed with made-up ones, heights
    and counts anywhere in range, signatures that verify or do not."""
    chain_id = t.spec.chain_id
    genesis = bytes.fromhex(t.info["genesis_hash"])

    def some_hash() -> bytes:
        return rng.choice(known) if known and rng.random() < 0.5 else rng.randbytes(32)

    def u32() -> int:
        return rng.choice((0, 1, rng.randrange(2**32), 2**32 - 1, t.dev.height() + 1))

    def items(n: int) -> tuple[tuple[int, bytes], ...]:
        return tuple((rng.choice((INV_TX, INV_BLOCK)), some_hash()) for _ in range(n))

    def vote(key: PrivateKey | None = None) -> FinalityVote:
        key = key or PrivateKey.generate()
        source, target = (u32(), some_hash()), (u32(), some_hash())
        made = make_vote(key, chain_id, source, target)
        if rng.random() < 0.3:  # a signature over something else
            made = FinalityVote(made.signer_pubkey, made.source_height, made.source_hash,
                                made.target_height ^ 1, made.target_hash, made.signature)
        return made

    def header(prev: bytes, height: int) -> BlockHeader:
        key = PrivateKey.generate() if rng.random() < 0.7 else None
        at = rng.choice((int(time.time()), rng.randrange(2**32), 0, 2**64 - 1))
        made = random_header(rng, height, prev, key, chain_id, at)
        if rng.random() < 0.3:
            made = BlockHeader(made.height, made.prev_hash, made.merkle_root, made.time,
                               made.difficulty, rng.choice((1, 2)), rng.randbytes(20),
                               tuple(rng.randbytes(20) for _ in range(rng.randrange(4))),
                               made.seal_pubkey, made.seal_signature, rng.choice((1, 2, 3)))
        return made

    if type_ == Version.TYPE:
        return Version(rng.choice((0, 1, 2, 2**32 - 1)),
                       rng.choice((chain_id, "", "other", "\u00e9" * 20)),
                       rng.choice((genesis, some_hash())), u32(), rng.randrange(2**64),
                       rng.randrange(2**16), rng.getrandbits(64),
                       "".join(chr(rng.randrange(1, 0x2000)) for _ in range(rng.randrange(40))))
    if type_ in (Verack.TYPE, GetAddr.TYPE):
        return Verack() if type_ == Verack.TYPE else GetAddr()
    if type_ in (Ping.TYPE, Pong.TYPE):
        return (Ping if type_ == Ping.TYPE else Pong)(rng.getrandbits(64))
    if type_ == GetHeaders.TYPE:
        return GetHeaders(tuple(some_hash() for _ in range(rng.randrange(MAX_LOCATOR + 1))),
                          rng.choice((bytes(32), some_hash())))
    if type_ == Headers.TYPE:
        prev, height, out = some_hash(), u32(), []
        for _ in range(rng.randrange(1, 6)):
            made = header(prev, height)
            out.append(made)
            prev, height = made.hash, (height + 1) % 2**32
        return Headers(tuple(out))
    if type_ in (GetData.TYPE, NotFound.TYPE):
        return (GetData if type_ == GetData.TYPE else NotFound)(items(rng.randrange(50)))
    if type_ == Inv.TYPE:
        return Inv(items(rng.randrange(200)))
    if type_ == BlockMsg.TYPE:
        tip_hash = bytes.fromhex(t.dev.rpc("getbestblockhash"))
        made = header(rng.choice((tip_hash, some_hash())), rng.choice((t.dev.height() + 1, u32())))
        txs = tuple(orphan_tx(rng, chain_id, rng.randint(1, 3)) for _ in range(rng.randrange(3)))
        votes = tuple(vote() for _ in range(rng.randrange(3))) if made.version >= 2 else ()
        root = (block_commitment(made.version, txs, votes, ()) if rng.random() < 0.7
                else rng.randbytes(32))
        made = BlockHeader(made.height, made.prev_hash, root, made.time, made.difficulty,
                           made.vote_kind, made.vote_address, made.checkpoint, made.seal_pubkey,
                           made.seal_signature, made.version)
        return BlockMsg(Block(made, txs, votes, ()))
    if type_ == TxMsg.TYPE:
        return TxMsg(orphan_tx(rng, chain_id, rng.randint(1, 5), rng.choice((1, 1, 2, 15))))
    if type_ == Addr.TYPE:
        hosts = ("0.0.0.0", "127.0.0.1", "::1", "[::1]", "255.255.255.255", "999.1.1.1",
                 "fe80::1", "example.com", "", "\x00", "1.2.3.4:5", "a" * 64, "10.0.0.1")
        return Addr(tuple((rng.choice(hosts) if rng.random() < 0.5
                           else ".".join(str(rng.randrange(256)) for _ in range(4)),
                           rng.randrange(2**16), rng.choice((0, int(time.time()), 2**64 - 1)))
                          for _ in range(rng.randrange(50))))
    if type_ == Votes.TYPE:
        return Votes(tuple(vote() for _ in range(rng.randrange(1, 8))))
    if type_ == CmpctBlock.TYPE:  # unasked: ignored; or malformed votes: closed
        block = random_message(t, rng, known, BlockMsg.TYPE).block
        return compact_block(block, tuple(rng.sample(range(4), rng.randrange(3))))
    if type_ == GetBlockTxn.TYPE:
        return GetBlockTxn(some_hash(), tuple(sorted(rng.sample(range(12), rng.randrange(4)))))
    if type_ == BlockTxn.TYPE:
        return BlockTxn(some_hash(), tuple(orphan_tx(rng, chain_id, 1)
                                           for _ in range(rng.randrange(3))))
    assert type_ == EvidenceMsg.TYPE
    pairs = []
    for _ in range(rng.randrange(1, 4)):
        key = PrivateKey.generate()
        pairs.append(Evidence.of(vote(key), vote(key if rng.random() < 0.8 else None)))
    return EvidenceMsg(tuple(pairs))


# ---------------------------------------------------------------------------
# P2P phases
# ---------------------------------------------------------------------------


def test_random_truncated_and_mutated_frames_of_every_type(target):
    """Every type 1..15: its valid sample mutated (checksum fixed, so the
    payload decoder and the handler see it), random payloads, stale
    checksums, unknown types, and frames cut off mid-way.  Each is followed by
    a ping: the node either answers or closes that one connection."""
    t = target
    rng = rng_for("frames")
    base = samples(t, rng)
    outcomes = {"answered": 0, "closed": 0}
    peer = t.connect()
    try:
        for _ in range(6 * ROUNDS):
            for kind, payload in base.items():
                data = mutate(rng, payload)
                cases = [frame(t.magic, kind, data),
                         frame(t.magic, kind, payload, rng.randbytes(4))]
                if rng.random() < 0.3:
                    cases.append(frame(t.magic, rng.choice((0, 19, 99, 255)), data))
                for case in cases:
                    peer.send(case)
                    if peer.alive():
                        outcomes["answered"] += 1
                        continue
                    outcomes["closed"] += 1
                    peer.close()
                    peer = t.connect()
        # Before the handshake: a mutated frame as the first message.
        for kind, payload in base.items():
            raw = t.connect(handshake=False)
            try:
                raw.read_message()  # the node's version
                raw.send(frame(t.magic, kind, mutate(rng, payload)))
                if kind != Version.TYPE:
                    assert raw.closed_by_node(), why(f"type {kind} before the handshake kept")
            finally:
                raw.close()
        # Cut off mid-frame: the header promises more than is sent.
        for kind, payload in base.items():
            raw = t.connect()
            full = frame(t.magic, kind, payload)
            raw.send(full[:rng.randint(1, len(full) - 1)])
            raw.close()
        # Random bytes on a fresh connection.
        for _ in range(5 * ROUNDS):
            raw = t.connect(handshake=rng.random() < 0.5)
            raw.send(rng.randbytes(rng.randint(1, 2000)))
            raw.close()
    finally:
        peer.close()
    print(f"fuzz frames: {outcomes}")
    assert outcomes["closed"] > 0 and outcomes["answered"] > 0, why(str(outcomes))
    t.check("mutated frames")


def test_messages_with_random_fields_of_every_type(target):
    """Messages that decode, with random contents, reach every handler: the
    node answers the ping that follows each or closes that one connection."""
    t = target
    rng = rng_for("fields")
    height = t.dev.height()
    known = [bytes.fromhex(t.dev.rpc("getblockhash", h)) for h in range(height + 1)]
    known += [bytes.fromhex(txid) for h in range(1, height + 1)
              for txid in t.dev.rpc("getblock", h)["txs"]][:20]
    outcomes = {"answered": 0, "closed": 0}
    peer = t.connect()
    try:
        for _ in range(8 * ROUNDS):
            for type_ in sorted(MESSAGE_TYPES):
                peer.send(encode_frame(t.magic, random_message(t, rng, known, type_)))
                if peer.alive():
                    outcomes["answered"] += 1
                    continue
                outcomes["closed"] += 1
                peer.close()
                peer = t.connect()
    finally:
        peer.close()
    print(f"fuzz fields: {outcomes}")
    assert outcomes["answered"] > 0 and outcomes["closed"] > 0, why(str(outcomes))
    t.check("random fields")


def test_counts_above_every_cap_close_the_connection(target):
    """A varint count one above each list's cap (and the largest varint) is
    malformed: that connection is closed, before anything is allocated."""
    t = target
    rng = rng_for("caps")
    ver = payload_of(Version(PROTOCOL_VERSION, t.spec.chain_id, bytes(32), 0, 0, 0, 1, "x"))
    tip = t.block(t.dev.height())
    header = tip.header.to_bytes()
    cases = {
        "getheaders": (GetHeaders.TYPE, MAX_LOCATOR, bytes(32)),
        "headers": (Headers.TYPE, MAX_HEADERS, header),
        "getdata": (GetData.TYPE, MAX_GETDATA, b"\x01" + bytes(32)),
        "inv": (Inv.TYPE, MAX_INV, b"\x02" + bytes(32)),
        "notfound": (NotFound.TYPE, MAX_GETDATA, b"\x01" + bytes(32)),
        "addr": (Addr.TYPE, MAX_ADDR, b"\x01a" + bytes(10)),
        "votes": (Votes.TYPE, MAX_VOTES, bytes(169)),
        "evidence": (EvidenceMsg.TYPE, MAX_EVIDENCE, bytes(338)),
        "getblocktxn": (GetBlockTxn.TYPE, MAX_BLOCKTXN, b"\x01"),
        "blocktxn": (BlockTxn.TYPE, MAX_BLOCKTXN, bytes(64)),
    }
    sent = []
    for name, (kind, cap, item) in cases.items():
        prefix = bytes(32) if kind in (GetBlockTxn.TYPE, BlockTxn.TYPE) else b""
        for count in (cap + 1, cap + 1 + rng.randrange(1000), 2**64 - 1):
            sent.append((f"{name} n={count}",
                         frame(t.magic, kind, prefix + varint(count) + item * 2)))
    # Counts inside a block and a transaction, and over-long strings.
    sent += [
        ("block txs", frame(t.magic, BlockMsg.TYPE, header + varint(200_001) + bytes(64))),
        ("cmpctblock txids", frame(t.magic, CmpctBlock.TYPE, header + varint(200_001))),
        ("tx inputs", frame(t.magic, TxMsg.TYPE, bytes(4) + varint(10_001) + bytes(64))),
        ("addr host", frame(t.magic, Addr.TYPE, b"\x01" + varint(65) + b"h" * 65 + bytes(10))),
        ("version agent", frame(t.magic, Version.TYPE, ver[:-2] + varint(257) + b"a" * 257)),
        ("varint 9 bytes", frame(t.magic, Inv.TYPE, b"\xff" + b"\xff" * 8)),
    ]
    for _ in range(ROUNDS - 1):
        sent += rng.sample(sent, min(8, len(sent)))
    for what, data in sent:
        peer = t.connect()
        try:
            peer.send(data)
            assert peer.closed_by_node(), why(f"{what}: the connection stayed open")
        finally:
            peer.close()
    reasons = [d["reason"] for d in t.dev.rpc("getpeerinfo")["recent_disconnects"]
               if d["address"].split(":")[0] != "127.0.0.1"]
    assert any("malformed" in r for r in reasons), why(str(reasons[:5]))
    t.check("oversize counts")


def random_header(rng: random.Random, height: int, prev: bytes, key: PrivateKey | None,
                  chain_id: str, at: int | None = None) -> BlockHeader:
    at = int(time.time()) - rng.randrange(60) if at is None else at
    header = BlockHeader(height, prev, rng.randbytes(32), at, rng.choice((1, DIFF_NO_TURN, 2)))
    if key is None:
        return BlockHeader(header.height, header.prev_hash, header.merkle_root, header.time,
                           header.difficulty, seal_pubkey=b"\x02" + rng.randbytes(32),
                           seal_signature=rng.randbytes(64))
    return seal_header(header, key, chain_id)


def test_header_floods(target):
    """Many ``headers`` messages: full batches that connect to nothing (the
    node asks for headers again, punishes nothing), headers forking from old
    blocks, and sealed-but-unauthorised headers on the tip (that connection
    is closed).  Nothing is stored or queued for download."""
    t = target
    rng = rng_for("headers")
    chain_id = t.spec.chain_id
    outsider = PrivateKey.generate()
    unconnected = b"".join(random_header(rng, 10_000 + i, rng.randbytes(32), None, chain_id)
                           .to_bytes() for i in range(MAX_HEADERS))
    peer = t.connect()
    try:
        for _ in range(10 * ROUNDS):
            # Full batches whose first header's parent is unknown (the rest
            # are never looked at), each with a different first header.
            first = random_header(rng, rng.randrange(2**32), rng.randbytes(32), None, chain_id)
            peer.send(frame(t.magic, Headers.TYPE, varint(MAX_HEADERS) + first.to_bytes()
                            + unconnected[len(first.to_bytes()):]))
        assert peer.alive(), why("unconnected headers cost the connection")
        height = t.dev.height()
        for _ in range(10 * ROUNDS):
            # Headers forking from an old block: below the finalized height.
            base = t.block(rng.randrange(0, max(1, height - 2)))
            fork = tuple(random_header(rng, base.height + 1, base.hash, outsider, chain_id)
                         for _ in range(1))
            peer.send(encode_frame(t.magic, Headers(fork)))
        assert peer.alive(), why("headers forking below the finalized height were punished")
    finally:
        peer.close()
    # Valid-looking headers on the tip, sealed by a key that is no validator:
    # punished, unless the tip moved on by two blocks meanwhile (then they
    # fork below the finalized height and are ignored).
    closed = 0
    for _ in range(10 * ROUNDS):
        raw = t.connect()
        try:
            tip = t.block(t.dev.rpc("getbestblockhash"))
            header = random_header(rng, tip.height + 1, tip.hash, outsider, chain_id,
                                   max(int(time.time()), tip.header.time + t.spec.period))
            raw.send(encode_frame(t.magic, Headers((header,))))
            if raw.closed_by_node():
                closed += 1
            else:
                assert t.dev.height() >= tip.height + 2, why("an unauthorised header was kept")
        finally:
            raw.close()
        if closed == 3 * ROUNDS:
            break
    assert closed == 3 * ROUNDS, why(f"only {closed} unauthorised headers closed")
    assert t.dev.rpc("getinfo")["syncing"] is False, why("forged headers were queued")
    t.check("header floods")


def test_orphan_flood_keeps_the_orphan_pool_bounded(target):
    """Transactions spending outputs nobody has are orphans; a flood of them,
    big ones among them (up to the devnet's 100 kB limit; their decoded form
    takes several times their wire size), must neither grow the node's memory
    without bound nor cost the sender its connection (a missing input is not
    the sender's fault)."""
    t = target
    rng = rng_for("orphans")
    chain_id = t.spec.chain_id
    big_template = orphan_tx(rng, chain_id, inputs=65, pairs=15)  # just under 100 kB
    peer = t.connect()
    try:
        for i in range(150 * ROUNDS):
            if i % 3 == 0:
                # A different big orphan each time: new prevouts, same witnesses.
                tx = Tx(tuple(TxIn(Outpoint(rng.randbytes(32), 0), txin.witness)
                              for txin in big_template.inputs), big_template.outputs)
            else:
                tx = orphan_tx(rng, chain_id, inputs=rng.randint(1, 3))
            peer.send(encode_frame(t.magic, TxMsg(tx)))
            if i % 25 == 24:
                assert peer.alive(), why(f"an orphan flood ({i + 1} txs) cost the connection")
        assert peer.alive(), why("the orphan flood cost the connection")
    finally:
        peer.close()
    assert t.dev.rpc("getinfo")["mempool_size"] == 0, why("an orphan entered the mempool")
    t.check("orphan flood")


def test_addr_flood(target):
    """``addr`` floods from several hosts: the rate limit drops most of them
    and the address book stays within its capacity."""
    t = target
    rng = rng_for("addr")
    before = t.dev.rpc("getaddrmaninfo")
    now = int(time.time())
    peers = [t.connect() for _ in range(3)]
    try:
        for _ in range(10 * ROUNDS):
            for peer in peers:
                addrs = tuple((f"{rng.randrange(1, 224)}.{rng.randrange(256)}."
                               f"{rng.randrange(256)}.{rng.randrange(1, 255)}",
                               rng.randrange(1, 65536), now - rng.randrange(86400))
                              for _ in range(MAX_ADDR))
                peer.send(encode_frame(t.magic, Addr(addrs)))
        for peer in peers:
            assert peer.alive(), why("an addr flood cost the connection")
    finally:
        for peer in peers:
            peer.close()
    after = t.dev.rpc("getaddrmaninfo")
    print(f"fuzz addr: addrman before {before}, after {after}")
    assert after["rate_limited"] > before["rate_limited"], why("no address was rate-limited")
    assert after["total"] <= after["capacity"], why(str(after))
    t.check("addr flood")


def test_getdata_flood_from_peers_that_do_not_read(target):
    """Peers ask for the same block a thousand times per ``getdata`` and never
    read the answers.  The node stops serving a peer once about a megabyte
    waits to be sent to it (its requests wait, at most 10 000 items, then it
    is dropped), so eight such peers cost little memory (before, each could
    queue 64 MiB of blocks)."""
    t = target
    block_hash = bytes.fromhex(t.dev.rpc("getblockhash", 1))
    request = encode_frame(t.magic, GetData(tuple((INV_BLOCK, block_hash)
                                                  for _ in range(MAX_GETDATA))))
    peers = [t.connect() for _ in range(8)]
    try:
        # 150 requests each (50 MiB of answers, under the 64 MiB that gets a
        # connection closed), sent for as long as the node reads them (5 s).
        unsent = {peer.sock: memoryview(request * 150 * ROUNDS) for peer in peers}
        for sock in unsent:
            sock.setblocking(False)
        deadline = time.monotonic() + 5
        while unsent and time.monotonic() < deadline:
            _, writable, _ = select.select([], list(unsent), [], 0.2)
            for sock in writable:
                data = unsent[sock]
                data = data[sock.send(data[:1 << 20]):]
                if data:
                    unsent[sock] = data
                else:
                    del unsent[sock]

        def served() -> list[int]:
            ports = {p.sock.getsockname()[1] for p in peers}
            return sorted(p["bytes_sent"] for p in t.dev.rpc("getpeerinfo")["peers"]
                          if int(p["address"].rsplit(":", 1)[1]) in ports)

        last: list[list[int]] = [[]]

        def settled() -> bool:
            now = served()
            done, last[0] = now == last[0], now
            time.sleep(0.5)
            return done

        wait_until(settled, 60, why("the node to stop serving the flood"))
        t.check("getdata flood")
    finally:
        for peer in peers:
            peer.close()


def test_vote_and_evidence_floods(target):
    """Finality votes with valid signatures by random keys for blocks nobody
    has (kept in the bounded pending pool, never punished), and evidence of
    equivocation by keys that are no validator (of no use: not kept)."""
    t = target
    rng = rng_for("votes")
    chain_id = t.spec.chain_id
    keys = [PrivateKey.generate() for _ in range(16)]
    finalized = t.dev.rpc("getinfo")["finalized_height"]
    peer = t.connect()
    try:
        for _ in range(6 * ROUNDS):
            votes = []
            for _ in range(MAX_VOTES):
                target_height = finalized + 1 + rng.randrange(10**6)
                votes.append(make_vote(rng.choice(keys), chain_id,
                                       (rng.randrange(target_height), rng.randbytes(32)),
                                       (target_height, rng.randbytes(32))))
            peer.send(encode_frame(t.magic, Votes(tuple(votes))))
        assert peer.alive(), why("votes for unknown blocks cost the connection")
        for _ in range(4 * ROUNDS):
            evidence = []
            for _ in range(MAX_EVIDENCE):
                key = rng.choice(keys)
                h = finalized + 1 + rng.randrange(1000)
                a = make_vote(key, chain_id, (h - 1, rng.randbytes(32)), (h, rng.randbytes(32)))
                b = make_vote(key, chain_id, (h - 1, rng.randbytes(32)), (h, rng.randbytes(32)))
                evidence.append(Evidence.of(a, b))
            peer.send(encode_frame(t.magic, EvidenceMsg(tuple(evidence))))
        assert peer.alive(), why("evidence against non-validators cost the connection")
    finally:
        peer.close()
    assert t.dev.rpc("listevidence")["evidence"] == [], why(
        "evidence against keys that are no validator was kept")
    # Finality goes on: the node's own votes still finalize new blocks.
    wait_until(lambda: t.dev.rpc("getinfo")["finalized_height"] > finalized + 1, 30,
               why("finality to go on after the vote flood"))
    t.check("vote and evidence floods")


# ---------------------------------------------------------------------------
# RPC
# ---------------------------------------------------------------------------


class Rpc:
    """Raw HTTP to the node's RPC port with its cookie."""

    def __init__(self, node: NodeProcess) -> None:
        self.port = node.rpc_port
        user, password = (node.datadir / ".cookie").read_text().strip().split(":", 1)
        self.auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def post(self, body: bytes, path: str = "/", method: str = "POST",
             auth: bool = True) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            headers = {"Content-Type": "application/json"}
            if auth:
                headers["Authorization"] = self.auth
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        except (TimeoutError, ConnectionError) as exc:
            raise AssertionError(why(f"RPC connection failed for body {body[:200]!r}: {exc}"))
        finally:
            conn.close()


def check_reply(status: int, body: bytes, request: bytes) -> Any:
    """A JSON-RPC answer (result or error, never an internal error) or a 4xx."""
    shown = request[:300]
    assert status != 500 and status < 500, why(f"HTTP {status} for {shown!r}: {body[:500]!r}")
    if status == 204:
        return None
    reply = json.loads(body)
    if 400 <= status < 500:
        return reply
    assert status == 200, why(f"HTTP {status} for {shown!r}")
    for item in reply if isinstance(reply, list) else [reply]:
        assert isinstance(item, dict) and item.get("jsonrpc") == "2.0", why(f"{item!r}")
        assert ("result" in item) != ("error" in item), why(f"{item!r} for {shown!r}")
        if "error" in item:
            assert item["error"]["code"] != -32603, why(
                f"internal error for {shown!r}: {item['error']}")
    return reply


def random_json(rng: random.Random, depth: int = 0) -> Any:
    pick = rng.randrange(12 if depth < 4 else 8)
    if pick == 0:
        return None
    if pick == 1:
        return rng.random() < 0.5
    if pick == 2:
        return rng.choice((0, -1, 1, 2**31, 2**32, 2**53 + 1, 2**64, -(2**63), 10**30))
    if pick == 3:
        return rng.uniform(-1e6, 1e6)
    if pick == 4:
        return rng.choice(("", "0", "zz", "00" * 32, "ff" * 33, "é", "\u0000", "a" * 5000,
                           "-1", "1e400", "o2o1qqqq", "127.0.0.1:1"))
    if pick == 5:
        return rng.randbytes(rng.randrange(40)).hex()
    if pick == 6:
        return "".join(chr(rng.randrange(32, 0x3000)) for _ in range(rng.randrange(20)))
    if pick == 7:
        return rng.randrange(-5, 100)
    if pick in (8, 9):
        return [random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(("a", "id", "method", "params", "ref", "", "0")): random_json(rng, depth + 1)
            for _ in range(rng.randrange(4))}


UNSAFE = {
    # Valid calls of these would take the node (or its honest peer) down or
    # change what it seals: only wrong arguments are sent to them.
    "stop": lambda v: isinstance(v, list) and len(v) > 0,
    "setnetworkactive": lambda v: not isinstance(v, bool),
    "ban": lambda v: not isinstance(v, str),
    "addpeer": lambda v: not isinstance(v, str),
    "propose": lambda v: not isinstance(v, str),
}


def method_signatures() -> dict[str, list[str]]:
    """Every RPC method the node registers, with its parameter names (read
    from the registry :func:`build_methods` fills; the stand-in node is only
    looked at when a method runs)."""
    methods = build_methods(SimpleNamespace(spec=None, chain=SimpleNamespace(state=None)))
    out = {}
    for name in methods.names():
        usage = methods.usage(name).split()[1:]
        out[name] = [part.strip("<>[]").split("=")[0] for part in usage]
    return out


def test_rpc_fuzz(target):
    """Every registered method with arguments of every wrong type (by
    position and by name, too many, unknown names), random JSON bodies,
    batches with garbage, invalid UTF-8, huge and deeply nested JSON."""
    t = target
    rng = rng_for("rpc")
    rpc = Rpc(t.dev)
    signatures = method_signatures()
    assert len(signatures) >= 39 and "getblock" in signatures and "submitvote" in signatures
    sent = 0

    def send(obj: Any) -> Any:
        nonlocal sent
        body = json.dumps(obj).encode()
        sent += 1
        return check_reply(*rpc.post(body), body)

    def call(name: str, params: Any) -> None:
        reply = send({"jsonrpc": "2.0", "id": sent, "method": name, "params": params})
        assert reply is not None

    for name, params in signatures.items():
        allowed = UNSAFE.get(name, lambda v: True)
        for _ in range(4 * ROUNDS):
            args = [random_json(rng) for _ in range(rng.randint(0, len(params) + 1))]
            if name in UNSAFE and not (args and all(allowed(a) for a in args)):
                args = [[None]] * max(1, len(params))
            call(name, args)
            named = {p: random_json(rng) for p in params if rng.random() < 0.7}
            if name in UNSAFE:
                named = {p: {"x": 1} for p in params}
                if name == "stop":
                    named = {"x": 1}
            elif rng.random() < 0.3:
                named["nosuchparam"] = 1
            call(name, named)
        if name not in UNSAFE:
            call(name, [None] * (len(params) + 3))
    # Random bodies: objects, arrays, scalars; random (mis)spelled envelopes.
    for _ in range(100 * ROUNDS):
        obj = random_json(rng)
        if rng.random() < 0.6:
            obj = {"jsonrpc": rng.choice(("2.0", "1.0", 2, None)),
                   "id": random_json(rng),
                   "method": rng.choice([*(n for n in signatures if n not in UNSAFE),
                                         "nosuch", "", 5, None]),
                   "params": random_json(rng)}
        send(obj)
    # Batches with garbage (notifications among them).
    for _ in range(10 * ROUNDS):
        batch = [rng.choice((random_json(rng), {"jsonrpc": "2.0", "method": "getblockcount"},
                             {"jsonrpc": "2.0", "id": 1, "method": "getblock",
                              "params": [random_json(rng)]}))
                 for _ in range(rng.randint(1, 30))]
        send(batch)
    # Malformed bodies.
    bodies = [b"", b"{", b"[", b"]", b"\xff\xfe\xfd", b'{"jsonrpc":"2.0","method":"\xc3\x28"}',
              b'"\xed\xa0\x80"', b"NaN", b"[NaN]", b'{"id":1e999999}', b"1" * 5000,
              b"[" * 100_000 + b"]" * 100_000, b"{\"a\":" * 50_000 + b"1" + b"}" * 50_000,
              b"[" * 900 + b"]" * 900,
              json.dumps({"jsonrpc": "2.0", "id": 1, "method": "getblock",
                          "params": ["a" * (7 * 1024 * 1024)]}).encode(),
              b"[" + b"{}," * 10_000 + b"{}]",
              b" " * (8 * 1024 * 1024 + 1)]
    for _ in range(20 * ROUNDS):
        bodies.append(rng.randbytes(rng.randint(1, 300)))
    for body in bodies:
        check_reply(*rpc.post(body), body)
        sent += 1
    # HTTP-level refusals.
    assert rpc.post(b"{}", auth=False)[0] == 401
    assert rpc.post(b"{}", path="/x")[0] == 404
    assert rpc.post(b"", method="GET")[0] == 405
    print(f"fuzz rpc: {sent} requests to {len(signatures)} methods")
    t.check("RPC fuzz")
