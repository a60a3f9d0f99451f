"""Multi-node P2P: sealing in turn, tx relay, crash recovery, handshake refusals.

Every node is a real ``o2ocli node start`` process listening on 127.0.0.1
(free ports), connected with ``--connect``; all waits are bounded.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from o2ocli.chainspec import load_spec
from o2ocli.crypto.keys import PrivateKey
from o2ocli.node.datadir import read_key_file
from o2ocli.rpc.errors import NOT_FOUND, RpcError

from .framework import Network, run_cli, wait_until
from .payments import Payer


def funds_payer(net: Network, node):
    """(spec, Payer of the generated spec's genesis funds key, refreshed on ``node``)."""
    spec = load_spec(net.spec_path)
    key = read_key_file(Path(net.spec_info["funds_key"]), spec.wif_version)
    payer = Payer(spec, key)
    payer.refresh(node)
    return spec, payer


def ready_peers(node) -> list[dict]:
    return [p for p in node.rpc("getpeerinfo")["peers"] if p["ready"]]


def wait_mesh(nodes, timeout: float = 30) -> None:
    """Wait until every node has a completed handshake with every other one
    (peers are told apart by their listening address)."""
    def mesh() -> bool:
        return all({p["listen"] for p in ready_peers(n)}
                   >= {o.p2p_address for o in nodes if o is not n} for n in nodes)

    wait_until(mesh, timeout, "a full mesh of ready peers")


def sealers(node, start: int, stop: int) -> list[str]:
    """The ``validator`` of each main-chain block in [start, stop]."""
    return [node.rpc("getblock", h)["validator"] for h in range(start, stop + 1)]


def not_found(node, method: str, *params) -> bool:
    try:
        node.rpc(method, *params)
    except RpcError as exc:
        return exc.code == NOT_FOUND
    return False


# ---------------------------------------------------------------------------


def test_three_validators_seal_in_turn_and_agree(tmp_path, node_factory):
    net = Network(tmp_path, node_factory, validators=3, period=1)
    net.start_all()
    wait_mesh(net.nodes)
    wait_until(lambda: all(len(ready_peers(n)) == 2 for n in net.nodes), 10, "2 peers each")
    wait_until(lambda: min(n.height() for n in net.nodes) >= 8, 60, "8 blocks everywhere")
    tip = net.wait_synced(timeout=30)
    infos = [n.rpc("getutxosetinfo") for n in net.nodes]
    assert {i["tip"] for i in infos} == {tip}
    assert len({i["utxo_set_hash"] for i in infos}) == 1
    height = infos[0]["height"]
    assert height >= 8

    # The same main chain on every node, block by block.
    chains = [[n.rpc("getblockhash", h) for h in range(height + 1)] for n in net.nodes]
    assert chains[0] == chains[1] == chains[2]
    assert chains[0][-1] == tip

    # All three validators took part; no validator sealed two blocks in a row
    # (signer limit floor(3/2)+1 = 2).
    by = sealers(net.nodes[0], 1, height)
    assert set(by) == set(net.spec_info["validators"]), by
    assert all(a != b for a, b in zip(by, by[1:], strict=False)), by
    for node in net.nodes:
        info = node.rpc("getinfo")
        assert 0 < info["finalized_height"] <= info["height"], info
        block = node.rpc("getblock", info["finalized_height"])
        assert block["final"] is True and block["main_chain"] is True

    for node in net.nodes:
        shown = node.cli_json("node", "peers")
        peers = shown["peers"]
        assert len(peers) == 2, peers
        for peer in peers:
            assert {"address", "height", "inbound"} <= peer.keys(), peer
            assert peer["address"].startswith("127.0.0.1:")
            assert isinstance(peer["inbound"], bool) and peer["height"] >= 0
        assert shown["listen"] == node.p2p_address
        assert shown["banned"] == [] and shown["network_active"] is True
    # Each connection is outbound on one side and inbound on the other.
    inbound = sum(p["inbound"] for n in net.nodes for p in ready_peers(n))
    assert inbound == 3


def test_tx_relayed_to_every_mempool_and_mined_once(tmp_path, node_factory):
    net = Network(tmp_path, node_factory, validators=3, period=3)
    net.start_all()
    wait_mesh(net.nodes)
    v1, v2, v3 = net.nodes
    spec, payer = funds_payer(net, v1)
    dest = PrivateKey.generate().public_key.hash160()
    tx = payer.pay(dest, spec.amount("7"))
    txid = tx.txid.hex()

    # Submit right after a block so that ~2 s pass before the next one.
    start = v1.height()
    wait_until(lambda: v1.height() > start, 15, "a fresh block")
    assert v1.rpc("sendrawtx", tx.to_bytes().hex()) == txid
    seen: set[str] = set()

    def in_every_mempool() -> bool:
        for node in (v2, v3):
            if txid in node.rpc("getmempool"):
                seen.add(node.name)
        return seen == {"v2", "v3"}

    wait_until(in_every_mempool, 2.5, f"{txid[:16]} in the v2 and v3 mempools")
    assert txid in v1.rpc("getmempool")
    for node in (v2, v3):  # not mined yet: it was seen unconfirmed
        assert node.rpc("gettx", txid)["in_mempool"] is True

    wait_until(lambda: all(n.rpc("gettx", txid)["height"] is not None for n in net.nodes), 30,
               "the tx to be mined everywhere")
    mined = wait_until(lambda: v1.height() >= v1.rpc("gettx", txid)["height"] + 2 and
                       v1.rpc("gettx", txid), 30, "two more blocks")
    net.wait_synced(timeout=30)
    views = [n.rpc("gettx", txid) for n in net.nodes]
    assert {(v["block"], v["height"]) for v in views} == {(mined["block"], mined["height"])}
    assert all(txid not in n.rpc("getmempool") for n in net.nodes)
    # Exactly one block of the final chain carries it.
    tip_height = v1.height()
    carriers = [h for h in range(1, tip_height + 1) if txid in v1.rpc("getblock", h)["txs"]]
    assert carriers == [mined["height"]]
    for node in net.nodes:
        utxos = node.rpc("getutxos", spec.address(dest))
        assert [(u["txid"], u["amount"]) for u in utxos] == [(txid, "7")]


@pytest.mark.slow
def test_sigkilled_validator_restarts_and_catches_up(tmp_path, node_factory):
    net = Network(tmp_path, node_factory, validators=3, period=1)
    net.start_all()
    wait_mesh(net.nodes)
    v1, v2, v3 = net.nodes
    wait_until(lambda: min(n.height() for n in net.nodes) >= 4, 40, "4 blocks everywhere")
    net.wait_synced(timeout=30)

    v3.kill()
    assert not v3.running()
    base = v1.height()
    # Two of three validators keep sealing (signer limit 2: they alternate).
    wait_until(lambda: min(v1.height(), v2.height()) >= base + 5, 40,
               "v1 and v2 to seal 5 blocks without v3")
    alone = sealers(v1, base + 1, base + 5)
    assert set(alone) <= {net.spec_info["validators"][0], net.spec_info["validators"][1]}

    v3.start("--validator-key", net.key(2), "--connect", v1.p2p_address,
             "--connect", v2.p2p_address)
    tip = net.wait_synced(timeout=60)
    assert v3.rpc("getblock", tip)["height"] >= base + 5
    wait_mesh(net.nodes)

    # All three seal again.
    resumed = v1.height()
    v3_address = net.spec_info["validators"][2]
    wait_until(lambda: v3_address in sealers(v1, resumed + 1, v1.height()), 30,
               "v3 to seal again")
    wait_until(lambda: v1.height() >= resumed + 6, 30, "6 more blocks")
    net.wait_synced(timeout=30)
    later = sealers(v1, resumed + 1, resumed + 6)
    assert set(later) == set(net.spec_info["validators"]), later
    infos = [n.rpc("getinfo") for n in net.nodes]
    assert all(i["finalized_height"] > base for i in infos), infos


# ---------------------------------------------------------------------------
# Handshake refusals


def write_other_chain(net: Network, root: Path, same_magic: bool) -> tuple[Path, Path]:
    """A second, independent one-validator chain spec: (spec path, validator key).
    With ``same_magic`` it shares the first spec's network magic, so frames
    parse and only the handshake can tell the chains apart."""
    out = run_cli(root / "unused", "chain", "spec", "new", "otherchain", "--validators", "1",
                  "--period", "1", "--out", str(root / "other-spec"), json_out=True)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    path = Path(info["spec"])
    if same_magic:
        data = json.loads(path.read_text())
        data["network_magic"] = json.loads(net.spec_path.read_text())["network_magic"]
        path.write_text(json.dumps(data, indent=2))
    return path, Path(info["validator_keys"][0])


def start_other_chain_node(net: Network, node_factory, tmp_path: Path, same_magic: bool):
    spec_path, key = write_other_chain(net, tmp_path, same_magic)
    other = node_factory("other")
    init = run_cli(other.datadir, "--chain", str(spec_path), "node", "init")
    assert init.returncode == 0, init.stderr
    other.start("--validator-key", str(key), "--connect", net.nodes[0].p2p_address)
    return other


def assert_chains_apart(ours, other) -> None:
    """Neither node stored a block of the other's chain."""
    our_info, other_info = ours.rpc("getinfo"), other.rpc("getinfo")
    assert our_info["genesis_hash"] != other_info["genesis_hash"]
    for h in range(1, min(3, other.height()) + 1):
        assert not_found(ours, "getblock", other.rpc("getblockhash", h))
    for h in range(1, min(3, ours.height()) + 1):
        assert not_found(other, "getblock", ours.rpc("getblockhash", h))
    assert our_info["validators"] != other_info["validators"]


def test_node_of_another_chain_is_refused_at_handshake(tmp_path, node_factory):
    net = Network(tmp_path, node_factory, validators=2, period=1)
    net.start_all()
    wait_mesh(net.nodes)
    v1, v2 = net.nodes
    other = start_other_chain_node(net, node_factory, tmp_path, same_magic=True)

    def refused_both_ways() -> bool:
        return ("handshake refused: peer follows another chain" in v1.log_path.read_text()
                and "handshake refused: peer follows another chain"
                in other.log_path.read_text())

    wait_until(refused_both_ways, 20, "both sides to log the refusal")
    # Both chains keep growing, each on its own.
    h_other, h1 = other.height(), v1.height()
    wait_until(lambda: other.height() >= h_other + 3 and v1.height() >= h1 + 3, 30,
               "both chains to advance")
    assert other.rpc("getinfo")["peers"] == 0
    assert_chains_apart(v1, other)
    # A refusal is no misbehaviour: nobody is banned and the honest link holds.
    assert v1.rpc("getpeerinfo")["banned"] == []
    assert other.rpc("getpeerinfo")["banned"] == []
    assert [p["listen"] for p in ready_peers(v1)] == [v2.p2p_address]
    net.wait_synced(timeout=20)


def test_node_with_another_network_magic_never_gets_through(tmp_path, node_factory):
    """A second generated spec has its own network magic: the very first frame
    is a protocol violation, so each side drops that connection, again at
    every redial.  127.0.0.1 is local, so neither bans or discourages it (an
    honest validator there would otherwise be lost too)."""
    net = Network(tmp_path, node_factory, validators=1, period=1)
    net.start_all()
    (v1,) = net.nodes
    other = start_other_chain_node(net, node_factory, tmp_path, same_magic=False)
    for node in (v1, other):
        wait_until(lambda n=node: any(
            "protocol violation: wrong network magic" in d["reason"]
            for d in n.rpc("getpeerinfo")["recent_disconnects"]), 20,
            f"{node.name} to drop the foreign connection")
    h_other, h1 = other.height(), v1.height()
    wait_until(lambda: other.height() >= h_other + 3 and v1.height() >= h1 + 3, 30,
               "both chains to advance")
    for node in (v1, other):
        info = node.rpc("getpeerinfo")
        assert info["banned"] == [] and info["discouraged"] == [], info
        assert node.rpc("getinfo")["peers"] == 0
        assert ready_peers(node) == []
    assert_chains_apart(v1, other)


def test_node_does_not_keep_a_connection_to_itself(tmp_path, node_factory):
    node = node_factory("solo")
    net_root = tmp_path
    out = run_cli(net_root / "unused", "chain", "spec", "new", "solo", "--validators", "1",
                  "--period", "1", "--out", str(net_root / "spec"), json_out=True)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    init = run_cli(node.datadir, "--chain", info["spec"], "node", "init")
    assert init.returncode == 0, init.stderr
    node.start("--validator-key", info["validator_keys"][0])
    port = node.p2p_port
    # Its own address, as given, and under another spelling of 127.0.0.1 that
    # only the handshake nonce can recognise.
    assert node.cli_json("node", "addpeer", node.p2p_address) == {"added": node.p2p_address}
    assert node.rpc("addpeer", f"127.1:{port}") == {"added": f"127.1:{port}"}

    def self_refusals() -> list[dict]:
        """Our dials that reached ourselves (the dialing end refuses them)."""
        return [d for d in node.rpc("getpeerinfo")["recent_disconnects"]
                if d["reason"] == "handshake refused: connected to ourselves"
                and not d["inbound"]]

    # The other spelling is dialed once: the handshake finds our own nonce,
    # the dialing end drops it and forgets the address.
    wait_until(self_refusals, 20,
               "the self-connection to be refused")
    assert "connected to ourselves" in node.log_path.read_text()
    wait_until(lambda: f"127.1:{port}" not in node.rpc("getaddrmaninfo")["fixed"], 10,
               "the self address to be forgotten")
    assert len(self_refusals()) == 1, node.rpc("getpeerinfo")
    assert ready_peers(node) == [], node.rpc("getpeerinfo")
    # The dial loop goes on: a listener added afterwards is dialed, and dialed
    # again once its first connection closed and the redial backoff (2 s,
    # longer than the 1 s between dials of a kept address) has passed.  A node
    # that kept its own address would have dialed itself again by then.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(20)
        assert node.rpc("addpeer", f"127.0.0.1:{listener.getsockname()[1]}")
        for _ in range(2):
            conn, _ = listener.accept()
            conn.close()
    assert len(self_refusals()) == 1, node.rpc("getpeerinfo")
    assert ready_peers(node) == [], node.rpc("getpeerinfo")
    info = node.rpc("getpeerinfo")
    assert info["banned"] == [], info
    assert node.rpc("getinfo")["peers"] == 0
    start = node.height()
    node.wait_height(start + 2, timeout=20)  # still sealing on its own


def test_nodes_dialling_each_other_keep_one_link(tmp_path, node_factory):
    """Both sides --connect the other: a node that already has a link to a peer's
    listening address does not dial it again, so one connection serves both."""
    net = Network(tmp_path, node_factory, 2)
    a, b = net.nodes
    a.start("--validator-key", net.key(0), "--connect", b.p2p_address)
    b.start("--validator-key", net.key(1), "--connect", a.p2p_address)

    def one_link() -> bool:
        peers_a = [p for p in a.rpc("getpeerinfo")["peers"] if p["ready"]]
        peers_b = [p for p in b.rpc("getpeerinfo")["peers"] if p["ready"]]
        return len(peers_a) == 1 and len(peers_b) == 1

    def link_ids() -> tuple[int, int]:
        (peer_a,) = ready_peers(a)
        (peer_b,) = ready_peers(b)
        return peer_a["id"], peer_b["id"]

    wait_until(one_link, 30, "a single link between the two nodes")
    link = link_ids()
    drops = [n.rpc("getpeerinfo")["recent_disconnects"] for n in (a, b)]
    # And it stays that way (no flapping): each node gets two blocks sealed by
    # the other over that very connection (several dial rounds, 0.5 s apart,
    # pass meanwhile), and no connection came or went.
    start = max(a.height(), b.height())
    for node, other in ((a, b), (b, a)):
        theirs = other.rpc("getinfo")["validator"]
        wait_until(lambda n=node, v=theirs: sealers(n, start + 1, n.height()).count(v) >= 2,
                   30, f"{node.name} to receive two blocks sealed by {other.name}")
    assert one_link() and link_ids() == link
    assert [n.rpc("getpeerinfo")["recent_disconnects"] for n in (a, b)] == drops
    a.wait_height(3)
    net.wait_synced()
