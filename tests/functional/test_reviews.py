"""Verified-purchase reviews end to end: real node processes, real wallets.

The customer pays a merchant with ``wallet send``, reviews the purchase with
``review write``, the merchant answers with ``review reply``; ``review list /
show / stats`` read it back.  Every refusal is checked twice where it can be:
by the wallet (a clear message before anything is signed) and by the node's
consensus rules (a hand-built raw tx sent with ``chain broadcast``), and a
refusal must change nothing.  The reorg test (slow) orphans a purchase and its
review on a minority branch of a 5-validator network.
"""

from __future__ import annotations

import dataclasses
import json
import re
from decimal import Decimal
from pathlib import Path

import pytest

from o2ocli.chainspec import ChainSpec, load_spec
from o2ocli.consensus.poa import DIFF_NO_TURN, seal_header
from o2ocli.core.block import Block, BlockHeader, merkle_root
from o2ocli.core.locks import PayToAddress
from o2ocli.core.payloads import Review, ReviewReply, reply_sig_digest, review_sig_digest
from o2ocli.core.tx import NATIVE_ASSET, Outpoint, Tx, TxIn, TxOut
from o2ocli.crypto.address import decode_wif
from o2ocli.crypto.hashes import hash160
from o2ocli.crypto.keys import PrivateKey
from o2ocli.node.datadir import read_key_file
from o2ocli.p2p.messages import BlockMsg, encode_frame
from o2ocli.rpc.errors import NOT_FOUND, RpcError
from o2ocli.testing.chaingen import sign_tx

from .framework import Network, run_cli, wait_until
from .payments import FEE
from .test_p2p_misbehaviour import RawPeer

DEVNET = load_spec("devnet")
RANDOM_TXID = "5a" * 32


# --------------------------------------------------------------------------
# Helpers: CLI


def mined(node, txid: str, final: bool = True) -> bool:
    """In a block and final (block heights are settled then); with
    ``final=False`` only in a block (a minority of validators finalizes nothing)."""
    tx = node.rpc("gettx", txid)
    return bool(tx["final"]) if final else tx["height"] is not None


def wait_mined(node, *txids: str, timeout: float = 30, final: bool = True) -> None:
    wait_until(lambda: all(mined(node, t, final) for t in txids), timeout,
               f"{', '.join(t[:12] for t in txids)} to be mined on {node.name}")


def create(node, name: str) -> str:
    """A new passphrase-less wallet; returns its receive address."""
    return node.cli_json("wallet", "create", name, "--no-passphrase")["address"]


def send(node, wallet: str, to: str, amount: str, *extra: str) -> str:
    return node.cli_json("-w", wallet, "wallet", "send", "--to", to, "--amount", amount,
                         *extra)["txid"]


def pay(node, wallet: str, to: str, amount: str) -> str:
    """A native payment, waited for until mined; returns its txid."""
    txid = send(node, wallet, to, amount)
    wait_mined(node, txid)
    return txid


def balance(node, wallet: str) -> tuple[Decimal, Decimal]:
    data = node.cli_json("-w", wallet, "wallet", "balance")["balances"]
    native = next(b for b in data if b["asset"] == "O2O")
    return Decimal(native["confirmed"]), Decimal(native["unconfirmed"])


def wallet_meta(node, name: str) -> dict:
    from o2ocli.wallet.wallet import Wallet

    with Wallet.open(node.datadir, name, load_spec(node.datadir / "chainspec.json")) as wallet:
        return json.loads(json.dumps(wallet.meta))


def buyer(node, txid: str) -> str:
    """The address that signed the (single) input of a wallet payment."""
    (signer,) = {a for i in node.rpc("gettx", txid)["inputs"] for a in i["signers"]}
    return signer


def write(node, wallet: str, purchase: str, rating: int, text: str, *extra: str) -> dict:
    return node.cli_json("-w", wallet, "review", "write", "--purchase", purchase,
                         "--rating", str(rating), "--text", text, *extra)


def reviews(node, by: str, value: str) -> list[dict]:
    return node.cli_json("review", "list", f"--{by}", value)["reviews"]


def stats(node, merchant: str) -> dict:
    return node.cli_json("review", "stats", "--merchant", merchant)


def refused(node, *args: str, code: int = 1) -> str:
    """Run a command that must fail with ``code``; returns its one-line stderr."""
    out = node.cli(*args)
    assert out.returncode == code, (args, out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr, out.stderr
    if code == 2:  # click's usage errors
        assert "Error:" in out.stderr, out.stderr
        return out.stderr
    assert out.stderr.startswith("error: ") and out.stderr.count("\n") == 1, out.stderr
    assert out.stdout == "", out.stdout
    return out.stderr


def snapshot(node, merchant: str, *wallets: str) -> dict:
    """Everything a refused review must leave alone."""
    return {
        "reviews": node.rpc("listreviews", "merchant", merchant),
        "stats": node.rpc("getreviewstats", merchant),
        "balance": balance(node, wallets[0]),  # the customer's
        "meta": {w: wallet_meta(node, w) for w in wallets},
        "mempool": sorted(node.rpc("getmempool")),
        "utxo": node.rpc("getutxosetinfo"),
    }


# --------------------------------------------------------------------------
# Helpers: raw transactions built with the Python API


def wallet_key(node, wallet: str, address: str, spec: ChainSpec = DEVNET) -> PrivateKey:
    wif = node.cli_json("-w", wallet, "wallet", "export-key", address)["wif"]
    secret, _ = decode_wif(wif, version=spec.wif_version)
    return PrivateKey(secret)


def signed_review(key: PrivateKey, merchant: str, purchase: str, rating: int, text: bytes,
                  spec: ChainSpec = DEVNET) -> Review:
    unsigned = Review(spec.decode_address(merchant), bytes.fromhex(purchase), rating, text,
                      key.public_key.to_bytes(), bytes(64))
    signature = key.sign(review_sig_digest(unsigned, spec.chain_id))
    return dataclasses.replace(unsigned, signature=signature)


def signed_reply(key: PrivateKey, review: str, text: bytes, spec: ChainSpec = DEVNET
                 ) -> ReviewReply:
    unsigned = ReviewReply(bytes.fromhex(review), text, key.public_key.to_bytes(), bytes(64))
    signature = key.sign(reply_sig_digest(unsigned, spec.chain_id))
    return dataclasses.replace(unsigned, signature=signature)


def payload_tx(node, payer: PrivateKey, payload, spec: ChainSpec = DEVNET) -> Tx:
    """A signed tx carrying ``payload`` that spends ``payer``'s largest coin back
    to ``payer`` minus a fee."""
    pkh = payer.public_key.hash160()
    coins = [u for u in node.rpc("getutxos", spec.address(pkh))
             if u["asset"] == spec.native_symbol]
    coin = max(coins, key=lambda u: u["units"])
    tx = Tx((TxIn(Outpoint(bytes.fromhex(coin["txid"]), coin["index"])),),
            (TxOut(NATIVE_ASSET, coin["units"] - FEE, PayToAddress(pkh)),), payload=payload)
    return sign_tx(tx, [[payer]], spec.chain_id)


def resign(node, wallet: str, tx: Tx, spec: ChainSpec = DEVNET) -> Tx:
    """``tx`` with every input signed again by the wallet keys that signed it."""
    keys = [[wallet_key(node, wallet, spec.address(hash160(pair.pubkey)), spec)
             for pair in txin.witness] for txin in tx.inputs]
    return sign_tx(tx, keys, spec.chain_id)


_SEEN_REASONS: set[tuple[str, str]] = set()


def broadcast_refused(node, tx: Tx, reason: str) -> str:
    """Broadcast ``tx``, which must be refused for ``reason``: with ``chain
    broadcast`` the first time a reason is met on a node, then (faster) over
    RPC, where the reason is also a field of the error."""
    raw = tx.to_bytes().hex()
    if (str(node.datadir), reason) not in _SEEN_REASONS:
        _SEEN_REASONS.add((str(node.datadir), reason))
        err = refused(node, "chain", "broadcast", raw)
        assert f"transaction rejected: {reason}:" in err, err
        return err
    try:
        node.rpc("sendrawtx", raw)
    except RpcError as exc:
        assert exc.data["reason"] == reason, exc
        assert exc.message.startswith(f"transaction rejected: {reason}:"), exc
        return exc.message
    raise AssertionError(f"{tx.txid.hex()} was accepted; expected {reason}")


def not_found(node, method: str, *params) -> bool:
    try:
        node.rpc(method, *params)
    except RpcError as exc:
        return exc.code == NOT_FOUND
    return False


# --------------------------------------------------------------------------


@pytest.fixture
def dev(node_factory):
    node = node_factory()
    node.start("--dev", "--dev-period", "0")  # a block whenever transactions wait
    return node


def test_reviews_replies_lists_and_stats(dev):
    alice = create(dev, "alice")
    bob = create(dev, "bob")
    shop = create(dev, "shop")
    shop2 = create(dev, "shop2")
    wait_mined(dev, send(dev, "dev", alice, "20"), send(dev, "dev", bob, "20"))

    # Three purchases mined together: Alice's coffee, Bob's meal, and Alice's
    # split payment (75 % to shop, 25 % to shop2).
    p1 = send(dev, "alice", shop, "1")
    p2 = send(dev, "bob", shop, "2.5")
    p3 = dev.cli_json("-w", "alice", "wallet", "send", "--amount", "1",
                      "--split", f"{shop}=75", "--split", f"{shop2}=25")["txid"]
    wait_mined(dev, p1, p2, p3)

    # Alice reviews her coffee (UTF-8 text round-trips).
    text1 = "Great coffee ☕, friendly staff"
    r1 = write(dev, "alice", p1, 5, text1)
    assert set(r1) == {"txid", "merchant"} and r1["merchant"] == shop
    assert len(r1["txid"]) == 64
    wait_mined(dev, r1["txid"])
    height1 = dev.rpc("gettx", r1["txid"])["height"]

    listed = reviews(dev, "merchant", shop)
    assert len(listed) == 1
    got = listed[0]
    assert got["txid"] == r1["txid"] and got["merchant"] == shop
    assert got["reviewer"] == alice  # the key that paid for the purchase
    assert got["rating"] == 5 and got["text"] == text1
    assert got["purchase"] == p1 and got["height"] == height1
    assert got["purchase_value"] == "1" and got["purchase_value_units"] == 100_000_000
    assert got["reply"] is None and got["confirmations"] >= 1
    assert reviews(dev, "reviewer", alice) == listed
    assert reviews(dev, "purchase", p1) == listed
    assert reviews(dev, "merchant", shop2) == []
    assert reviews(dev, "purchase", RANDOM_TXID) == []
    assert dev.cli_json("review", "show", r1["txid"]) == got
    human = dev.cli("review", "show", r1["txid"])
    assert human.returncode == 0 and "★★★★★" in human.stdout and text1 in human.stdout
    assert f"purchase {p1} (1 paid)" in human.stdout

    # The merchant replies once (a dry run first: signed, not sent).
    dry = dev.cli_json("-w", "shop", "review", "reply", r1["txid"], "--text", "Thank you!",
                       "--dry-run")
    assert set(dry) == {"txid", "raw"} and dev.rpc("getmempool") == []
    assert isinstance(Tx.from_bytes(bytes.fromhex(dry["raw"])).payload, ReviewReply)
    reply = dev.cli_json("-w", "shop", "review", "reply", r1["txid"], "--text", "Thank you!")
    assert set(reply) == {"txid"}
    wait_mined(dev, reply["txid"])
    shown = dev.cli_json("review", "show", r1["txid"])
    assert shown["reply"] == {"txid": reply["txid"], "text": "Thank you!",
                              "height": dev.rpc("gettx", reply["txid"])["height"]}
    assert reviews(dev, "merchant", shop)[0]["reply"] == shown["reply"]
    assert "already has a reply" in refused(dev, "-w", "shop", "review", "reply", r1["txid"],
                                            "--text", "Thanks again")
    assert "no review" in refused(dev, "-w", "shop", "review", "reply", RANDOM_TXID,
                                  "--text", "hello")

    # Bob's meal, rated 2, with the longest text allowed: 1000 bytes of UTF-8.
    text2 = "Slow service. " + "é" * 493
    assert len(text2.encode()) == 1000
    r2 = write(dev, "bob", p2, 2, text2)
    assert r2["merchant"] == shop
    wait_mined(dev, r2["txid"])
    # Nobody but the reviewed merchant can reply (neither a customer nor the reviewer).
    for who in ("alice", "bob", "shop2"):
        assert "not an address of this wallet" in refused(
            dev, "-w", who, "review", "reply", r2["txid"], "--text", "I am not the shop")

    # The split purchase: the largest payee is reviewed by default.
    r3 = write(dev, "alice", p3, 4, "")  # an empty text is allowed
    assert r3["merchant"] == shop
    wait_mined(dev, r3["txid"])

    # The reviewer is the key that paid: Alice paid p3 from her change address.
    alice_change = buyer(dev, p3)
    assert alice_change != alice and buyer(dev, p1) == alice and buyer(dev, p2) == bob

    listed = reviews(dev, "merchant", shop)
    assert [r["txid"] for r in listed] == [r1["txid"], r2["txid"], r3["txid"]]
    assert [r["height"] for r in listed] == sorted(r["height"] for r in listed)
    assert [(r["reviewer"], r["rating"], r["purchase"]) for r in listed] == [
        (alice, 5, p1), (bob, 2, p2), (alice_change, 4, p3)]
    assert listed[1]["text"] == text2
    assert listed[2]["text"] == "" and listed[2]["purchase_value"] == "0.75"
    assert [r["txid"] for r in reviews(dev, "reviewer", alice)] == [r1["txid"]]
    assert [r["txid"] for r in reviews(dev, "reviewer", alice_change)] == [r3["txid"]]
    assert [r["txid"] for r in reviews(dev, "reviewer", bob)] == [r2["txid"]]
    assert [r["txid"] for r in reviews(dev, "purchase", p3)] == [r3["txid"]]
    assert reviews(dev, "merchant", shop2) == []  # the split's other payee

    s = stats(dev, shop)
    assert s == {
        "merchant": shop,
        "count": 3,
        "average": 3.67,
        "distribution": {"1": 0, "2": 1, "3": 0, "4": 1, "5": 1},
        "reviewers": 3,  # distinct reviewer keys: Alice's two addresses and Bob's
        "replied": 1,
        "verified_value": "4.25",
        "verified_value_units": 425_000_000,
    }
    empty = stats(dev, shop2)
    assert empty["count"] == 0 and empty["average"] is None and empty["reviewers"] == 0
    assert empty["distribution"] == {str(n): 0 for n in range(1, 6)}
    assert empty["verified_value_units"] == 0
    human = dev.cli("review", "stats", "--merchant", shop)
    assert human.returncode == 0 and "3 reviews, average 3.67 from 3 reviewer keys" in human.stdout
    table = dev.cli("review", "list", "--merchant", shop)
    assert table.returncode == 0 and "★★☆☆☆" in table.stdout and "Thank you!" in table.stdout

    # list needs exactly one selector.
    assert "exactly one" in refused(dev, "review", "list")
    assert "exactly one" in refused(dev, "review", "list", "--merchant", shop,
                                    "--reviewer", alice)
    assert "no review" in refused(dev, "review", "show", RANDOM_TXID)
    assert "no review" in refused(dev, "review", "show", p1)  # a purchase is not a review
    broken = shop[:-1] + ("x" if shop[-1] != "x" else "y")
    assert "invalid address" in refused(dev, "review", "stats", "--merchant", broken)


def test_refused_reviews_change_nothing(dev):
    alice = create(dev, "alice")
    carol = create(dev, "carol")
    shop = create(dev, "shop")
    other = create(dev, "other")
    funder = PrivateKey.generate()  # pays the fees of hand-built txs
    wait_mined(dev, send(dev, "dev", alice, "20"), send(dev, "dev", carol, "5"),
               send(dev, "dev", shop, "5"),
               send(dev, "dev", DEVNET.address(funder.public_key.hash160()), "5"))
    p1 = send(dev, "alice", shop, "1")
    p_other = send(dev, "alice", other, "1")  # a purchase from another merchant
    p_small = send(dev, "alice", shop, "0.005")  # below the devnet's 0.01 minimum
    p_self = send(dev, "shop", shop, "1")  # the shop pays its own address
    wait_mined(dev, p1, p_other, p_small, p_self)
    assert buyer(dev, p1) == alice and buyer(dev, p_self) == shop
    for name in ("alice", "carol", "shop"):
        balance(dev, name)  # the wallets have seen their latest transactions
    before = snapshot(dev, shop, "alice", "carol", "shop")

    # ---- refused by the wallet, before anything is signed
    review = ["review", "write", "--text", "nice"]
    err = refused(dev, "-w", "alice", *review, "--purchase", RANDOM_TXID, "--rating", "5")
    assert f"no purchase {RANDOM_TXID}" in err and "not in the chain or mempool" in err
    # A txid may be a unique prefix of at least 8 hex digits: "abc" is too short.
    assert "txid prefix abc is too short" in refused(dev, "-w", "alice", *review, "--purchase",
                                                     "abc", "--rating", "5")
    assert "no purchase" in refused(dev, "-w", "alice", *review, "--purchase", "not-hex",
                                    "--rating", "5")
    err = refused(dev, "-w", "alice", *review, "--purchase", p1, "--rating", "5",
                  "--merchant", other)
    assert f"the purchase did not pay {other}" in err
    err = refused(dev, "-w", "alice", *review, "--purchase", p_other, "--rating", "5",
                  "--merchant", shop)
    assert f"the purchase did not pay {shop}" in err
    # Someone else's purchase: only the buyer can review it (not a third
    # customer, not the merchant that was paid).
    for who in ("carol", "shop"):
        err = refused(dev, "-w", who, *review, "--purchase", p1, "--rating", "5")
        assert "did not pay for that purchase: only the buyer can review it" in err
    err = refused(dev, "-w", "shop", *review, "--purchase", p_self, "--rating", "5")
    assert "paid nobody outside this wallet" in err
    err = refused(dev, "-w", "alice", *review, "--purchase", p_small, "--rating", "5")
    assert "less than the 0.01 O2O a review needs" in err
    # With --json the refusal is also on stdout.
    out = dev.cli("-w", "alice", *review, "--purchase", p_small, "--rating", "5",
                  json_out=True)
    assert out.returncode == 1 and "less than the 0.01 O2O" in out.stderr
    error = json.loads(out.stdout)["error"]
    assert error["code"] == 1 and "less than the 0.01 O2O" in error["message"]
    for rating in ("0", "6", "-1"):
        err = refused(dev, "-w", "alice", *review, "--purchase", p1, "--rating", rating)
        assert f"rating must be 1..5, got {rating}" in err
    for rating in ("five", "4.5", ""):
        err = refused(dev, "-w", "alice", *review, "--purchase", p1, "--rating", rating, code=2)
        assert "--rating" in err
    write_p1 = ["-w", "alice", "review", "write", "--purchase", p1, "--rating", "3", "--text"]
    err = refused(dev, *write_p1, "x" * 1001)
    assert "review text is 1001 bytes" in err and "1000" in err
    assert "is 1002 bytes" in refused(dev, *write_p1, "é" * 501)  # bytes, not characters
    for bad in ("two\nlines", "tab\there", "bell\x07", "del\x7f", "\x1b[31mred",
                "next\u2028line", "\u202egnp.exe"):
        assert "control character" in refused(dev, *write_p1, bad), repr(bad)
    assert snapshot(dev, shop, "alice", "carol", "shop") == before

    # ---- refused by consensus: hand-built review txs sent with chain broadcast
    alice_key = wallet_key(dev, "alice", alice)
    shop_key = wallet_key(dev, "shop", shop)
    carol_key = wallet_key(dev, "carol", carol)
    small_key = wallet_key(dev, "alice", buyer(dev, p_small))

    def refused_review(reason, key, merchant, purchase, rating=5, text=b"ok"):
        tx = payload_tx(dev, funder, signed_review(key, merchant, purchase, rating, text))
        return broadcast_refused(dev, tx, reason)

    refused_review("bad-review-no-purchase", alice_key, shop, RANDOM_TXID)
    refused_review("bad-review-wrong-merchant", alice_key, other, p1)
    refused_review("bad-review-purchase-too-small", small_key, shop, p_small)
    # The merchant's key about its own address: refused as a self-review (the
    # self rule comes before the buyer rule), whether or not it paid.
    err = refused_review("bad-review-self", shop_key, shop, p1)
    assert "a merchant cannot review itself" in err
    refused_review("bad-review-self", shop_key, shop, p_self)
    err = refused_review("bad-review-not-buyer", carol_key, shop, p1)
    assert "did not fund the purchase" in err
    for rating in (0, 6, 255):
        err = refused_review("bad-review-rating", alice_key, shop, p1, rating=rating)
        assert f"got {rating}" in err
    refused_review("bad-review-text-length", alice_key, shop, p1, text=b"x" * 1001)
    for bad in (b"a\nb", b"\x00", b"tab\t", b"\xc2\x85next-line", "\u2029".encode(),
                "\u202e".encode()):
        refused_review("bad-review-text-control", alice_key, shop, p1, text=bad)
    refused_review("bad-review-text-utf8", alice_key, shop, p1, text=b"caf\xe9")
    # A review signature by another key than the payload's pubkey.
    forged = dataclasses.replace(signed_review(alice_key, shop, p1, 1, b"awful"),
                                 signature=carol_key.sign(bytes(32)))
    broadcast_refused(dev, payload_tx(dev, funder, forged), "bad-txns-signature")
    assert snapshot(dev, shop, "alice", "carol", "shop") == before

    # ---- a real signed review (dry run), then tampered with
    dry = write(dev, "alice", p1, 4, "Good espresso", "--dry-run")
    assert set(dry) == {"txid", "merchant", "raw"} and dry["merchant"] == shop
    assert dev.rpc("getmempool") == []  # not broadcast
    tx = Tx.from_bytes(bytes.fromhex(dry["raw"]))
    assert tx.txid.hex() == dry["txid"]
    assert isinstance(tx.payload, Review) and tx.payload.text == b"Good espresso"
    assert tx.payload.pubkey == alice_key.public_key.to_bytes()
    # The text changed after signing, signatures kept: refused.  (Same length,
    # so the fee rate stays above the relay minimum.)
    tampered = dataclasses.replace(tx, payload=dataclasses.replace(
        tx.payload, text=b"Vile espresso"))
    tampered = Tx.from_bytes(tampered.to_bytes())
    assert tampered.payload.text == b"Vile espresso" and tampered.txid != tx.txid
    broadcast_refused(dev, tampered, "bad-txns-signature")
    # The rating changed after signing: refused too.
    lowered = dataclasses.replace(tx, payload=dataclasses.replace(tx.payload, rating=1))
    broadcast_refused(dev, lowered, "bad-txns-signature")
    # Invalid UTF-8 with every signature redone (review and inputs): only the
    # UTF-8 rule is left to refuse it.
    latin1 = dataclasses.replace(tx.payload, text="Très bon café".encode("latin-1"))
    latin1 = dataclasses.replace(latin1, signature=alice_key.sign(
        review_sig_digest(latin1, DEVNET.chain_id)))
    resigned = resign(dev, "alice", dataclasses.replace(tx, payload=latin1))
    err = broadcast_refused(dev, resigned, "bad-review-text-utf8")
    assert "not valid UTF-8" in err
    assert snapshot(dev, shop, "alice", "carol", "shop") == before

    # Control: the same surgery with a valid text is accepted.
    valid = dataclasses.replace(tx.payload, text=b"Tres bon cafe")
    valid = dataclasses.replace(valid, signature=alice_key.sign(
        review_sig_digest(valid, DEVNET.chain_id)))
    resigned_valid = resign(dev, "alice", dataclasses.replace(tx, payload=valid))
    first_txid = resigned_valid.txid.hex()
    assert dev.cli_json("chain", "broadcast", resigned_valid.to_bytes().hex()) == {
        "txid": first_txid}
    wait_mined(dev, first_txid)
    (first,) = reviews(dev, "merchant", shop)
    assert (first["txid"], first["reviewer"], first["rating"], first["text"]) == (
        first_txid, alice, 4, "Tres bon cafe")

    # A second review of the same purchase, once the first is mined.
    before = snapshot(dev, shop, "alice", "carol", "shop")
    err = refused(dev, *write_p1, "Changed my mind")
    assert "bad-review-duplicate" in err and first_txid[:16] in err
    refused_review("bad-review-duplicate", alice_key, shop, p1, rating=1)

    # ---- replies refused by the wallet and by consensus
    reply = ["review", "reply", first_txid, "--text"]
    assert "reply text is empty" in refused(dev, "-w", "shop", *reply, "")
    assert "1001 bytes" in refused(dev, "-w", "shop", *reply, "y" * 1001)
    assert "control character" in refused(dev, "-w", "shop", *reply, "a\nb")

    def refused_reply(reason, key, review_txid, text=b"thanks"):
        tx = payload_tx(dev, funder, signed_reply(key, review_txid, text))
        return broadcast_refused(dev, tx, reason)

    refused_reply("bad-reply-no-review", shop_key, RANDOM_TXID)
    refused_reply("bad-reply-no-review", shop_key, p1)  # a purchase is not a review
    err = refused_reply("bad-reply-not-merchant", alice_key, first_txid)
    assert "only the reviewed merchant can reply" in err
    refused_reply("bad-reply-not-merchant", carol_key, first_txid)
    refused_reply("bad-reply-text-length", shop_key, first_txid, text=b"")
    refused_reply("bad-reply-text-length", shop_key, first_txid, text=b"y" * 1001)
    refused_reply("bad-reply-text-utf8", shop_key, first_txid, text=b"\xff\xfe")
    refused_reply("bad-reply-text-control", shop_key, first_txid, text=b"a\rb")
    assert snapshot(dev, shop, "alice", "carol", "shop") == before

    answer = dev.cli_json("-w", "shop", "review", "reply", first_txid, "--text", "Merci")
    wait_mined(dev, answer["txid"])
    assert reviews(dev, "merchant", shop)[0]["reply"]["txid"] == answer["txid"]
    err = refused_reply("bad-reply-duplicate", shop_key, first_txid, text=b"Merci encore")
    assert answer["txid"][:16] in err
    # The tx of the refused duplicate spent nothing: the shop's coins are intact.
    assert reviews(dev, "merchant", shop)[0]["reply"]["text"] == "Merci"


def test_one_pending_review_per_purchase(dev):
    alice = create(dev, "alice")
    shop = create(dev, "shop")
    wait_mined(dev, send(dev, "dev", alice, "20"))
    p1 = pay(dev, "alice", shop, "1")

    # Restart the node so that it seals nothing for an hour: txs stay pending.
    assert dev.stop() == 0
    dev.start("--dev", "--dev-period", "3600")
    height = dev.height()
    p2 = send(dev, "alice", shop, "2")
    assert not mined(dev, p2)
    err = refused(dev, "-w", "alice", "review", "write", "--purchase", p2, "--rating", "5")
    assert "the purchase is not mined yet" in err

    first = write(dev, "alice", p1, 5, "First impression")
    assert dev.rpc("gettx", first["txid"])["in_mempool"] is True
    assert reviews(dev, "merchant", shop) == []  # pending reviews are not listed
    assert "is it mined yet?" in refused(dev, "-w", "shop", "review", "reply", first["txid"],
                                         "--text", "Thanks")
    balance(dev, "shop")
    before = snapshot(dev, shop, "alice", "shop")
    # A second review of the same purchase while the first is pending: refused
    # by the mempool (one pending review per purchase), whichever coin it spends.
    err = refused(dev, "-w", "alice", "review", "write", "--purchase", p1, "--rating", "1",
                  "--text", "Second thoughts")
    assert "txn-mempool-conflict" in err and first["txid"] in err
    assert "one review per purchase" in err
    dry = write(dev, "alice", p1, 2, "Third thoughts", "--dry-run")
    err = refused(dev, "chain", "broadcast", dry["raw"])
    assert "txn-mempool-conflict" in err and first["txid"] in err
    assert snapshot(dev, shop, "alice", "shop") == before
    assert dev.height() == height
    pending = [dev.rpc("getrawtx", t) for t in (p2, first["txid"])]

    # Back to sealing on demand (the mempool is not kept across restarts).
    assert dev.stop() == 0
    dev.start("--dev", "--dev-period", "0")
    for raw in pending:
        dev.cli_json("chain", "broadcast", raw)
    wait_mined(dev, p2, first["txid"])
    (listed,) = reviews(dev, "merchant", shop)
    assert (listed["txid"], listed["rating"], listed["text"]) == (
        first["txid"], 5, "First impression")

    # ... and once the first is mined, by consensus.
    before = snapshot(dev, shop, "alice", "shop")
    err = refused(dev, "-w", "alice", "review", "write", "--purchase", p1, "--rating", "1",
                  "--text", "Second thoughts")
    assert "bad-review-duplicate" in err and first["txid"][:16] in err
    err = refused(dev, "chain", "broadcast", dry["raw"])
    assert "bad-review-duplicate" in err or "bad-txns-inputs-missingorspent" in err, err
    assert snapshot(dev, shop, "alice", "shop") == before
    # The other purchase can still be reviewed.
    second = write(dev, "alice", p2, 3, "Fine")
    wait_mined(dev, second["txid"])
    assert [r["txid"] for r in reviews(dev, "merchant", shop)] == [first["txid"],
                                                                   second["txid"]]


def test_escrow_payer_reviews_and_the_arbiter_cannot(dev):
    """The buyer of an escrowed purchase is its payer, whoever signed the
    settlement: the customer reviews the merchant after a release and after a
    dispute settled for the merchant; the arbiter, who signed the dispute, is
    refused by the wallet and by consensus; a refund is no purchase."""
    alice = create(dev, "alice")
    shop = create(dev, "shop")
    arb = create(dev, "arb")
    wait_mined(dev, send(dev, "dev", alice, "30"), send(dev, "dev", arb, "5"))

    def escrow(amount: str) -> str:
        out = dev.cli_json("-w", "alice", "escrow", "open", "--payee", f"{shop}=10000",
                           "--amount", amount, "--arbiter", arb, "--timeout", "500")
        wait_mined(dev, out["txid"])
        return out["escrow"]

    released, disputed, refunded = escrow("2"), escrow("3"), escrow("4")
    payer = dev.cli_json("escrow", "show", released)["payer"]

    # Released by the payer: the payer reviews the merchant.
    release = dev.cli_json("-w", "alice", "escrow", "release", released)["txid"]
    wait_mined(dev, release)
    assert dev.rpc("gettx", release)["buyers"] == [payer]
    first = write(dev, "alice", release, 5, "Paid through escrow, fine work")
    assert first["merchant"] == shop
    wait_mined(dev, first["txid"])
    (listed,) = reviews(dev, "purchase", release)
    assert (listed["reviewer"], listed["merchant"]) == (payer, shop)

    # Disputed: the arbiter rules for the merchant, the merchant co-signs.
    ruling = dev.cli_json("-w", "arb", "escrow", "dispute", disputed, "--pay", f"{shop}=10000")
    dispute = dev.cli_json("-w", "shop", "escrow", "dispute", "--cosign", ruling["raw"],
                           "--yes")["txid"]
    wait_mined(dev, dispute)
    signers = {a for i in dev.rpc("gettx", dispute)["inputs"] for a in i["signers"]}
    assert signers == {arb, shop}  # alice did not sign, yet the money was hers
    assert dev.rpc("gettx", dispute)["buyers"] == [payer]
    before = snapshot(dev, shop, "arb")
    err = refused(dev, "-w", "arb", "review", "write", "--purchase", dispute, "--rating", "1")
    assert "did not pay for that purchase" in err, err
    arb_key = wallet_key(dev, "arb", arb)
    broadcast_refused(dev, payload_tx(dev, arb_key, signed_review(arb_key, shop, dispute, 1,
                                                                  b"arbiter")),
                      "bad-review-not-buyer")
    assert snapshot(dev, shop, "arb") == before
    second = write(dev, "alice", dispute, 2, "Needed an arbiter")
    wait_mined(dev, second["txid"])
    assert [(r["reviewer"], r["purchase"]) for r in reviews(dev, "merchant", shop)] == [
        (payer, release), (payer, dispute)]

    # Refunded by the payee: nobody can review it, the payee least of all.
    refund = dev.cli_json("-w", "shop", "escrow", "refund", refunded)["txid"]
    wait_mined(dev, refund)
    assert dev.rpc("gettx", refund)["buyers"] == []
    before = snapshot(dev, payer, "shop")
    err = refused(dev, "-w", "shop", "review", "write", "--purchase", refund, "--rating", "1",
                  "--merchant", payer)
    assert "refunds an escrow" in err, err
    shop_key = wallet_key(dev, "shop", shop)
    broadcast_refused(dev, payload_tx(dev, shop_key, signed_review(shop_key, payer, refund, 1,
                                                                   b"payee")),
                      "bad-review-refund")
    assert snapshot(dev, payer, "shop") == before


def make_spec(tmp_path: Path, name: str, validators: int, period: int, **o2o) -> dict:
    """``chain spec new`` with the ``o2o`` section of the spec overridden."""
    out = run_cli(tmp_path / "unused", "chain", "spec", "new", name, "--validators",
                  str(validators), "--period", str(period), "--out", str(tmp_path / name),
                  json_out=True)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    path = Path(info["spec"])
    data = json.loads(path.read_text())
    data["o2o"].update(o2o)
    path.write_text(json.dumps(data, indent=2))
    return info


def import_funds(node, info: dict, name: str) -> str:
    """A wallet holding the spec's genesis funds key; returns its address."""
    create(node, name)
    wif = Path(info["funds_key"]).read_text().strip()
    assert node.cli_json("-w", name, "wallet", "import-key", wif) == {
        "address": info["funds_address"]}
    return info["funds_address"]


def test_review_window(tmp_path, node_factory):
    """A chain whose review window is 3 blocks (one block a second)."""
    info = make_spec(tmp_path, "window", 1, 1, review_window=3)
    spec = load_spec(info["spec"])
    assert spec.review_window == 3
    node = node_factory("window")
    init = run_cli(node.datadir, "--chain", info["spec"], "node", "init")
    assert init.returncode == 0, init.stderr
    node.start("--validator-key", info["validator_keys"][0])
    import_funds(node, info, "alice")
    shop = create(node, "shop")
    old, fresh = send(node, "alice", shop, "1"), None
    wait_mined(node, old)
    old_height = node.rpc("gettx", old)["height"]

    # Within the window: accepted (written as soon as the purchase is mined).
    fresh = send(node, "alice", shop, "2")
    wait_mined(node, fresh, timeout=10)
    review = write(node, "alice", fresh, 5, "Quick")
    wait_mined(node, review["txid"], timeout=10)
    fresh_height = node.rpc("gettx", fresh)["height"]
    assert node.rpc("gettx", review["txid"])["height"] - fresh_height <= 3

    # Too late: the purchase is more than 3 blocks older than the next block.
    node.wait_height(old_height + 3, timeout=15)

    def unchanged() -> dict:
        # A block a second: leave out what every new block changes.
        listed = [{k: v for k, v in r.items() if k not in ("confirmations", "final")}
                  for r in node.rpc("listreviews", "merchant", shop)]
        return {"reviews": listed, "balance": balance(node, "alice")}

    before = unchanged()
    err = refused(node, "-w", "alice", "review", "write", "--purchase", old, "--rating", "4")
    assert "bad-review-window" in err
    match = re.search(r"the purchase is (\d+) blocks old, the window is 3", err)
    assert match and int(match.group(1)) > 3, err
    assert unchanged() == before
    assert [r["txid"] for r in before["reviews"]] == [review["txid"]]


# --------------------------------------------------------------------------
# Reorg


def ready_peers(node) -> list[dict]:
    return [p for p in node.rpc("getpeerinfo")["peers"] if p["ready"]]


def wait_mesh(nodes, timeout: float = 30) -> None:
    def mesh() -> bool:
        return all({p["listen"] for p in ready_peers(n)}
                   >= {o.p2p_address for o in nodes if o is not n} for n in nodes)

    wait_until(mesh, timeout, "a full mesh of ready peers")


def set_network(nodes, active: bool) -> None:
    for node in nodes:
        assert node.rpc("setnetworkactive", active) == {"network_active": active}


SEAL_SLACK = 3
"""Seconds past ``parent time + period`` by which a validator that may seal
has done so: the out-of-turn wait (0.5 s), the wiggle (at most signer limit ×
0.5 s = 1.5 s with 5 validators) and a second for whole-second timestamps."""


def own_early_block(node, spec: ChainSpec, key_file: str, height: int) -> Block:
    """An empty block on ``node``'s tip (at ``height``) sealed with the key in
    ``key_file``, stamped ``max_future`` seconds after the last moment a
    validator could seal the next block (tip time + period + SEAL_SLACK)."""
    tip = Block.from_bytes(bytes.fromhex(node.rpc("getblock", height, 0)))
    when = tip.header.time + spec.period + SEAL_SLACK + spec.max_future
    header = BlockHeader(height + 1, tip.hash, merkle_root([]), when, DIFF_NO_TURN)
    key = read_key_file(Path(key_file), spec.wif_version)
    return Block(seal_header(header, key, spec.chain_id), ())


@pytest.mark.slow
def test_reorg_orphans_review_and_purchase_is_reviewable_again(tmp_path, node_factory):
    """Five validators (a validator seals at most once in any 3 blocks): D and E
    alone can seal exactly two blocks, the purchase then its review; A, B and C
    outgrow them, and on reconnecting D and E switch to their heavier chain."""
    net = Network(tmp_path, node_factory, validators=5, period=3)
    net.start_all()
    wait_mesh(net.nodes)
    a, b, c, d, e = net.nodes
    majority, minority = [a, b, c], [d, e]
    majority_sealers = set(net.spec_info["validators"][:3])
    import_funds(d, net.spec_info, "alice")
    shop = create(d, "shop")
    purchase = d.cli_json("-w", "alice", "wallet", "send", "--to", shop, "--amount", "3",
                          "--dry-run")  # signed now, broadcast after the split

    # Split right after a block sealed by A, B or C (so D and E can seal the
    # next two): A, B and C drop every peer; D and E stay linked.
    seen = d.height()

    def fresh_majority_block() -> int | None:
        info = d.rpc("getinfo")
        if info["height"] > seen and d.rpc("getblock", info["tip"])["validator"] in (
                majority_sealers):
            return info["height"]
        return None

    fork = wait_until(fresh_majority_block, 30, "a fresh block sealed by A, B or C",
                      interval=0.02)
    set_network(majority, False)
    assert d.rpc("sendrawtx", purchase["raw"]) == purchase["txid"]
    assert d.height() == fork, "a block was sealed during the split"
    wait_until(lambda: [p["listen"] for p in ready_peers(d)] == [e.p2p_address], 10,
               "D to keep E as its only peer")

    wait_mined(d, purchase["txid"], timeout=15, final=False)  # 2 of 5: never final
    bought = d.rpc("gettx", purchase["txid"])
    assert bought["height"] == fork + 1, "the minority sealed an empty block first"
    review = write(d, "alice", purchase["txid"], 5, "Lovely shop")
    wait_until(lambda: (e.rpc("gettx", review["txid"])["height"] or 0) == fork + 2, 15,
               "the review mined on the minority branch")
    for node in minority:
        (listed,) = node.rpc("listreviews", "merchant", shop)
        assert listed["txid"] == review["txid"] and listed["purchase"] == purchase["txid"]
    # The minority cannot seal a third block.  Proof, without sleeping: D is
    # handed a block fork+3 sealed by D itself, stamped max_future seconds
    # past the last moment D or E could seal fork+3 (tip time + period +
    # SEAL_SLACK).  D keeps it until its own clock reaches that moment, then
    # refuses it (D sealed too recently, the rule that also stops its
    # producer) and drops the sender.  By then their sealing slot has passed.
    spec = load_spec(net.spec_path)
    own = own_early_block(d, spec, net.key(3), fork + 2)
    peer = RawPeer(d, "127.0.0.1", spec.network_magic)
    try:
        peer.handshake(d.rpc("getinfo"))
        peer.send(encode_frame(spec.network_magic, BlockMsg(own)))
        wait_until(lambda: any("bad-poa-recently-signed" in x["reason"]
                               for x in d.rpc("getpeerinfo")["recent_disconnects"]), 40,
                   "D to refuse its own block fork+3 when its time came")
    finally:
        peer.close()
    assert d.height() == e.height() == fork + 2
    assert (d.rpc("getbestblockhash") == e.rpc("getbestblockhash")
            == e.rpc("gettx", review["txid"])["block"])
    for node in majority:
        assert not_found(node, "gettx", purchase["txid"])
        assert not_found(node, "getreview", review["txid"])

    # The majority links up again (without D and E) and outgrows the minority.
    set_network(minority, False)
    set_network(majority, True)
    b.rpc("addpeer", a.p2p_address)
    c.rpc("addpeer", a.p2p_address)
    c.rpc("addpeer", b.p2p_address)
    wait_until(lambda: min(n.height() for n in majority) >= fork + 5, 45,
               "A, B and C to seal 5 blocks after the fork")
    net.wait_synced(majority, timeout=30)
    for node in majority:
        assert not_found(node, "getreview", review["txid"])

    # Heal: D and E switch to the heavier chain.
    set_network(minority, True)
    for node in minority:
        node.rpc("addpeer", a.p2p_address)
    net.wait_synced(timeout=60)
    assert d.rpc("getblock", bought["block"])["main_chain"] is False
    for node in net.nodes:
        assert not_found(node, "getreview", review["txid"]), node.name
        assert node.rpc("listreviews", "merchant", shop) == []
        assert node.rpc("listreviews", "purchase", purchase["txid"]) == []
        assert node.rpc("getreviewstats", shop)["count"] == 0
    assert d.rpc("listreviews", "reviewer", net.spec_info["funds_address"]) == []
    assert not_found(d, "gettx", review["txid"])  # not even pending: its purchase was not

    # The purchase goes back to the mempool and is mined again on the joint chain...
    wait_until(lambda: all(mined(n, purchase["txid"]) for n in net.nodes), 30,
               "the purchase to be mined again everywhere")
    again = a.rpc("gettx", purchase["txid"])
    assert again["block"] != bought["block"] and again["height"] > fork
    assert d.rpc("getblock", again["block"])["main_chain"] is True
    assert reviews(d, "purchase", purchase["txid"]) == []

    # ... and can be reviewed again.
    second = write(d, "alice", purchase["txid"], 4, "Lovely shop, second try")
    assert second["merchant"] == shop
    wait_until(lambda: all(mined(n, second["txid"]) for n in net.nodes), 30,
               "the new review to be mined everywhere")
    for node in net.nodes:
        (listed,) = node.rpc("listreviews", "merchant", shop)
        assert (listed["txid"], listed["purchase"], listed["rating"]) == (
            second["txid"], purchase["txid"], 4)
        assert listed["reviewer"] == net.spec_info["funds_address"]
        assert node.rpc("listreviews", "reviewer", listed["reviewer"]) == [listed]
    assert stats(a, shop)["count"] == 1
