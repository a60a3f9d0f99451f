"""Wallet side of governance: put a proposal to a vote, and vote on one.

The consensus rules (:mod:`o2ocli.consensus.gov`) are the final word; these
functions check the same things first, so a user gets a clear message before
anything is signed.  A vote's keys sign the vote together with the tx's
inputs, so the tx is planned first and the payload signed after.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from o2ocli.consensus import gov as rules
from o2ocli.core.payloads import (
    MAX_VOTE_KEYS,
    MAX_VOTE_OUTPOINTS,
    WEIGHT_CUSTOMERS,
    WEIGHT_TOKENS,
    GovProposal,
    GovVote,
    KeySig,
    vote_sig_digest,
)
from o2ocli.core.tx import NATIVE_ASSET, Outpoint, Tx
from o2ocli.rpc import errors as E
from o2ocli.rpc.errors import RpcError

from .builder import PaymentPlan, Spendable
from .errors import O2OError
from .payloadtx import build, check_field, get_token
from .service import sync, wallet_coins
from .wallet import Unlocked, Wallet

__all__ = ["propose", "vote", "get_proposal"]


def _asset(wallet: Wallet, client: Any, token: str) -> bytes:
    if token.upper() == wallet.spec.native_symbol.upper():
        return NATIVE_ASSET
    return bytes.fromhex(get_token(client, token)["asset"])


def propose(
    wallet: Wallet, client: Any, unlocked: Unlocked, *, title: str, text: str,
    options: Sequence[str], weight: str, token: str, merchant: bytes | None, voting_blocks: int,
) -> tuple[Tx, PaymentPlan]:
    """A proposal burning the chain's deposit (nothing is sent)."""
    if not rules.MIN_OPTIONS <= len(options) <= rules.MAX_OPTIONS:
        raise O2OError(f"a proposal needs {rules.MIN_OPTIONS} to {rules.MAX_OPTIONS} options, "
                       f"got {len(options)}")
    if not 1 <= voting_blocks <= rules.MAX_VOTING_BLOCKS:
        raise O2OError(f"voting blocks must be 1..{rules.MAX_VOTING_BLOCKS}")
    kind = WEIGHT_TOKENS if weight == "tokens" else WEIGHT_CUSTOMERS
    if (kind == WEIGHT_CUSTOMERS) != (merchant is not None):
        raise O2OError("--weight customers needs --merchant (and --weight tokens takes none)")
    payload = GovProposal(
        check_field(title, rules.TITLE), check_field(text, rules.TEXT),
        tuple(check_field(o, rules.OPTION, f"option {i + 1}") for i, o in enumerate(options)),
        kind, _asset(wallet, client, token) if kind == WEIGHT_TOKENS else NATIVE_ASSET,
        merchant, voting_blocks, wallet.spec.gov_deposit)
    sync(wallet, client)
    coins = wallet_coins(wallet, client)
    return build(wallet, client, unlocked, [], payload=payload, coins=coins,
                 required=_one_native(coins), burned={NATIVE_ASSET: wallet.spec.gov_deposit})


def get_proposal(client: Any, proposal: str) -> dict[str, Any]:
    """The node's view of a proposal; O2OError if there is none."""
    try:
        return client.call("getproposal", proposal)
    except RpcError as exc:
        if exc.code in (E.NOT_FOUND, E.INVALID_PARAMS):
            raise O2OError(f"{exc.message} (is it mined yet?)") from None
        raise


def _one_native(coins: Sequence[Spendable]) -> list[Spendable]:
    native = sorted((c for c in coins if c.output.asset == NATIVE_ASSET),
                    key=lambda c: (not c.confirmed, -c.output.amount))
    if not native:
        raise O2OError("the wallet has no coins to pay the fee")
    return native[:1]


def _token_ballot(wallet: Wallet, rights: dict[str, Any]) -> tuple[bytes, list[bytes], list[bytes],
                                                                   int]:
    """(voter, keys, wire outpoints, weight) for a tokens vote: the wallet's
    coins at the snapshot, under the voter whose ballot already counts some of
    them (the last vote replaces it), else the lowest owner key hash (stable)."""
    spec = wallet.spec
    coins = [(spec.decode_address(c["address"]),
              None if c["voter"] is None else spec.decode_address(c["voter"]), c)
             for c in rights["coins"]]
    holders = sorted({v for _, v, _ in coins if v is not None and wallet.owns(v)})
    owners = sorted({o for o, _, _ in coins})
    if not owners:
        raise O2OError("this wallet held none of the proposal's coins at its snapshot")
    voter = holders[0] if holders else owners[0]
    usable = [(o, c) for o, v, c in coins if v is None or v == voter]
    if not usable:
        raise O2OError("this wallet's coins already vote in another voter's ballot")
    usable.sort(key=lambda oc: -oc[1]["units"])
    keys = [voter]
    picked: list[bytes] = []
    weight = 0
    for owner, coin in usable:
        if len(picked) == MAX_VOTE_OUTPOINTS:
            break
        if owner not in keys:
            if len(keys) == MAX_VOTE_KEYS:
                continue
            keys.append(owner)
        txid, index = coin["outpoint"].split(":")
        op = Outpoint(bytes.fromhex(txid), int(index))
        picked.append(op.txid + op.index.to_bytes(4, "little"))
        weight += coin["units"]
    return voter, keys, picked, weight


def vote(
    wallet: Wallet, client: Any, unlocked: Unlocked, proposal: str, option: int
) -> tuple[Tx, PaymentPlan, dict[str, Any]]:
    """A signed vote for ``option`` (from 1); returns (tx, plan, what it votes with)."""
    p = get_proposal(client, proposal)
    if p["state"] != "open":
        raise O2OError(f"voting on this proposal ended at height {p['end_height']}")
    if not 1 <= option <= len(p["options"]):
        raise O2OError(f"option must be 1..{len(p['options'])}, got {option}")
    sync(wallet, client)
    addresses = [wallet.spec.address(pkh) for pkh in wallet.pubkey_hashes()]
    rights = client.call("listvoterights", proposal, addresses)
    pid = bytes.fromhex(proposal)
    if p["weight"] == "tokens":
        voter, keys, outpoints, weight = _token_ballot(wallet, rights)
        purchase = None
    else:
        buyers = sorted({(wallet.spec.decode_address(x["buyer"]), x["txid"])
                         for x in rights["purchases"]})
        if not buyers:
            raise O2OError("this wallet has no purchase from the merchant mined by the "
                           "proposal's snapshot: only its customers vote")
        voter, txid = buyers[0]
        keys, outpoints, weight, purchase = [voter], [], 1, bytes.fromhex(txid)
    pubkeys = [wallet.key_for(k, unlocked).public_key.to_bytes() for k in keys]
    unsigned = GovVote(pid, option, tuple(outpoints), purchase,
                       tuple(KeySig(pub, bytes(64)) for pub in pubkeys))
    coins = wallet_coins(wallet, client)
    _, plan = build(wallet, client, unlocked, [], payload=unsigned, coins=coins,
                    required=_one_native(coins))
    digest = vote_sig_digest(unsigned, wallet.spec.chain_id, plan.tx.wire_outpoints())
    signed = replace(unsigned, keys=tuple(
        KeySig(pub, wallet.sign_digest(k, digest, unlocked)[1])
        for k, pub in zip(keys, pubkeys, strict=True)))
    tx = Tx(plan.tx.inputs, plan.tx.outputs, plan.tx.lock_height, signed)
    info = {"voter": wallet.spec.address(voter), "weight": weight,
            "outpoints": len(outpoints), "purchase": None if purchase is None else purchase.hex()}
    return wallet.sign(tx, [c.owner for c in plan.spent], unlocked), plan, info
