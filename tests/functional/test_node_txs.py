"""Transactions through a real node: broadcast, mempool, mining, refusals."""

from __future__ import annotations

from o2ocli.core.tx import SigPair, Tx, TxIn
from o2ocli.crypto.keys import PrivateKey

from .framework import wait_until
from .payments import FEE, Payer, devnet, funds_key


def start_dev(node_factory, *extra):
    node = node_factory()
    node.start("--dev", "--dev-period", "0", *extra)
    spec = devnet()
    payer = Payer(spec, funds_key(spec))
    payer.refresh(node)
    return node, spec, payer


def test_payment_is_mined_and_reported(node_factory):
    node, spec, payer = start_dev(node_factory)
    receiver = PrivateKey.generate()
    tx = payer.pay(receiver.public_key.hash160(), spec.amount("12.5"))
    out = node.cli_json("chain", "broadcast", tx.to_bytes().hex())
    assert out == {"txid": tx.txid.hex()}
    wait_until(lambda: node.rpc("gettx", tx.txid.hex())["height"] is not None, what="mining")
    # Final once the validator's vote for the next block links to it (FFG): the
    # dev node seals that block by itself, without new transactions.
    wait_until(lambda: node.rpc("gettx", tx.txid.hex())["final"], what="finality")
    shown = node.cli_json("chain", "tx", tx.txid.hex())
    assert {"txid", "block", "height", "confirmations", "final", "inputs", "outputs",
            "payload"} <= shown.keys()
    assert shown["confirmations"] >= 1 and shown["final"] is True
    assert shown["fee"] == spec.format(FEE)
    assert shown["outputs"][0]["amount"] == "12.5"
    assert shown["outputs"][0]["address"] == spec.address(receiver.public_key.hash160())
    utxos = node.rpc("getutxos", spec.address(receiver.public_key.hash160()))
    assert [(u["txid"], u["amount"]) for u in utxos] == [(tx.txid.hex(), "12.5")]
    history = node.rpc("getaddresshistory", spec.address(receiver.public_key.hash160()))
    assert [h["txid"] for h in history] == [tx.txid.hex()]
    block = node.cli_json("chain", "block", str(shown["height"]))
    assert tx.txid.hex() in block["txs"]
    # The validator claimed the fee in the block's first transaction.
    claim = node.rpc("gettx", block["txs"][0])
    assert claim["coinbase"] is True
    assert claim["outputs"][0]["amount"] == spec.format(FEE)


def test_unconfirmed_chain_and_refusals_change_nothing(node_factory):
    node, spec, payer = start_dev(node_factory)
    dest = PrivateKey.generate().public_key.hash160()
    first = payer.pay(dest, 1000)
    second = payer.pay(dest, 2000)  # spends first's change: an unconfirmed chain
    results = node.rpc("sendrawtxs", [first.to_bytes().hex(), second.to_bytes().hex()])
    assert results == [first.txid.hex(), second.txid.hex()]
    wait_until(lambda: node.rpc("gettx", second.txid.hex())["final"],
               what="the chain of txs to be mined and final")
    # The block that finalized it is the last one until a new tx arrives.
    before = node.rpc("getutxosetinfo")

    # Double spend of a coin already spent in the chain.
    payer.coin = (first.inputs[0].prevout, spec.amount("100000000"))
    again = payer.pay(dest, 5000)
    out = node.cli("chain", "broadcast", again.to_bytes().hex())
    assert out.returncode == 1
    assert "bad-txns-inputs-missingorspent" in out.stderr

    # Tampered signature.
    payer.refresh(node)
    good = payer.pay(dest, 3000)
    pair = good.inputs[0].witness[0]
    sig = bytes([pair.signature[0] ^ 1]) + pair.signature[1:]
    forged = Tx((TxIn(good.inputs[0].prevout, (SigPair(pair.pubkey, sig),)),), good.outputs)
    out = node.cli("chain", "broadcast", forged.to_bytes().hex())
    assert out.returncode == 1 and "bad-txns-signature" in out.stderr

    # Fee below the relay minimum.
    payer.refresh(node)
    cheap = payer.pay(dest, 3000, fee=1)
    out = node.cli("chain", "broadcast", cheap.to_bytes().hex())
    assert out.returncode == 1 and "min-relay-fee-not-met" in out.stderr

    # Garbage.
    for raw in ("zz", "00", ""):
        out = node.cli("chain", "broadcast", raw)
        assert out.returncode == 1, raw
        assert out.stderr.startswith("error: ") and "Traceback" not in out.stderr

    assert node.rpc("getutxosetinfo") == before
    assert node.rpc("getmempool") == []


def test_mempool_conflict_names_the_first_spender(node_factory):
    node = node_factory()
    node.start("--dev", "--dev-period", "3600")  # no block will come during the test
    spec = devnet()
    payer = Payer(spec, funds_key(spec))
    payer.refresh(node)
    coin = payer.coin
    first = payer.pay(PrivateKey.generate().public_key.hash160(), 1000)
    payer.coin = coin
    rival = payer.pay(PrivateKey.generate().public_key.hash160(), 2000)
    assert node.rpc("sendrawtx", first.to_bytes().hex()) == first.txid.hex()
    out = node.cli("chain", "broadcast", rival.to_bytes().hex())
    assert out.returncode == 1
    assert "txn-mempool-conflict" in out.stderr and first.txid.hex() in out.stderr
    assert node.rpc("getmempool") == [first.txid.hex()]
    shown = node.cli_json("chain", "tx", first.txid.hex())
    assert shown["height"] is None and shown["confirmations"] == 0 and shown["final"] is False
