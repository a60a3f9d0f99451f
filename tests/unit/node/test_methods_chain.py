"""The RPC methods about the chain, the mempool and addresses, called directly
on a real in-process devnet node (LevelDB in a temp dir): results and the
error code of every kind of bad param."""

from __future__ import annotations

import pytest
from node_harness import CUSTOMER, FEE, MERCHANT, NodeHarness

from o2ocli.core.locks import PayToAddress
from o2ocli.core.tx import NATIVE_ASSET, Outpoint, Tx, TxIn, TxOut
from o2ocli.node.api import build_methods
from o2ocli.node.methods import addresses, chain, mempool
from o2ocli.rpc import errors as E
from o2ocli.storage import schema


@pytest.fixture
def h(tmp_path):
    harness = NodeHarness(tmp_path)
    yield harness
    harness.close()


COIN = 100_000_000


def test_build_methods_exposes_every_table_function_under_its_name(h):
    methods = build_methods(h.node)
    assert "getblock" in methods and "gettrace" in methods and len(methods) == 49
    assert methods.usage("getblock") == "getblock <ref> [verbosity=1]"
    assert methods.call_sync("getblockcount") == h.call(chain.getblockcount) == 0
    assert methods.call_sync("getblockhash", [0]) == h.node.chain.genesis.hash.hex()


def test_getinfo_summarises_node_and_chain(h):
    info = h.call(chain.getinfo)
    assert (info["chain"], info["chain_id"], info["native_symbol"], info["decimals"]) == (
        "devnet", "o2o-devnet", "O2O", 8)
    assert (info["height"], info["tip"]) == (0, h.node.chain.genesis.hash.hex())
    assert info["validators"] == [h.address(h.validator)]
    assert (info["validator"], info["peers"], info["syncing"], info["sync_height"]) == (
        None, 0, False, 0)
    h.run(h.node.submit_tx, h.pay(h.funds, MERCHANT, COIN))
    info = h.call(chain.getinfo)
    assert info["mempool_size"] == 1 and info["mempool_bytes"] > 0
    block = h.mine()
    info = h.call(chain.getinfo)
    assert (info["height"], info["tip"], info["tip_time"], info["mempool_size"]) == (
        1, block.hash.hex(), block.header.time, 0)


def test_block_queries_by_height_and_hash(h):
    tx = h.pay(h.funds, MERCHANT, COIN)
    b1 = h.mine([tx])
    b2 = h.mine()
    assert h.call(chain.getblockcount) == 2
    assert h.call(chain.getbestblockhash) == b2.hash.hex()
    assert h.call(chain.getblockhash, 1) == b1.hash.hex()
    assert h.call(chain.getblock, 1, 0) == b1.to_bytes().hex()
    data = h.call(chain.getblock, b1.hash.hex())
    assert data["hash"] == b1.hash.hex() and data["height"] == 1
    assert data["txs"] == [t.txid.hex() for t in b1.txs] and tx.txid.hex() in data["txs"]
    assert (data["main_chain"], data["confirmations"], data["final"]) == (True, 2, False)
    assert data["validator"] == h.address(h.validator)
    full = h.call(chain.getblock, 1, 2)
    assert [t["txid"] for t in full["txs"]] == data["txs"]
    assert full["txs"][0]["payload"] == {"type": "coinbase", "height": 1}


@pytest.mark.parametrize(("method", "args", "code"), [
    (chain.getblockhash, ["1"], E.INVALID_PARAMS),
    (chain.getblockhash, [-1], E.INVALID_PARAMS),
    (chain.getblockhash, [True], E.INVALID_PARAMS),
    (chain.getblockhash, [5], E.NOT_FOUND),
    (chain.getblock, [5], E.NOT_FOUND),
    (chain.getblock, ["zz"], E.INVALID_PARAMS),
    (chain.getblock, ["00" * 31], E.INVALID_PARAMS),
    (chain.getblock, ["00" * 32], E.NOT_FOUND),
    (chain.getblock, [0, 3], E.INVALID_PARAMS),
    (chain.getblock, [0, "1"], E.INVALID_PARAMS),
    (chain.gettx, [None], E.INVALID_PARAMS),
    (chain.gettx, ["ab"], E.INVALID_PARAMS),
    (chain.gettx, ["11" * 32], E.NOT_FOUND),
    (chain.getrawtx, ["xyz"], E.INVALID_PARAMS),
    (chain.getrawtx, ["11" * 32], E.NOT_FOUND),
])
def test_chain_queries_refuse_bad_params(h, method, args, code):
    assert h.error(method, *args).code == code


def test_gettx_and_getrawtx_follow_a_tx_from_the_mempool_into_a_block(h):
    tx = h.pay(h.funds, MERCHANT, COIN)
    assert h.call(mempool.sendrawtx, tx.to_bytes().hex()) == tx.txid.hex()
    pending = h.call(chain.gettx, tx.txid.hex())
    assert (pending["in_mempool"], pending["height"], pending["confirmations"],
            pending["final"]) == (True, None, 0, False)
    assert pending["fee_units"] == FEE
    assert pending["outputs"][0]["address"] == h.address(MERCHANT)
    assert pending["inputs"][0]["address"] == h.address(h.funds)
    assert h.call(chain.getrawtx, tx.txid.hex()) == tx.to_bytes().hex()
    block = h.mine()
    mined = h.call(chain.gettx, tx.txid.hex())
    assert (mined["in_mempool"], mined["height"], mined["block"], mined["confirmations"]) == (
        False, 1, block.hash.hex(), 1)
    assert h.call(chain.getrawtx, tx.txid.hex()) == tx.to_bytes().hex()


def test_getutxosetinfo_totals_the_native_supply(h):
    h.mine([h.pay(h.funds, MERCHANT, COIN)])
    info = h.call(chain.getutxosetinfo)
    assert info["height"] == 1 and info["tip"] == h.node.chain.tip.hash.hex()
    assert info["totals"] == {"O2O": "100000000"}
    assert info["utxo_count"] == 3  # the genesis coin spent: payment, change, fee claim


def test_getutxosetinfo_reads_the_commitment_of_any_main_chain_block(h):
    at_genesis = h.call(chain.getutxosetinfo)
    h.mine([h.pay(h.funds, MERCHANT, COIN)])
    at_tip = h.call(chain.getutxosetinfo)
    assert at_tip["utxo_set_hash"] != at_genesis["utxo_set_hash"]
    assert h.call(chain.getutxosetinfo, 0) == at_genesis
    assert h.call(chain.getutxosetinfo, h.node.chain.genesis.hash.hex()) == at_genesis
    assert h.call(chain.getutxosetinfo, 1) == at_tip
    assert h.error(chain.getutxosetinfo, 2).code == E.NOT_FOUND
    assert h.error(chain.getutxosetinfo, "00" * 32).code == E.NOT_FOUND


def test_verifyutxoset_compares_a_full_scan_with_the_stored_commitment(h):
    h.mine([h.pay(h.funds, MERCHANT, COIN)])
    info = h.call(chain.getutxosetinfo)
    result = h.loop.run_until_complete(chain.verifyutxoset(h.node))
    assert result["ok"] and result["error"] is None
    assert result["scanned_hash"] == result["utxo_set_hash"] == info["utxo_set_hash"]
    assert result["scanned_count"] == result["utxo_count"] == 3
    assert (result["height"], result["tip"]) == (1, info["tip"])
    # A coin changed behind the chainstate's back (its last lock byte).
    db = h.node.chain.state.db
    key, value = next(iter(db.iterate(schema.UTXO)))
    with db.write_batch() as batch:
        batch.put(key, value[:-1] + bytes([value[-1] ^ 1]))
    result = h.loop.run_until_complete(chain.verifyutxoset(h.node))
    assert not result["ok"] and "full-scan hash" in result["error"]
    assert result["utxo_set_hash"] == info["utxo_set_hash"] != result["scanned_hash"]


# -- mempool -------------------------------------------------------------------


def double_spend(h: NodeHarness, tx: Tx) -> Tx:
    """Another payment from the coin ``tx`` spends."""
    lock = PayToAddress(CUSTOMER.public_key.hash160())
    return h.spend(h.funds, [TxOut(NATIVE_ASSET, COIN, lock)], first=tx.inputs[0].prevout)


def test_sendrawtx_refusals_carry_their_codes_and_reason(h):
    tx = h.pay(h.funds, MERCHANT, COIN)
    assert h.call(mempool.sendrawtx, tx.to_bytes().hex()) == tx.txid.hex()
    again = h.error(mempool.sendrawtx, tx.to_bytes().hex())
    assert again.code == E.TX_ALREADY_KNOWN
    assert h.error(mempool.sendrawtx, 42).code == E.INVALID_PARAMS
    assert h.error(mempool.sendrawtx, "zz").code == E.INVALID_PARAMS
    assert h.error(mempool.sendrawtx, "00").code == E.DESERIALIZATION_ERROR
    missing = Tx((TxIn(Outpoint(b"\x01" * 32, 0)),), tx.outputs)
    error = h.error(mempool.sendrawtx, missing.to_bytes().hex())
    assert error.code == E.TX_MISSING_INPUTS
    assert error.data["reason"] == "bad-txns-inputs-missingorspent"
    double = double_spend(h, tx)
    error = h.error(mempool.sendrawtx, double.to_bytes().hex())
    assert error.code == E.TX_REJECTED and error.data["conflict"] == tx.txid.hex()
    assert h.call(mempool.getmempool) == [tx.txid.hex()]


def test_sendrawtxs_answers_each_tx_in_order(h):
    first = h.pay(h.funds, MERCHANT, COIN)
    double = double_spend(h, first)
    results = h.call(mempool.sendrawtxs, [first.to_bytes().hex(), "zz",
                                          first.to_bytes().hex(), double.to_bytes().hex()])
    assert results[0] == first.txid.hex()
    assert results[1]["error"]["code"] == E.INVALID_PARAMS
    assert results[2]["error"]["code"] == E.TX_ALREADY_KNOWN
    assert results[3]["error"]["code"] == E.TX_REJECTED
    assert results[3]["error"]["data"]["conflict"] == first.txid.hex()
    assert h.error(mempool.sendrawtxs, "not a list").code == E.INVALID_PARAMS
    assert h.error(mempool.sendrawtxs, ["00"] * 10_001).code == E.INVALID_PARAMS
    assert h.call(mempool.sendrawtxs, []) == []


def test_getmempool_lists_txids_or_entries(h):
    assert h.call(mempool.getmempool) == []
    tx = h.pay(h.funds, MERCHANT, COIN)
    h.run(h.node.submit_tx, tx)
    assert h.call(mempool.getmempool) == [tx.txid.hex()]
    (entry,) = h.call(mempool.getmempool, True)
    assert (entry["txid"], entry["fee"], entry["size"]) == (tx.txid.hex(), "0.001", tx.size)


# -- addresses -----------------------------------------------------------------


def test_utxos_with_and_without_the_mempool(h):
    h.mine([h.pay(h.funds, MERCHANT, COIN)])
    (coin,) = h.call(addresses.getutxos, h.address(MERCHANT))
    assert (coin["amount"], coin["height"], coin["confirmations"], coin["owner"]) == (
        "1", 1, 1, h.address(MERCHANT))
    spend = h.pay(MERCHANT, CUSTOMER, COIN // 2)
    h.run(h.node.submit_tx, spend)
    merchant = h.call(addresses.getutxos, h.address(MERCHANT))
    assert [(u["txid"], u["height"]) for u in merchant] == [(spend.txid.hex(), None)]
    assert [u["height"] for u in h.call(addresses.getutxos, h.address(MERCHANT), False)] == [1]
    both = h.call(addresses.listunspent, [h.address(MERCHANT), h.address(CUSTOMER)], True, True)
    spent = [u for u in both if "spent_by" in u]
    assert [(u["txid"], u["spent_by"]) for u in spent] == [(coin["txid"], spend.txid.hex())]
    assert {u["owner"] for u in both} == {h.address(MERCHANT), h.address(CUSTOMER)}


def test_address_history_confirmed_then_pending(h):
    pay = h.pay(h.funds, MERCHANT, COIN)
    h.mine([pay])
    spend = h.pay(MERCHANT, CUSTOMER, COIN // 2)
    h.run(h.node.submit_tx, spend)
    history = h.call(addresses.getaddresshistory, h.address(MERCHANT))
    assert [(e["txid"], e["height"], e["confirmations"]) for e in history] == [
        (pay.txid.hex(), 1, 1), (spend.txid.hex(), None, 0)]
    both = h.call(addresses.getaddresseshistory, [h.address(MERCHANT), h.address(CUSTOMER)])
    assert [e["txid"] for e in both] == [pay.txid.hex(), spend.txid.hex()]
    assert both[1]["addresses"] == sorted([h.address(MERCHANT), h.address(CUSTOMER)])


@pytest.mark.parametrize(("method", "args", "code"), [
    (addresses.getutxos, ["nope"], E.INVALID_ADDRESS),
    (addresses.getutxos, [7], E.INVALID_ADDRESS),
    (addresses.listunspent, ["not a list"], E.INVALID_PARAMS),
    (addresses.listunspent, [["nope"]], E.INVALID_ADDRESS),
    (addresses.getaddresshistory, [None], E.INVALID_ADDRESS),
    (addresses.getaddresseshistory, [{}], E.INVALID_PARAMS),
    (addresses.getaddresseshistory, [[1]], E.INVALID_ADDRESS),
])
def test_address_queries_refuse_bad_params(h, method, args, code):
    assert h.error(method, *args).code == code
