"""``waitforchange``: the long poll for a new tip, finalized height and address txs,
on a real in-process devnet node."""

from __future__ import annotations

import time

import pytest
from node_harness import MERCHANT, NodeHarness

from o2ocli.node.methods import notify
from o2ocli.rpc import errors as E
from o2ocli.rpc.errors import RpcError

COIN = 100_000_000


@pytest.fixture
def h(tmp_path):
    harness = NodeHarness(tmp_path)
    yield harness
    harness.close()


def wait(h, *args):
    return h.loop.run_until_complete(notify.waitforchange(h.node, *args))


def test_reports_mempool_blocks_and_times_out_without_change(h):
    merchant = h.address(MERCHANT)
    first = wait(h, None, [merchant], 5)
    assert first["changes"] == ["initial"] and first["mempool_txids"] == []
    started = time.monotonic()
    idle = wait(h, first["cursor"], [merchant], 0.3)
    assert idle["changes"] == [] and idle["cursor"] == first["cursor"]
    assert 0.25 <= time.monotonic() - started < 3
    # A payment arriving while the call waits wakes it, long before its timeout.
    tx = h.pay(h.funds, MERCHANT, COIN)
    h.loop.call_later(0.2, h.node.submit_tx, tx)
    started = time.monotonic()
    seen = wait(h, first["cursor"], [merchant], 20)
    assert seen["changes"] == ["mempool"] and seen["mempool_txids"] == [tx.txid.hex()]
    assert time.monotonic() - started < 10
    # Others' addresses do not see it.
    other = wait(h, None, [h.address(h.validator)], 0)
    assert other["mempool_txids"] == []
    h.mine()
    mined = wait(h, seen["cursor"], [merchant], 5)
    assert "block" in mined["changes"] and "mempool" in mined["changes"]
    assert mined["height"] == 1 and mined["mempool_txids"] == []


@pytest.mark.parametrize("args, code", [
    (("x", [], 1), E.INVALID_PARAMS),
    ((None, "dAbc", 1), E.INVALID_PARAMS),
    ((None, ["nope"], 1), E.INVALID_ADDRESS),
    ((None, [], -1), E.INVALID_PARAMS),
    ((None, [], True), E.INVALID_PARAMS),
])
def test_bad_params(h, args, code):
    with pytest.raises(RpcError) as info:
        wait(h, *args)
    assert info.value.code == code


def test_caps_addresses_and_waiters(h, monkeypatch):
    with pytest.raises(RpcError, match="at most"):
        wait(h, None, ["x"] * (notify.MAX_ADDRESSES + 1), 0)
    cursor = wait(h, None, [], 0)["cursor"]
    monkeypatch.setattr(notify, "MAX_WAITERS", 1)

    async def two():
        import asyncio

        first = asyncio.ensure_future(notify.waitforchange(h.node, cursor, [], 0.5))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        try:
            await notify.waitforchange(h.node, None, [], 0)
        finally:
            await first

    with pytest.raises(RpcError, match="too many waiting clients"):
        h.loop.run_until_complete(two())
