"""Tokens, reviews, replies and rewards from the wallet (o2ocli.wallet.o2o).

Pure input checks first; then the flows against a mining devnet node in this
process (real LevelDB, real RPC server and client, see ``wallet_node``) with
real wallets and keys; the node's ``gettoken``/``getreview`` say what the
chain recorded.
"""

from __future__ import annotations

import pytest
from wallet_node import COIN, PASS, SPEC, address, mined

from o2ocli.core.locks import PayToAddress
from o2ocli.core.tx import NATIVE_ASSET, TxOut
from o2ocli.wallet.builder import InsufficientFunds
from o2ocli.wallet.errors import O2OError
from o2ocli.wallet.o2o import (
    burn,
    check_symbol,
    check_text,
    finish_issue,
    freeze,
    get_token,
    mint,
    parse_rate,
    pending_issue,
    plan_rewards,
    reply,
    reward,
    start_issue,
    write_review,
)
from o2ocli.wallet.service import balances, prepare_payment


# ---------------------------------------------------------------- input checks
@pytest.mark.parametrize(("given", "canonical"), [("abc", "ABC"), ("Coffee1", "COFFEE1"),
                                                  ("X1Y2Z3", "X1Y2Z3")])
def test_symbols_are_upper_cased(given, canonical):
    assert check_symbol(given) == canonical


@pytest.mark.parametrize("symbol", ["", "A", "ABCDEFGHIJKLM", "AB-C", "AB C", "straße", "ÀBC"])
def test_bad_symbols_are_refused(symbol):
    with pytest.raises(O2OError, match="invalid symbol"):
        check_symbol(symbol)


def test_text_rule_allows_plain_text_and_names_what_is_wrong():
    assert check_text("Très bon café ☕", "review text", 100, allow_empty=False) == \
        "Très bon café ☕".encode()
    assert check_text("", "note", 10, allow_empty=True) == b""
    with pytest.raises(O2OError, match="note"):
        check_text("", "note", 10, allow_empty=False)
    with pytest.raises(O2OError, match="note"):
        check_text("x" * 11, "note", 10, allow_empty=True)
    with pytest.raises(O2OError, match="newlines, tabs and direction marks"):
        check_text("line\nbreak", "note", 100, allow_empty=True)
    with pytest.raises(O2OError, match="newlines, tabs and direction marks"):
        check_text("abc\u202edef", "note", 100, allow_empty=True)
    with pytest.raises(O2OError, match="not valid UTF-8"):
        check_text("\ud800", "note", 100, allow_empty=True)


@pytest.mark.parametrize(("rate", "decimals", "units"), [("1", 0, 1), ("0.5", 2, 50),
                                                         ("2.25", 2, 225), ("3", 8, 3 * 10**8)])
def test_reward_rates_become_base_units(rate, decimals, units):
    assert parse_rate(rate, decimals) == units


@pytest.mark.parametrize(("rate", "fragment"), [("abc", "invalid rate"), ("0", "positive"),
                                                ("-1", "positive"), ("NaN", "positive"),
                                                ("Infinity", "positive"),
                                                ("0.001", "more than 2 decimals")])
def test_bad_reward_rates_are_refused(rate, fragment):
    with pytest.raises(O2OError, match=fragment):
        parse_rate(rate, 2)


# ---------------------------------------------------------------- tokens
def issue(mining, wallet, symbol: str, *, supply: int, mintable: bool, decimals: int = 2) -> dict:
    key = wallet.unlock(PASS)
    commit = start_issue(wallet, mining.client, key, symbol, f"{symbol} points", decimals,
                         supply, mintable)
    assert pending_issue(wallet, check_symbol(symbol))["commit"] == commit
    mining.wait_mined(commit)
    mining.wait_mined(finish_issue(wallet, mining.client, key, symbol))
    assert pending_issue(wallet, check_symbol(symbol)) is None
    return get_token(mining.client, symbol)


def token_units(mining, wallet, asset: str) -> int:
    found = [b for b in balances(wallet, mining.client) if b.asset.hex() == asset]
    return sum(b.confirmed + b.unconfirmed for b in found)


def test_token_issue_mint_burn_freeze(mining, wallets):
    alice, bob = wallets
    key = alice.unlock(PASS)
    token = issue(mining, alice, "bean", supply=1000, mintable=True)
    assert (token["symbol"], token["supply_units"], token["decimals"]) == ("BEAN", 1000, 2)
    assert token["issuer"] in {SPEC.address(p) for p in alice.pubkey_hashes()}
    assert token["authority_holder"] in {SPEC.address(p) for p in alice.pubkey_hashes()}
    assert token_units(mining, alice, token["asset"]) == 1000

    # The symbol is taken; the terms are checked before anything is sent.
    with pytest.raises(O2OError, match="already issued"):
        start_issue(alice, mining.client, key, "BEAN", "again", 2, 10, False)
    with pytest.raises(O2OError, match="decimals"):
        start_issue(alice, mining.client, key, "CUP", "cups", 19, 10, False)
    with pytest.raises(O2OError, match="fixed-supply token needs"):
        start_issue(alice, mining.client, key, "CUP", "cups", 2, 0, False)
    with pytest.raises(O2OError, match="no pending issue of CUP"):
        finish_issue(alice, mining.client, key, "CUP")
    assert mining.call("getmempool") == []

    # Minting needs the authority, which bob does not hold.
    mining.wait_mined(mint_and_send(mining, alice, token, 250, bob.primary_pkh()))
    assert token_units(mining, bob, token["asset"]) == 250
    assert get_token(mining.client, "BEAN")["supply_units"] == 1250
    with pytest.raises(O2OError, match="does not hold the mint authority"):
        mint(bob, mining.client, bob.unlock(PASS), token, 1)

    # Burning takes the wallet's own tokens, never more than it has.
    with pytest.raises(InsufficientFunds):
        burn(bob, mining.client, bob.unlock(PASS), token, 251)
    mined(mining, bob, burn(bob, mining.client, bob.unlock(PASS), token, 50))
    assert token_units(mining, bob, token["asset"]) == 200
    assert get_token(mining.client, "BEAN")["supply_units"] == 1200

    # Freezing destroys the authority: the supply is fixed from then on.
    mined(mining, alice, freeze(alice, mining.client, key, token))
    frozen = get_token(mining.client, "BEAN")
    assert frozen["authority_holder"] is None and frozen["supply_units"] == 1200
    assert frozen["mintable"] is False
    with pytest.raises(O2OError, match="BEAN has a fixed supply"):
        mint(alice, mining.client, key, frozen, 1)


def mint_and_send(mining, wallet, token: dict, units: int, to: bytes) -> str:
    from o2ocli.wallet.o2o import send

    tx, plan = mint(wallet, mining.client, wallet.unlock(PASS), token, units, to)
    return send(wallet, mining.client, tx, plan)


def test_fixed_supply_token_cannot_be_minted_or_frozen(mining, wallets):
    alice, _ = wallets
    token = issue(mining, alice, "FIX", supply=10, mintable=False)
    assert token["mintable"] is False and token["authority_holder"] is None
    with pytest.raises(O2OError, match="fixed supply"):
        mint(alice, mining.client, alice.unlock(PASS), token, 1)
    with pytest.raises(O2OError, match="fixed supply"):
        freeze(alice, mining.client, alice.unlock(PASS), token)


def test_unknown_token_is_an_o2o_error(mining):
    with pytest.raises(O2OError, match="no token"):
        get_token(mining.client, "NOPE")
    with pytest.raises(O2OError):
        get_token(mining.client, "not a symbol")


# ---------------------------------------------------------------- reviews
def purchase(mining, buyer, merchant_pkh: bytes, units: int) -> str:
    return mined(mining, buyer, prepare_payment(
        buyer, mining.client, [TxOut(NATIVE_ASSET, units, PayToAddress(merchant_pkh))],
        buyer.unlock(PASS)))


def test_buyer_reviews_a_purchase_and_the_merchant_replies_once(mining, wallets):
    alice, bob = wallets  # alice buys from bob
    paid = purchase(mining, alice, bob.primary_pkh(), 2 * COIN)
    a_key, b_key = alice.unlock(PASS), bob.unlock(PASS)
    tx, plan, merchant = write_review(alice, mining.client, a_key, paid, 5, "Lovely shop")
    assert merchant == address(bob)
    review = mined(mining, alice, (tx, plan))
    got = mining.call("getreview", review)
    assert (got["merchant"], got["purchase"], got["rating"], got["text"]) == (
        address(bob), paid, 5, "Lovely shop")
    assert got["reviewer"] in {SPEC.address(p) for p in alice.pubkey_hashes()}

    with pytest.raises(O2OError, match="not an address of this wallet"):
        reply(alice, mining.client, a_key, review, "thanks, me")
    answer = mined(mining, bob, reply(bob, mining.client, b_key, review, "Thank you!"))
    assert mining.call("getreview", review)["reply"]["txid"] == answer
    with pytest.raises(O2OError, match="already has a reply"):
        reply(bob, mining.client, b_key, review, "Thanks again")
    with pytest.raises(O2OError, match="no review"):
        reply(bob, mining.client, b_key, paid, "not a review")


def test_reviews_the_consensus_would_refuse_are_refused_first(mining, wallets):
    alice, bob = wallets
    a_key, b_key = alice.unlock(PASS), bob.unlock(PASS)
    paid = purchase(mining, alice, bob.primary_pkh(), 2 * COIN)
    small = purchase(mining, alice, bob.primary_pkh(), SPEC.min_purchase - 1)
    for rating in (0, 6):
        with pytest.raises(O2OError, match="rating must be 1..5"):
            write_review(alice, mining.client, a_key, paid, rating, "")
    with pytest.raises(O2OError, match="review text"):
        write_review(alice, mining.client, a_key, paid, 4, "x" * 10_000)
    with pytest.raises(O2OError, match="only the buyer can review"):
        write_review(bob, mining.client, b_key, paid, 1, "I sold it")
    with pytest.raises(O2OError, match="did not pay"):
        write_review(alice, mining.client, a_key, paid, 4, "", merchant=address(alice))
    with pytest.raises(O2OError, match="less than the"):
        write_review(alice, mining.client, a_key, small, 4, "")
    with pytest.raises(O2OError, match="no purchase"):
        write_review(alice, mining.client, a_key, "00" * 32, 4, "")
    assert mining.call("getmempool") == []


def test_rewards_pay_each_new_customer_once(mining, wallets):
    alice, bob = wallets  # alice is the merchant, bob the customer
    token = issue(mining, alice, "LOYAL", supply=10_000, mintable=False)
    paid = purchase(mining, bob, alice.primary_pkh(), 3 * COIN)
    lines = plan_rewards(alice, mining.client, token, "1.5", "purchases", 0)
    bobs = {SPEC.address(p) for p in bob.pubkey_hashes()}
    assert [(line.customer in bobs, line.units, line.refs, line.basis) for line in lines] == [
        (True, 450, (paid,), 3 * COIN)]
    mined(mining, alice, reward(alice, mining.client, alice.unlock(PASS), token, lines,
                                "purchases"))
    assert token_units(mining, bob, token["asset"]) == 450
    # Rewarded once: nobody left to reward.
    assert plan_rewards(alice, mining.client, token, "1.5", "purchases", 0) == []
    with pytest.raises(O2OError, match="nobody to reward"):
        reward(alice, mining.client, alice.unlock(PASS), token, [], "purchases")
