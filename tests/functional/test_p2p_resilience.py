"""Honest peers survive junk from their own host, clock skew and full inbound slots.

* Junk from 127.0.0.1, the host every validator here shares, gets only the
  offending connection dropped: a local address is never banned.
* A validator whose clock runs 20 s fast (``O2OCLI_TEST_CLOCK_OFFSET``) sends
  blocks from the future; they are kept and accepted when their time comes,
  nobody is punished, and the network stays one chain.
* When inbound slots are full a newcomer evicts an idle peer, never the one
  that relays valid blocks.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from pathlib import Path

import pytest

from o2ocli.chainspec import load_spec
from o2ocli.consensus.poa import DIFF_IN_TURN, DIFF_NO_TURN, seal_header
from o2ocli.core.block import Block, BlockHeader, tx_merkle_root
from o2ocli.core.locks import PayToAddress
from o2ocli.core.tx import NATIVE_ASSET, Outpoint, Tx, TxIn, TxOut
from o2ocli.crypto.keys import PrivateKey
from o2ocli.node.datadir import read_key_file
from o2ocli.node.runtime import CLOCK_OFFSET_ENV
from o2ocli.p2p.messages import (
    MAX_PAYLOAD,
    BlockMsg,
    GetData,
    Headers,
    Ping,
    Pong,
    encode_frame,
)
from o2ocli.testing.chaingen import sign_tx

from .framework import Network, wait_until
from .test_p2p_misbehaviour import RawPeer
from .test_p2p_network import ready_peers, wait_mesh

MAX_JUNK_ROUNDS = 8


def tip_block(node) -> Block:
    return Block.from_bytes(bytes.fromhex(node.rpc("getblock", node.rpc("getbestblockhash"), 0)))


def block_on_tip(node, spec, key: PrivateKey, txs: tuple[Tx, ...] = ()) -> Block:
    """A block of ``txs`` on ``node``'s tip sealed by ``key`` (its header is
    valid iff ``key`` may seal)."""
    tip = tip_block(node)
    ordered = sorted(spec.validators)
    in_turn = ordered[(tip.height + 1) % len(ordered)] == key.public_key.hash160()
    header = BlockHeader(tip.height + 1, tip.hash, tx_merkle_root(txs),
                         max(tip.header.time + spec.period, int(time.time())),
                         DIFF_IN_TURN if in_turn else DIFF_NO_TURN)
    return Block(seal_header(header, key, spec.chain_id), txs)


def junk_messages(spec) -> list[tuple[str, bytes | None]]:
    """(what, bytes) of each attack; None: handshake, then an invalid block."""
    magic = spec.network_magic
    wrong = bytes(b ^ 0xFF for b in magic)
    return [
        ("zeros", bytes(64)),
        ("bad magic", encode_frame(wrong, Ping(1))),
        ("oversize", magic + bytes([BlockMsg.TYPE]) + (MAX_PAYLOAD + 1).to_bytes(4, "little")
         + bytes(4)),
        ("invalid block", None),
    ]


def misbehaviour_drops(node, junk_addresses: set[str]) -> list[dict]:
    return [d for d in node.rpc("getpeerinfo")["recent_disconnects"]
            if d["address"] not in junk_addresses
            and ("misbehaving" in d["reason"] or "banned" in d["reason"])]


@pytest.mark.slow
def test_junk_from_the_validators_own_host_never_splits_the_network(tmp_path, node_factory):
    """Item 2: three validators on 127.0.0.1; a fourth process on the same
    address sends garbage, a wrong magic, an oversize length and an invalid
    block to each of them, round after round (at most MAX_JUNK_ROUNDS) while
    they seal.  Each junk connection is dropped; 127.0.0.1 is never banned; the
    validators stay connected, keep sealing and agree."""
    net = Network(tmp_path, node_factory, validators=3, period=1)
    net.start_all()
    wait_mesh(net.nodes)
    spec = load_spec(net.spec_path)
    outsider = PrivateKey.generate()
    start = min(n.height() for n in net.nodes)
    junk_addresses: set[str] = set()
    rounds: list[int] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def junk() -> None:
        try:
            for round_no in range(MAX_JUNK_ROUNDS):
                for node in net.nodes:
                    for what, data in junk_messages(spec):
                        raw = RawPeer(node, "127.0.0.1", spec.network_magic)
                        junk_addresses.add(f"127.0.0.1:{raw.sock.getsockname()[1]}")
                        try:
                            if data is None:
                                raw.handshake(node.rpc("getinfo"))
                                bad = block_on_tip(node, spec, outsider)  # unauthorised
                                data = encode_frame(spec.network_magic, BlockMsg(bad))
                            raw.send(data)
                            assert raw.closed_by_node(), f"{node.name} kept {what}"
                        finally:
                            raw.close()
                rounds.append(round_no)
                if stop.is_set():
                    return
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test
            errors.append(exc)

    sender = threading.Thread(target=junk, daemon=True)
    sender.start()
    try:
        wait_until(lambda: errors or (len(rounds) >= 2
                                      and min(n.height() for n in net.nodes) >= start + 5),
                   90, "the validators to seal 5 blocks during 2 rounds of junk")
    finally:
        stop.set()
        sender.join(120)
    if errors:
        raise errors[0]
    for node in net.nodes:
        info = node.rpc("getpeerinfo")
        assert info["banned"] == [] and info["discouraged"] == [], (node.name, info)
        reasons = [d["reason"] for d in info["recent_disconnects"]
                   if d["address"] in junk_addresses]
        assert any("wrong network magic" in r for r in reasons), reasons
        assert any("bad-poa-unauthorized" in r for r in reasons), reasons
        assert misbehaviour_drops(node, junk_addresses) == [], node.name
    shown = net.nodes[0].cli("node", "peers")
    assert shown.returncode == 0 and "recent disconnects" in shown.stdout
    assert "misbehaving" in shown.stdout
    wait_mesh(net.nodes)
    height = min(n.height() for n in net.nodes)
    wait_until(lambda: min(n.height() for n in net.nodes) >= height + 2, 30,
               "the validators to keep sealing")
    net.wait_synced(timeout=30)


@pytest.mark.slow
def test_validator_with_a_fast_clock_does_not_split_the_network(tmp_path, node_factory):
    """Item 3: v2's clock runs 20 s fast, 5 s beyond the 15 s allowed.  With two
    validators neither may seal twice in a row, so the chain grows only if v1
    accepts v2's blocks: it keeps each early one and accepts it when its time
    comes, punishes nobody, and a full node follows the same chain."""
    net = Network(tmp_path, node_factory, validators=2, period=1)
    v1, v2 = net.nodes
    v1.start("--validator-key", net.key(0))
    v2.start("--validator-key", net.key(1), "--connect", v1.p2p_address,
             env={CLOCK_OFFSET_ENV: "20"})
    full = net.add_full_node(node_factory, "full")
    full.start("--connect", v1.p2p_address, "--connect", v2.p2p_address)
    wait_mesh(net.nodes)
    v2_address = v2.rpc("getinfo")["validator"]
    early = re.compile(r"header (\d+) ([0-9a-f]{64}) from \S+ is \d+ s ahead of our "
                       r"clock .*kept, retried")
    kept = wait_until(lambda: early.findall(v1.log_path.read_text()), 60,
                      "an early block from v2 to be kept for later")
    height, block_hash = int(kept[0][0]), kept[0][1]
    # ... accepted once its time came, and built upon.
    wait_until(lambda: v1.height() > height
               and v1.rpc("getblockhash", height) == block_hash, 40,
               "v1 to accept v2's early block when its time came")
    assert v1.rpc("getblock", height)["validator"] == v2_address
    wait_until(lambda: min(n.height() for n in (v1, v2, full)) >= height + 3, 90,
               "the chain to keep growing")
    net.wait_synced([v1, v2, full], timeout=60)
    for node in (v1, v2, full):
        assert node.rpc("getpeerinfo")["banned"] == [], node.name
        assert "misbehaving" not in node.log_path.read_text(), node.name
    # The operator can see who runs ahead: v1's status shows v2's clock offset.
    v2_peer = next(p["address"] for p in ready_peers(v1) if p["listen"] == v2.p2p_address)
    clocks = {c["address"]: c["clock_offset"]
              for c in v1.cli_json("node", "status")["peer_clocks"]}
    assert clocks[v2_peer] is not None and clocks[v2_peer] >= 10, clocks
    assert f"clock      {v2_peer}: +" in v1.cli("node", "status").stdout


def test_full_inbound_slots_evict_an_idle_peer_not_a_block_relayer(tmp_path, node_factory):
    """Item 6: with --max-inbound 4 filled by three idle peers and one that
    just relayed a valid block (the youngest), a newcomer gets in by evicting
    an idle peer; the block relayer stays."""
    net = Network(tmp_path, node_factory, validators=2, period=1)
    v1 = net.nodes[0]
    v1.start("--validator-key", net.key(0), "--max-inbound", "4")
    v1.wait_height(1)  # and no further: with two validators it may not seal twice in a row
    spec = load_spec(net.spec_path)
    info = v1.rpc("getinfo")
    peers = []
    try:
        idle = []
        for host in ("127.0.1.1", "127.0.1.2", "127.0.1.3"):
            raw = RawPeer(v1, host, spec.network_magic)
            peers.append(raw)
            raw.handshake(info)
            idle.append(raw)
        relayer = RawPeer(v1, "127.0.2.1", spec.network_magic)
        peers.append(relayer)
        relayer.handshake(info)
        key2 = read_key_file(Path(net.key(1)), spec.wif_version)
        block = block_on_tip(v1, spec, key2)
        relayer.send(encode_frame(spec.network_magic, BlockMsg(block)))
        wait_until(lambda: v1.height() >= block.height
                   and v1.rpc("getblockhash", block.height) == block.hash.hex(), 20,
                   "v1 to connect the relayed block")
        wait_until(lambda: len(ready_peers(v1)) == 4, 10, "four ready inbound peers")

        newcomer = RawPeer(v1, "127.0.3.1", spec.network_magic)
        peers.append(newcomer)
        newcomer.handshake(info)  # accepted: a version and a verack came back
        wait_until(lambda: any(p["address"].startswith("127.0.3.1:")
                               for p in ready_peers(v1)), 10, "the newcomer to be a ready peer")
        evicted = [d for d in v1.rpc("getpeerinfo")["recent_disconnects"]
                   if d["reason"].startswith("evicted")]
        assert len(evicted) == 1, evicted
        assert evicted[0]["address"].split(":")[0] in ("127.0.1.1", "127.0.1.2", "127.0.1.3")
        assert evicted[0]["inbound"] is True
        # The block relayer is still served.
        nonce = secrets.randbits(64)
        relayer.send(encode_frame(spec.network_magic, Ping(nonce)))
        wait_until(lambda: (m := relayer.read_message()) and isinstance(m, Pong)
                   and m.nonce == nonce, 10, "the block relayer's pong")
        assert "evicted" in v1.cli("node", "peers").stdout
        assert v1.rpc("getpeerinfo")["banned"] == []
    finally:
        for raw in peers:
            raw.close()


def pong_after(raw: RawPeer, magic: bytes) -> list:
    """Send a ping; return the messages the node sent before its pong (it
    handles a peer's messages in order, so their effects come first)."""
    nonce = secrets.randbits(64)
    raw.send(encode_frame(magic, Ping(nonce)))
    before = []
    while True:
        msg = raw.read_message()
        if isinstance(msg, Pong) and msg.nonce == nonce:
            return before
        before.append(msg)


def test_block_refused_by_the_receivers_state_costs_the_sender_nothing(tmp_path, node_factory):
    """Item 3: a validator-sealed block whose transaction spends a coin v1 does
    not have (``bad-txns-inputs-missingorspent``, a state-dependent reason) is
    refused without points: the connection stays, the header is not queued
    again when re-announced, and the same peer's next valid block is taken."""
    net = Network(tmp_path, node_factory, validators=2, period=1)
    v1 = net.nodes[0]
    v1.start("--validator-key", net.key(0))
    v1.wait_height(1)  # and no further: with two validators it may not seal twice in a row
    spec = load_spec(net.spec_path)
    magic = spec.network_magic
    key2 = read_key_file(Path(net.key(1)), spec.wif_version)
    raw = RawPeer(v1, "127.0.2.9", magic)
    try:
        raw.handshake(v1.rpc("getinfo"))
        pkh = key2.public_key.hash160()
        spend = sign_tx(Tx((TxIn(Outpoint(secrets.token_bytes(32), 0)),),
                           (TxOut(NATIVE_ASSET, 1000, PayToAddress(pkh)),)),
                        [[key2]], spec.chain_id)
        block = block_on_tip(v1, spec, key2, (spend,))
        raw.send(encode_frame(magic, BlockMsg(block)))
        wait_until(lambda: "bad-txns-inputs-missingorspent" in v1.log_path.read_text(), 10,
                   "v1 to refuse the block")
        assert pong_after(raw, magic) is not None  # still connected
        assert f"block {block.height} {block.hash.hex()} from" in v1.log_path.read_text()
        raw.send(encode_frame(magic, Headers((block.header,))))
        assert not any(isinstance(m, GetData) for m in pong_after(raw, magic))
        good = block_on_tip(v1, spec, key2)
        assert good.height == block.height
        raw.send(encode_frame(magic, BlockMsg(good)))
        wait_until(lambda: v1.rpc("getblockhash", good.height) == good.hash.hex(), 10,
                   "v1 to take the same peer's valid block")
        peer = next(p for p in ready_peers(v1) if p["address"].startswith("127.0.2.9:"))
        assert peer["score"] == 0
        assert v1.rpc("getpeerinfo")["recent_disconnects"] == []
    finally:
        raw.close()
