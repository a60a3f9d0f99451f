"""The running node offers everything :class:`o2ocli.p2p.interface.NodeLink`
declares (p2p reaches the node only through it, never by importing it)."""

from __future__ import annotations

import asyncio
import inspect

from o2ocli.chainspec import load_spec
from o2ocli.node.datadir import init_datadir
from o2ocli.node.runtime import Node, NodeConfig
from o2ocli.p2p.interface import ChainStateView, ChainView, MempoolView, NodeLink


def _members(protocol: type) -> set[str]:
    names = set(getattr(protocol, "__annotations__", {}))
    names.update(n for n, v in vars(protocol).items()
                 if not n.startswith("_") and (callable(v) or isinstance(v, property)))
    return names


def test_protocol_members_are_listed():
    assert {"spec", "chain", "mempool", "db", "submit_block", "submit_txs", "on_votes",
            "on_evidence"} <= _members(NodeLink)
    assert {"get_index", "get_block_hash", "is_main_chain", "has_tx"} <= _members(ChainStateView)


def test_a_started_node_has_every_member_the_p2p_layer_uses(tmp_path):
    spec = load_spec("devnet")
    init_datadir(tmp_path, spec)
    node = Node(NodeConfig(datadir=tmp_path, spec=spec, rpc_port=0,
                           p2p_listen=("127.0.0.1", 0), use_bootstrap=False))

    async def main() -> None:
        await node.start()
        try:
            for protocol, obj in ((NodeLink, node), (ChainView, node.chain),
                                  (ChainStateView, node.chain.state),
                                  (MempoolView, node.mempool)):
                missing = sorted(n for n in _members(protocol) if not hasattr(obj, n))
                assert missing == [], f"{type(obj).__name__} lacks {missing} of {protocol}"
            for name in ("submit_block", "submit_txs", "on_votes", "on_evidence"):
                wanted = list(inspect.signature(getattr(NodeLink, name)).parameters)[1:]
                have = list(inspect.signature(getattr(node, name)).parameters)
                assert set(wanted) <= set(have), name
            assert node.p2p is not None and node.p2p.node is node
        finally:
            await node.shutdown()

    asyncio.run(asyncio.wait_for(main(), 60))
