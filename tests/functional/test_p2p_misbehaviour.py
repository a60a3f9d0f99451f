"""Misbehaving connections are dropped; nobody is banned for it.

A raw socket client connects from another loopback address (127.0.0.66,
.67, …: all of 127.0.0.0/8 is loopback), so its connections are told apart
from the honest validators' on 127.0.0.1.  A loopback host is local: it is
never banned or discouraged, only the offending connection is closed (the
reason is listed in ``recent_disconnects``).  Only the operator bans
(``node ban``).
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from pathlib import Path

import pytest

from o2ocli.chainspec import ChainSpec, load_spec
from o2ocli.consensus.poa import DIFF_IN_TURN, DIFF_NO_TURN, seal_header
from o2ocli.core.block import Block, BlockHeader, merkle_root
from o2ocli.crypto.keys import PrivateKey
from o2ocli.node.datadir import read_key_file
from o2ocli.p2p.messages import (
    FRAME_HEADER_SIZE,
    INV_BLOCK,
    MAX_PAYLOAD,
    PROTOCOL_VERSION,
    Addr,
    BlockMsg,
    GetData,
    GetHeaders,
    Headers,
    Inv,
    Ping,
    Pong,
    Verack,
    Version,
    Votes,
    decode_payload,
    encode_frame,
    parse_frame_header,
)
from o2ocli.rpc.errors import NOT_FOUND, RpcError

from .framework import Network, wait_until

IO_TIMEOUT = 10.0


class RawPeer:
    """A hand-driven P2P connection from ``source`` to ``node``."""

    def __init__(self, node, source: str, magic: bytes) -> None:
        self.magic = magic
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(IO_TIMEOUT)
        self.sock.bind((source, 0))
        self.sock.connect(("127.0.0.1", node.p2p_port))

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _read_exactly(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError(f"closed after {len(data)} of {n} bytes")
            data += chunk
        return data

    def read_message(self):
        head = self._read_exactly(FRAME_HEADER_SIZE)
        kind, length, checksum = parse_frame_header(self.magic, head)
        payload = self._read_exactly(length) if length else b""
        return decode_payload(kind, payload, checksum)

    def closed_by_node(self, timeout: float = IO_TIMEOUT) -> bool:
        """True once the node closes the connection (whatever it sent before)."""
        self.sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if not self.sock.recv(65536):
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False
        return False

    def handshake(self, info: dict) -> Version:
        """Complete a correct version/verack exchange; returns the node's version."""
        theirs = self.read_message()
        assert isinstance(theirs, Version), theirs
        ours = Version(PROTOCOL_VERSION, info["chain_id"], bytes.fromhex(info["genesis_hash"]),
                       0, 0, 0, secrets.randbits(64), "raw-test-peer")
        self.send(encode_frame(self.magic, ours))
        self.send(encode_frame(self.magic, Verack()))
        while True:
            msg = self.read_message()
            if isinstance(msg, Verack):
                return theirs


class Setup:
    """A two-validator network plus what the raw client needs to know."""

    def __init__(self, tmp_path: Path, node_factory) -> None:
        self.net = Network(tmp_path, node_factory, validators=2, period=1)
        self.net.start_all()
        self.v1, self.v2 = self.net.nodes
        self.spec: ChainSpec = load_spec(self.net.spec_path)
        self.magic = self.spec.network_magic
        wait_until(lambda: self.v1.rpc("getinfo")["peers"] == 1
                   and self.v2.rpc("getinfo")["peers"] == 1, 30, "v1 and v2 connected")
        self.v1.wait_height(2, timeout=30)

    def connect(self, source: str) -> RawPeer:
        return RawPeer(self.v1, source, self.magic)

    def validator_key(self, index: int) -> PrivateKey:
        return read_key_file(Path(self.net.key(index)), self.spec.wif_version)


@pytest.fixture
def setup(tmp_path, node_factory) -> Setup:
    return Setup(tmp_path, node_factory)


def banned_hosts(node) -> list[str]:
    return [b["host"] for b in node.rpc("getpeerinfo")["banned"]]


def misbehaviour_drops(node, host: str) -> list[str]:
    """Reasons of the recent disconnects of ``host``'s connections for misbehaviour."""
    return [d["reason"] for d in node.rpc("getpeerinfo")["recent_disconnects"]
            if d["address"].split(":")[0] == host and d["reason"].startswith("misbehaving")]


def assert_dropped_and_unharmed(s: Setup, host: str, before: list[str], why: str) -> None:
    """``host``'s connection was dropped for ``why``; the (local) host is neither
    banned nor discouraged, may connect again, and v1's chain is intact and growing."""
    drops = wait_until(lambda: misbehaviour_drops(s.v1, host), 10,
                       f"{host}'s connection to be dropped for misbehaviour")
    assert any(why in reason for reason in drops), drops
    assert all(p["address"].split(":")[0] != host for p in s.v1.rpc("getpeerinfo")["peers"])
    info = s.v1.rpc("getpeerinfo")
    assert info["banned"] == [] and info["discouraged"] == [], info
    # A new connection from the same (local) host is served as any other.
    again = s.connect(host)
    try:
        assert isinstance(again.read_message(), Version)
    finally:
        again.close()
    # The junk changed nothing: the old main chain is still there and it grows,
    # sealed by the honest validators that stayed connected.
    assert [s.v1.rpc("getblockhash", h) for h in range(len(before))] == before
    height = s.v1.height()
    wait_until(lambda: min(s.v1.height(), s.v2.height()) >= height + 2, 30,
               "the honest validators to keep sealing")
    assert s.v1.rpc("getinfo")["peers"] == 1
    assert "127.0.0.1" not in banned_hosts(s.v1)
    s.net.wait_synced(timeout=20)


def chain_so_far(node) -> list[str]:
    return [node.rpc("getblockhash", h) for h in range(node.height() + 1)]


# ---------------------------------------------------------------------------


def test_garbage_bytes_drops_the_connection_only(setup):
    before = chain_so_far(setup.v1)
    peer = setup.connect("127.0.0.66")
    peer.send(b"GET / HTTP/1.1\r\nHost: example\r\n\r\n" + os.urandom(64))
    assert peer.closed_by_node(), "the node kept a connection sending garbage"
    peer.close()
    assert_dropped_and_unharmed(setup, "127.0.0.66", before, "wrong network magic")
    assert "127.0.0.66" in setup.v1.log_path.read_text()


def test_wrong_network_magic_drops_the_connection_only(setup):
    before = chain_so_far(setup.v1)
    peer = setup.connect("127.0.0.67")
    wrong = bytes(b ^ 0xFF for b in setup.magic)
    peer.send(encode_frame(wrong, Ping(1)))
    assert peer.closed_by_node()
    peer.close()
    assert_dropped_and_unharmed(setup, "127.0.0.67", before, "wrong network magic")
    assert "wrong network magic" in setup.v1.log_path.read_text()


def test_oversize_frame_header_drops_the_connection_only(setup):
    before = chain_so_far(setup.v1)
    peer = setup.connect("127.0.0.68")
    # A correct magic and type but a length above 8 MiB; no payload follows:
    # the node must refuse on the header alone, without waiting for 8 MiB.
    head = setup.magic + bytes([BlockMsg.TYPE]) + (MAX_PAYLOAD + 1).to_bytes(4, "little")
    peer.send(head + bytes(4))
    assert peer.closed_by_node(5.0)
    peer.close()
    assert_dropped_and_unharmed(setup, "127.0.0.68", before, "exceeds the")
    assert "exceeds the" in setup.v1.log_path.read_text()


def bad_block_on_tip(s: Setup, *, seal_key: PrivateKey, tamper: bool) -> Block:
    """A block on v1's tip sealed by ``seal_key``; with ``tamper`` its header is
    changed after sealing so the seal no longer verifies."""
    tip = Block.from_bytes(bytes.fromhex(s.v1.rpc("getblock", s.v1.rpc("getbestblockhash"), 0)))
    header = BlockHeader(tip.height + 1, tip.hash, merkle_root([]),
                         max(tip.header.time + s.spec.period, int(time.time())), DIFF_NO_TURN)
    sealed = seal_header(header, seal_key, s.spec.chain_id)
    if tamper:
        sealed = BlockHeader(sealed.height, sealed.prev_hash, sealed.merkle_root,
                             sealed.time + 1, sealed.difficulty, sealed.vote_kind,
                             sealed.vote_address, sealed.checkpoint, sealed.seal_pubkey,
                             sealed.seal_signature)
    return Block(sealed, ())


def unknown_to(node, block_hash: bytes) -> bool:
    try:
        node.rpc("getblock", block_hash.hex())
    except RpcError as exc:
        return exc.code == NOT_FOUND
    return False


def test_block_with_invalid_seal_drops_the_connection_only(setup):
    before = chain_so_far(setup.v1)
    info = setup.v1.rpc("getinfo")
    peer = setup.connect("127.0.0.69")
    theirs = peer.handshake(info)
    assert theirs.chain_id == info["chain_id"] and theirs.height >= len(before) - 1
    # The connection works: a ping is answered.
    peer.send(encode_frame(setup.magic, Ping(42)))
    wait_until(lambda: isinstance(peer.read_message(), Pong), 10, "a pong")
    # A validator's seal over different header contents.
    block = bad_block_on_tip(setup, seal_key=setup.validator_key(0), tamper=True)
    peer.send(encode_frame(setup.magic, BlockMsg(block)))
    assert peer.closed_by_node()
    peer.close()
    assert_dropped_and_unharmed(setup, "127.0.0.69", before, "bad-poa-seal")
    assert unknown_to(setup.v1, block.hash) and unknown_to(setup.v2, block.hash)
    assert "bad-poa-seal" in setup.v1.log_path.read_text()


def test_header_chain_that_does_not_validate_drops_the_connection_only(setup):
    before = chain_so_far(setup.v1)
    info = setup.v1.rpc("getinfo")
    peer = setup.connect("127.0.0.70")
    peer.handshake(info)
    # Headers on the tip, sealed by a key that is no validator of this chain.
    outsider = PrivateKey.generate()
    first = bad_block_on_tip(setup, seal_key=outsider, tamper=False).header
    second = seal_header(BlockHeader(first.height + 1, first.hash, merkle_root([]),
                                     first.time + setup.spec.period, DIFF_NO_TURN),
                         outsider, setup.spec.chain_id)
    peer.send(encode_frame(setup.magic, Headers((first, second))))
    assert peer.closed_by_node()
    peer.close()
    assert_dropped_and_unharmed(setup, "127.0.0.70", before, "bad-poa-unauthorized")
    assert "invalid header" in setup.v1.log_path.read_text()
    assert "bad-poa-unauthorized" in setup.v1.log_path.read_text()
    assert unknown_to(setup.v1, first.hash)
    assert setup.v1.rpc("getinfo")["syncing"] is False  # nothing was queued


def test_operator_ban_refuses_the_host_until_unbanned(setup):
    host = "127.0.0.71"
    info = setup.v1.rpc("getinfo")
    peer = setup.connect(host)
    try:
        peer.handshake(info)
        wait_until(lambda: any(p["address"].startswith(host + ":") and p["ready"]
                               for p in setup.v1.rpc("getpeerinfo")["peers"]), 10,
                   "the raw peer to be ready")
        banned = setup.v1.cli_json("node", "ban", host, "--seconds", "7200")
        assert banned["banned"] == host and banned["until"] > time.time() + 3600
        assert peer.closed_by_node(), "a banned host's connection stayed up"
    finally:
        peer.close()
    listed = setup.v1.cli_json("node", "peers")["banned"]
    assert [b["host"] for b in listed] == [host] and listed[0]["until"] > time.time() + 3600
    # A new connection from the banned host is closed before any byte is sent.
    again = setup.connect(host)
    try:
        again.sock.settimeout(IO_TIMEOUT)
        assert again.sock.recv(65536) == b"", "a banned host got data"
    except ConnectionResetError:
        pass
    finally:
        again.close()
    bad = setup.v1.cli("node", "ban", host, "--seconds", "0")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr

    # addpeer refuses a banned host, unban lifts the ban (once).
    with pytest.raises(RpcError, match="banned"):
        setup.v1.rpc("addpeer", f"{host}:1")
    assert setup.v1.cli_json("node", "unban", host) == {"unbanned": host}
    assert banned_hosts(setup.v1) == []
    out = setup.v1.cli("node", "unban", host)
    assert out.returncode != 0 and "not banned" in out.stderr

    # Now a correct handshake gets through and the peer is listed as ready.
    peer = setup.connect(host)
    try:
        peer.handshake(info)
        wait_until(lambda: any(p["address"].startswith(host + ":") and p["ready"]
                               for p in setup.v1.rpc("getpeerinfo")["peers"]), 10,
                   "the unbanned host to be a ready peer")
        peer.send(encode_frame(setup.magic, Ping(7)))
        wait_until(lambda: isinstance(peer.read_message(), Pong), 10, "a pong")
    finally:
        peer.close()
    assert banned_hosts(setup.v1) == []


@pytest.mark.slow
def test_announced_header_whose_block_never_comes_does_not_stall_the_network(
        tmp_path, node_factory):
    """Validator v3 announces the header of a block it sealed, then vanishes
    (crash, power loss) before serving the body.  Nobody else has that block;
    v1 and v2 must go on following and sealing without it."""
    net = Network(tmp_path, node_factory, validators=3, period=1)
    v1, v2, _ = net.nodes
    v1.start("--validator-key", net.key(0))
    v2.start("--validator-key", net.key(1), "--connect", v1.p2p_address)
    spec = load_spec(net.spec_path)
    v3_key = read_key_file(Path(net.key(2)), spec.wif_version)
    wait_until(lambda: v1.rpc("getinfo")["peers"] == 1, 30, "v1 and v2 connected")
    v1.wait_height(3, timeout=30)  # two of three validators seal in turn

    peer = RawPeer(v1, "127.0.0.72", spec.network_magic)
    peer.handshake(v1.rpc("getinfo"))
    tip = Block.from_bytes(bytes.fromhex(v1.rpc("getblock", v1.rpc("getbestblockhash"), 0)))
    ordered = sorted(spec.validators)  # in-turn order of the (unchanged) validator set
    in_turn = ordered[(tip.height + 1) % len(ordered)] == v3_key.public_key.hash160()
    header = seal_header(
        BlockHeader(tip.height + 1, tip.hash, merkle_root([]),
                    max(tip.header.time + spec.period, int(time.time())),
                    DIFF_IN_TURN if in_turn else DIFF_NO_TURN),
        v3_key, spec.chain_id)
    peer.send(encode_frame(spec.network_magic, Headers((header,))))
    asked = peer.read_message()  # the header was valid: v1 asks for the body
    while isinstance(asked, (Votes, Headers, Inv)):  # relayed votes and blocks go by
        asked = peer.read_message()
    assert isinstance(asked, GetData) and asked.items[0][1] == header.hash, asked
    peer.close()  # ... which never comes
    assert banned_hosts(v1) == []

    height = v1.height()
    try:
        wait_until(lambda: min(v1.height(), v2.height()) >= height + 3, 45,
                   "v1 and v2 to seal 3 more blocks without v3's lost block")
    except AssertionError as exc:
        info = v1.rpc("getinfo")
        raise AssertionError(
            f"{exc}: v1 stuck at height {info['height']} with syncing={info['syncing']} "
            f"(v2 at {v2.height()}); v1 log:\n{v1.log_tail(8)}") from None
    net.wait_synced([v1, v2], timeout=20)
    assert v1.rpc("getinfo")["syncing"] is False


def test_inv_and_addr_floods_neither_stall_sealing_nor_lock_out_peers(setup):
    """Review findings: an inv flood of unknown block hashes (and a version
    claiming huge work) must not stop a validator from sealing, must not be
    amplified into one getheaders per hash, and filling the address book must
    not make the node drop every new peer."""
    s = setup
    info = s.v1.rpc("getinfo")
    raw = s.connect("127.0.0.80")
    try:
        theirs = raw.read_message()
        assert isinstance(theirs, Version)
        ours = Version(PROTOCOL_VERSION, info["chain_id"], bytes.fromhex(info["genesis_hash"]),
                       10**6, 10**12, 0, secrets.randbits(64), "flooder")
        raw.send(encode_frame(s.magic, ours))
        raw.send(encode_frame(s.magic, Verack()))
        start = s.v1.height()
        flood = Inv(tuple((INV_BLOCK, os.urandom(32)) for _ in range(5000)))
        for _ in range(3):
            raw.send(encode_frame(s.magic, flood))
        addrs = Addr(tuple((f"10.9.{i // 250}.{i % 250}", 18444, int(time.time()))
                           for i in range(1000)))
        for _ in range(11):
            raw.send(encode_frame(s.magic, addrs))
        # Count the getheaders the flood caused (read for a few seconds).
        getheaders = 0
        raw.sock.settimeout(0.5)
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            try:
                msg = raw.read_message()
            except (TimeoutError, OSError):
                continue
            if isinstance(msg, GetHeaders):
                getheaders += 1
        assert getheaders <= 4, f"{getheaders} getheaders for 3 inv messages"
        # Sealing went on during the flood.
        wait_until(lambda: s.v1.height() >= start + 3, 20, "v1 to keep sealing during the flood")
        assert s.v1.rpc("getinfo")["syncing"] is False
        # A well-behaved newcomer still gets in although the address book is full.
        newcomer = s.connect("127.0.0.81")
        try:
            newcomer.handshake(info)
            newcomer.send(encode_frame(s.magic, Ping(7)))
            newcomer.sock.settimeout(5)
            while True:
                msg = newcomer.read_message()
                if isinstance(msg, Pong):
                    assert msg.nonce == 7
                    break
        finally:
            newcomer.close()
    finally:
        raw.close()
