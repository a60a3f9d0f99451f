"""Wallet side of the reviews: a buyer's signed review of a purchase and the
merchant's signed reply.

The node's consensus rules are the final word; these functions check the same
things first so that a user gets a clear message before anything is signed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from o2ocli.amounts import format_amount
from o2ocli.consensus.reviews import REPLY_TEXT, REVIEW_TEXT
from o2ocli.core.payloads import Review, ReviewReply, reply_sig_digest, review_sig_digest
from o2ocli.core.tx import NATIVE_ASSET, Tx
from o2ocli.rpc import errors as E
from o2ocli.rpc.errors import RpcError

from .builder import PaymentPlan, Spendable
from .errors import O2OError
from .payloadtx import build, check_field, signing_pubkey
from .service import sync, wallet_coins
from .wallet import Unlocked, Wallet

__all__ = ["reply", "write_review"]


def write_review(
    wallet: Wallet, client: Any, unlocked: Unlocked, purchase: str, rating: int, text: str,
    merchant: str | None = None,
) -> tuple[Tx, PaymentPlan, str]:
    """A signed review of ``purchase`` (a txid of this wallet's payment);
    returns (tx, plan, merchant address)."""
    if not 1 <= rating <= 5:
        raise O2OError(f"rating must be 1..5, got {rating}")
    text_bytes = check_field(text, REVIEW_TEXT)
    try:
        ptx = client.call("gettx", purchase)
    except RpcError as exc:
        if exc.code in (E.NOT_FOUND, E.INVALID_PARAMS):
            raise O2OError(f"no purchase {purchase}: {exc.message}") from None
        raise
    if ptx["height"] is None:
        raise O2OError("the purchase is not mined yet; review it once it is in a block")
    sync(wallet, client)
    if "buyers" not in ptx:
        raise O2OError("the node did not say who paid for that purchase (is it up to date?)")
    # The buyers are the consensus rule's (the owners of the money that paid:
    # for an escrow, its payer, whoever signed; an escrow refund has none).
    buyers = [wallet.spec.decode_address(a) for a in ptx["buyers"]]
    reviewer = next((b for b in buyers if wallet.owns(b)), None)
    if reviewer is None:
        if not buyers and any(i.get("lock", {}).get("type") == "escrow" for i in ptx["inputs"]):
            raise O2OError("that transaction refunds an escrow: it is not a purchase, "
                           "nobody can review it")
        raise O2OError("this wallet did not pay for that purchase: only the buyer can review it "
                       "(the owner of the money that paid; for an escrow, its payer)")
    payees: dict[str, int] = {}
    for out in ptx["outputs"]:
        address = out.get("address")
        if (address is not None and out["asset_id"] == NATIVE_ASSET.hex()
                and not wallet.owns(wallet.spec.decode_address(address))):
            payees[address] = payees.get(address, 0) + out["units"]
    if merchant is None:
        if not payees:
            raise O2OError("the purchase paid nobody outside this wallet: no merchant to review")
        merchant = max(payees, key=lambda a: payees[a])
    elif merchant not in payees:
        raise O2OError(f"the purchase did not pay {merchant}")
    if payees[merchant] < wallet.spec.min_purchase:
        need = format_amount(wallet.spec.min_purchase, wallet.spec.native_decimals)
        raise O2OError(f"the purchase paid {merchant} less than the {need} "
                       f"{wallet.spec.native_symbol} a review needs")
    merchant_pkh = wallet.spec.decode_address(merchant)
    pubkey = signing_pubkey(wallet, reviewer, unlocked)
    unsigned = Review(merchant_pkh, bytes.fromhex(purchase), rating, text_bytes, pubkey, bytes(64))
    signature = wallet.sign_digest(reviewer, review_sig_digest(unsigned, wallet.spec.chain_id),
                                   unlocked)[1]
    payload = Review(merchant_pkh, unsigned.purchase, rating, text_bytes, pubkey, signature)
    coins = wallet_coins(wallet, client)
    # The review tx only pays its fee: it spends native coin back to the wallet.
    return (*build(wallet, client, unlocked, [], payload=payload, coins=coins,
                   required=_one_native_coin(coins)), merchant)


def _one_native_coin(coins: Sequence[Spendable]) -> list[Spendable]:
    native = sorted((c for c in coins if c.output.asset == NATIVE_ASSET),
                    key=lambda c: (not c.confirmed, -c.output.amount))
    if not native:
        raise O2OError("the wallet has no coins to pay the fee")
    return native[:1]


def reply(
    wallet: Wallet, client: Any, unlocked: Unlocked, review_txid: str, text: str
) -> tuple[Tx, PaymentPlan]:
    """A signed reply to a review of one of this wallet's addresses."""
    text_bytes = check_field(text, REPLY_TEXT)
    try:
        review = client.call("getreview", review_txid)
    except RpcError as exc:
        if exc.code in (E.NOT_FOUND, E.INVALID_PARAMS):
            raise O2OError(f"no review {review_txid} in the chain (is it mined yet?)") from None
        raise
    if review["reply"] is not None:
        raise O2OError(f"the review already has a reply ({review['reply']['txid']})")
    merchant = wallet.spec.decode_address(review["merchant"])
    if not wallet.owns(merchant):
        raise O2OError(f"the review is about {review['merchant']}, not an address of this wallet")
    pubkey = signing_pubkey(wallet, merchant, unlocked)
    unsigned = ReviewReply(bytes.fromhex(review_txid), text_bytes, pubkey, bytes(64))
    signature = wallet.sign_digest(merchant, reply_sig_digest(unsigned, wallet.spec.chain_id),
                                   unlocked)[1]
    sync(wallet, client)
    coins = wallet_coins(wallet, client)
    return build(wallet, client, unlocked, [],
                 payload=ReviewReply(unsigned.review, text_bytes, pubkey, signature),
                 coins=coins, required=_one_native_coin(coins))
