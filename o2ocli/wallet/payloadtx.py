"""Building, signing and sending a transaction that carries an O2O payload.

The shared plumbing of the wallet's O2O features (:mod:`.tokens`,
:mod:`.reviews`, :mod:`.records`, :mod:`.escrow`): payload text checks with
the consensus rule's own limits, token look-ups on the node, and
:func:`build` / :func:`send`.  Like :mod:`.service`, every function takes an
open wallet and an RPC client; transactions are built with
:func:`~o2ocli.wallet.builder.plan_payment`, signed locally and only then
broadcast.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from o2ocli.consensus.errors import TxInvalid
from o2ocli.consensus.fields import TextField
from o2ocli.consensus.fields import check_text as text_rule
from o2ocli.core.payloads import Payload
from o2ocli.core.tx import Tx, TxOut
from o2ocli.rpc import errors as E
from o2ocli.rpc.errors import RpcError

from .builder import DEFAULT_MAX_INPUTS, PaymentPlan, Spendable, plan_payment
from .errors import O2OError
from .service import record_change, sync, wallet_coins
from .wallet import Unlocked, Wallet

__all__ = [
    "asset_names",
    "build",
    "check_field",
    "check_text",
    "fee_rate",
    "get_token",
    "send",
    "signing_pubkey",
]


def check_field(text: str, spec: TextField, what: str | None = None) -> bytes:
    """``text`` as UTF-8 if the consensus text rule for the payload field
    ``spec`` accepts it (length, no control characters, line separators or
    bidi marks), else O2OError.  ``what`` names the field in the message."""
    what = what or spec.what
    try:
        data = text.encode("utf-8", errors="strict")
    except UnicodeEncodeError:
        raise O2OError(f"{what} is not valid UTF-8") from None
    try:
        text_rule(data, spec, what)
    except TxInvalid as exc:
        hint = " (newlines, tabs and direction marks are not allowed)" \
            if exc.reason == spec.bad_control else ""
        raise O2OError(exc.message + hint) from None
    return data


def check_text(text: str, what: str, limit: int, *, allow_empty: bool) -> bytes:
    """:func:`check_field` for a text of at most ``limit`` bytes named ``what``."""
    spec = TextField(what, limit, allow_empty, "text-length", "text-utf8", "text-control")
    return check_field(text, spec)


def get_token(client: Any, ref: str) -> dict[str, Any]:
    """The node's view of token ``ref`` (symbol or asset id); O2OError if unknown."""
    try:
        return client.call("gettoken", ref)
    except RpcError as exc:
        if exc.code in (E.NOT_FOUND, E.INVALID_PARAMS):
            raise O2OError(exc.message) from None
        raise


def asset_names(client: Any) -> dict[bytes, tuple[str, int]]:
    """Asset id → (display symbol, decimals) for every token and its authority."""
    names: dict[bytes, tuple[str, int]] = {}
    for token in client.call("listtokens"):
        names[bytes.fromhex(token["asset"])] = (token["symbol"], token["decimals"])
        names[bytes.fromhex(token["authority_asset"])] = (token["symbol"] + "!", 0)
    return names


def fee_rate(wallet: Wallet, client: Any) -> int:
    """The fee rate to pay (per 1000 bytes): the wallet's policy, else the node's
    minimum relay fee rate (:func:`o2ocli.wallet.fees.fee_rate`)."""
    from .fees import fee_rate as chosen_rate

    return chosen_rate(wallet, client)


def build(
    wallet: Wallet,
    client: Any,
    unlocked: Unlocked,
    outputs: Sequence[TxOut],
    *,
    payload: Payload,
    required: Sequence[Spendable] = (),
    created: dict[bytes, int] | None = None,
    burned: dict[bytes, int] | None = None,
    coins: Sequence[Spendable] | None = None,
    fixed_fee: int | None = None,
    max_inputs: int = DEFAULT_MAX_INPUTS,
) -> tuple[Tx, PaymentPlan]:
    """Plan, then sign, a transaction with ``payload`` (nothing is sent)."""
    if coins is None:
        sync(wallet, client)
        coins = wallet_coins(wallet, client)
    plan = plan_payment(
        coins,
        outputs,
        wallet.peek_change(),
        fee_rate=fee_rate(wallet, client),
        fixed_fee=fixed_fee,
        max_inputs=max_inputs,
        payload=payload,
        required=required,
        created=created,
        burned=burned,
    )
    return wallet.sign(plan.tx, [c.owner for c in plan.spent], unlocked), plan


def send(wallet: Wallet, client: Any, tx: Tx, plan: PaymentPlan) -> str:
    """Broadcast a signed tx (once the wallet's policy approves it) and record its
    change address; returns the txid."""
    from .fees import approve

    approve(wallet, tx, plan)
    txid = client.call("sendrawtx", tx.to_bytes().hex())
    record_change(wallet, plan)
    return txid


def signing_pubkey(wallet: Wallet, pkh: bytes, unlocked: Unlocked) -> bytes:
    """The public key of the wallet's address ``pkh`` (it signs a payload)."""
    return wallet.key_for(pkh, unlocked).public_key.to_bytes()
