"""The peer manager (o2ocli.p2p.manager) over real sockets.

A real node in this process (devnet, LevelDB in a temp dir, 127.0.0.1; see
``p2p_harness``) and hand-driven peers: handshakes, serving headers and
blocks, relaying blocks and transactions, operator bans, networking on and
off, and the address book's manual entries.  Each behaviour both ways: what
is served or relayed, and what is refused.
"""

from __future__ import annotations

from p2p_harness import (
    SPEC,
    Remote,
    disconnect_reasons,
    make_chain,
    run_node,
    until,
)

from o2ocli.core.locks import PayToAddress
from o2ocli.core.tx import NATIVE_ASSET, Outpoint, Tx, TxIn, TxOut
from o2ocli.crypto.address import decode_wif
from o2ocli.crypto.keys import PrivateKey
from o2ocli.node.runtime import Node
from o2ocli.p2p.messages import (
    INV_BLOCK,
    INV_TX,
    BlockMsg,
    GetData,
    GetHeaders,
    Headers,
    Inv,
    NotFound,
    Ping,
    Pong,
    TxMsg,
)
from o2ocli.testing.chaingen import sign_tx

COIN = 10**SPEC.native_decimals


def funds_key() -> PrivateKey:
    secret, _ = decode_wif(SPEC.dev_keys["funds"], version=SPEC.wif_version)
    return PrivateKey(secret)


def payment(node: Node, signer: PrivateKey) -> Tx:
    """A payment out of the devnet's genesis funds, signed by ``signer``."""
    genesis = node.chain.genesis.txs[0]
    funds = funds_key().public_key.hash160()
    index = next(i for i, o in enumerate(genesis.outputs)
                 if o.asset == NATIVE_ASSET and o.lock == PayToAddress(funds))
    value = genesis.outputs[index].amount
    outputs = (TxOut(NATIVE_ASSET, COIN, PayToAddress(PrivateKey.generate().public_key.hash160())),
               TxOut(NATIVE_ASSET, value - COIN - 100_000, PayToAddress(funds)))
    return sign_tx(Tx((TxIn(Outpoint(genesis.txid, index)),), outputs), [[signer]],
                   SPEC.chain_id)


async def connect_blocks(node: Node, count: int) -> list:
    """``count`` blocks handed to the node by a peer that then leaves."""
    blocks = make_chain(node.chain.genesis.header, count)
    feeder = await Remote.connect(node)
    await feeder.handshake()
    for block in blocks:
        feeder.send(BlockMsg(block))
    await until(lambda: node.chain.height == count, "the blocks to be connected")
    feeder.close()
    return blocks


def test_handshake_with_another_chain_is_refused_without_a_ban(tmp_path):
    async def body(node: Node) -> None:
        remote = await Remote.connect(node)
        theirs = await remote.handshake(chain_id="o2o-elsewhere")
        assert theirs.chain_id == SPEC.chain_id and theirs.genesis == node.chain.genesis.hash
        assert await remote.closed_by_node()
        assert any("handshake refused: peer follows another chain" in r
                   for r in disconnect_reasons(node))
        other = await Remote.connect(node)
        await other.handshake(genesis=bytes(32))
        assert await other.closed_by_node()
        assert node.p2p.banned_list() == [] and node.p2p.discouraged_list() == []
        # The right chain from the same host is welcome.
        welcome = await Remote.connect(node)
        await welcome.handshake()
        welcome.send(Ping(77))
        assert (await welcome.expect(Pong)).nonce == 77
        welcome.close()

    run_node(tmp_path, body)


def test_headers_and_blocks_are_served_and_unknown_ones_not_found(tmp_path):
    async def body(node: Node) -> None:
        blocks = await connect_blocks(node, 3)
        remote = await Remote.connect(node)
        await remote.handshake()
        remote.send(GetHeaders((node.chain.genesis.hash,)))
        served = await remote.expect(Headers)
        assert [h.hash for h in served.headers] == [b.hash for b in blocks]
        remote.send(GetHeaders((blocks[1].hash,)))
        assert [h.hash for h in (await remote.expect(Headers)).headers] == [blocks[2].hash]
        unknown = bytes(range(32))
        remote.send(GetData(((INV_BLOCK, blocks[1].hash), (INV_BLOCK, unknown))))
        got = await remote.expect(BlockMsg)
        assert got.block.to_bytes() == blocks[1].to_bytes()
        missing = await remote.expect(NotFound)
        assert missing.items == ((INV_BLOCK, unknown),)
        assert remote.peer().score == 0
        remote.close()

    run_node(tmp_path, body)


def test_new_block_is_announced_to_the_other_peers_not_back(tmp_path):
    async def body(node: Node) -> None:
        sender, listener = await Remote.connect(node), await Remote.connect(node)
        await sender.handshake()
        await listener.handshake()
        (block,) = make_chain(node.chain.genesis.header, 1)
        sender.send(BlockMsg(block))
        announced = await listener.expect(Headers)
        assert [h.hash for h in announced.headers] == [block.hash]
        # The sender hears nothing about its own block: its next answer is our pong.
        sender.send(Ping(5))
        while True:
            msg = await sender.read()
            assert not isinstance(msg, Headers), msg
            if isinstance(msg, Pong):
                break
        sender.close()
        listener.close()

    run_node(tmp_path, body)


def test_valid_tx_is_accepted_and_relayed_an_invalid_one_costs_points(tmp_path):
    async def body(node: Node) -> None:
        sender, listener = await Remote.connect(node), await Remote.connect(node)
        await sender.handshake()
        await listener.handshake()
        forged = payment(node, PrivateKey.generate())  # not the owner's signature
        sender.send(TxMsg(forged))
        await until(lambda: sender.peer().score == 10, "the forged tx to be scored")
        assert forged.txid not in node.mempool
        good = payment(node, funds_key())
        sender.send(TxMsg(good))
        inv = await listener.expect(Inv)
        assert inv.items == ((INV_TX, good.txid),)  # the forged one never announced
        assert good.txid in node.mempool
        listener.send(GetData(((INV_TX, good.txid),)))
        assert (await listener.expect(TxMsg)).tx.txid == good.txid
        assert sender.peer().score == 10  # the good tx cost nothing
        sender.close()
        listener.close()

    run_node(tmp_path, body)


def test_operator_ban_drops_and_refuses_the_host_until_lifted(tmp_path):
    async def body(node: Node) -> None:
        manager = node.p2p
        remote = await Remote.connect(node)
        await remote.handshake()
        manager.ban("127.0.0.1", 600)
        assert await remote.closed_by_node()
        assert "banned" in disconnect_reasons(node)
        assert [b["host"] for b in manager.banned_list()] == ["127.0.0.1"]
        refused = await Remote.connect(node)
        assert await refused.closed_by_node()  # not even a version first
        assert manager.unban("127.0.0.1") is True and manager.unban("127.0.0.1") is False
        assert manager.banned_list() == []
        again = await Remote.connect(node)
        await again.handshake()
        again.close()

    run_node(tmp_path, body)


def test_networking_off_drops_everyone_and_accepts_nobody_until_on(tmp_path):
    async def body(node: Node) -> None:
        manager = node.p2p
        remote = await Remote.connect(node)
        await remote.handshake()
        manager.set_active(False)
        assert await remote.closed_by_node()
        refused = await Remote.connect(node)
        assert await refused.closed_by_node()
        assert manager.ready_peers() == []
        manager.set_active(True)
        back = await Remote.connect(node)
        await back.handshake()
        assert len(manager.ready_peers()) == 1
        back.close()

    run_node(tmp_path, body)


def test_addresses_are_checked_and_manual_ones_kept_dialed(tmp_path):
    async def body(node: Node) -> None:
        manager = node.p2p
        for host, port in [("", 1), ("10.0.0.1", 0), ("10.0.0.1", 65536)]:
            assert manager.add_address(host, port) is False
            assert manager.add_address(host, port, manual=True) is False
        assert manager.addrman_info()["fixed"] == []
        assert manager.add_address("seed.example", 19444, manual=True) is True
        assert manager.addrman_info()["fixed"] == ["seed.example:19444"]
        assert manager.add_address("8.8.4.4", 19444) is True
        assert manager.addrman_info()["total"] == 1
        # A manual address that is ourselves, under another name, is dialed once
        # and forgotten.
        port = manager.listen_port
        assert manager.add_address("127.1", port, manual=True) is True
        await until(lambda: f"127.1:{port}" not in manager.addrman_info()["fixed"],
                    "the self address to be forgotten")
        assert manager.ready_peers() == []
        assert any("connected to ourselves" in r for r in disconnect_reasons(node))

    run_node(tmp_path, body, discover=False)

