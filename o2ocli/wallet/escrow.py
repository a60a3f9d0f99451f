"""Wallet side of escrow service contracts (see :mod:`o2ocli.consensus.escrow`).

The payer opens an escrow output naming payees with shares, an optional
arbiter and a timeout height; then one path settles it: the payer releases
(shares paid), a payee refunds (or the payer reclaims after the timeout), or
the arbiter and one party send it where the arbiter rules.  A dispute needs two
signatures; when one wallet does not hold both keys, the first signer prints a
partially signed transaction that the second completes with ``--cosign``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from o2ocli.core.locks import BPS_TOTAL, Escrow, PayToAddress
from o2ocli.core.payloads import NO_PAYLOAD
from o2ocli.core.tx import NATIVE_ASSET, Outpoint, SigPair, Tx, TxIn, TxOut
from o2ocli.rpc import errors as E
from o2ocli.rpc.errors import RpcError

from .builder import Spendable, plan_payment
from .errors import O2OError
from .payloadtx import build
from .service import sync, wallet_coins
from .wallet import Unlocked, Wallet

__all__ = [
    "parse_escrow_id",
    "get_escrow",
    "escrow_lock",
    "open_escrow",
    "release",
    "refund",
    "dispute",
    "cosign",
    "describe_ruling",
]

_DUMMY = SigPair(b"\x02" + bytes(32), bytes(64))


def parse_escrow_id(text: str) -> Outpoint:
    """``TXID:INDEX`` (or a bare TXID, meaning output 0) → outpoint."""
    txid, _, index = text.partition(":")
    try:
        raw = bytes.fromhex(txid)
    except ValueError:
        raw = b""
    if len(raw) != 32 or (index and not (index.isascii() and index.isdigit())):
        raise O2OError(f"invalid escrow id {text!r}: use TXID:INDEX")
    return Outpoint(raw, int(index or 0))


def get_escrow(client: Any, outpoint: Outpoint) -> dict[str, Any]:
    """The node's view of an escrow; O2OError if there is none."""
    try:
        return client.call("getescrow", f"{outpoint.txid.hex()}:{outpoint.index}")
    except RpcError as exc:
        if exc.code in (E.NOT_FOUND, E.INVALID_PARAMS):
            raise O2OError(exc.message) from None
        raise


def escrow_lock(wallet: Wallet, info: dict[str, Any]) -> Escrow:
    """The lock of an escrow from its JSON view."""
    decode = wallet.spec.decode_address
    return Escrow(
        decode(info["payer"]),
        tuple((decode(p["address"]), p["bps"]) for p in info["payees"]),
        decode(info["arbiter"]) if info["arbiter"] else None,
        info["timeout"],
    )


def _fee_rate(wallet: Wallet, client: Any) -> int:
    from .fees import fee_rate

    return fee_rate(wallet, client)


def _require_open(info: dict[str, Any]) -> None:
    if info["settlement"] is not None:
        raise O2OError(f"escrow {info['escrow']} is already {info['state']} "
                       f"(by {info['settlement']['txid']})")
    if info["pending_spend"]:
        raise O2OError(f"escrow {info['escrow']} is already being settled by mempool tx "
                       f"{info['pending_spend']}")


def open_escrow(
    wallet: Wallet,
    client: Any,
    unlocked: Unlocked,
    payees: Sequence[tuple[bytes, int]],
    units: int,
    asset: bytes,
    arbiter: bytes | None,
    timeout: int,
) -> tuple[Tx, Any]:
    """A signed tx whose output 0 escrows ``units`` of ``asset`` with this
    wallet's receive address as the payer."""
    payer = wallet.spec.decode_address(wallet.receive_address())
    try:
        lock = Escrow(payer, tuple(payees), arbiter, timeout)
    except ValueError as exc:
        raise O2OError(f"invalid escrow: {exc}") from None
    if asset == NATIVE_ASSET:
        # Release and refund may take the fee from the escrow, up to 1% of it:
        # refuse an escrow too small for that (it could never be released).
        fee = _settle_fee(_fee_rate(wallet, client), len(payees), 1)
        if units < 100 * fee:
            minimum = wallet.spec.format(100 * fee)
            raise O2OError(f"an escrow must hold at least {minimum} {wallet.spec.native_symbol} "
                           "(its release fee may take at most 1% of it)")
    return build(wallet, client, unlocked, [TxOut(asset, units, lock)], payload=NO_PAYLOAD)


def _escrow_coin(info: dict[str, Any], lock: Escrow, owner: bytes) -> Spendable:
    return Spendable(
        Outpoint(bytes.fromhex(info["txid"]), info["index"]),
        TxOut(bytes.fromhex(info["asset_id"]), info["units"], lock),
        True,
        owner,
    )


def _sign(wallet: Wallet, tx: Tx, signers: Sequence[Sequence[bytes]], unlocked: Unlocked,
          keep: Sequence[Sequence[SigPair]] | None = None) -> Tx:
    """Witness of input ``i``: ``keep[i]`` then a signature by each of ``signers[i]``."""
    digest = tx.sighash(wallet.spec.chain_id)
    witnesses = []
    for i, pkhs in enumerate(signers):
        pairs = list(keep[i]) if keep else []
        for pkh in pkhs:
            pairs.append(SigPair(*wallet.sign_digest(pkh, digest, unlocked)))
        witnesses.append(tuple(pairs))
    return tx.with_witnesses(witnesses)


def _settle_fee(fee_rate: int, n_outputs: int, n_sigs: int) -> int:
    """Fee of a tx spending one escrow input to ``n_outputs`` plain addresses."""
    placeholder = tuple(TxOut(NATIVE_ASSET, 1, PayToAddress(bytes(20))) for _ in range(n_outputs))
    probe = Tx((TxIn(Outpoint(bytes(32), 0), (_DUMMY,) * n_sigs),), placeholder, 1)
    return -(-fee_rate * (probe.size + 8 * n_outputs) // 1000)


def _single_input_tx(wallet: Wallet, client: Any, coin: Spendable,
                     pay: list[tuple[bytes, int]], lock_height: int, n_sigs: int,
                     capped: bool = True) -> tuple[Tx, int]:
    """An unsigned native-coin tx spending only ``coin``: ``pay`` as (pkh, share
    in basis points of the amount after the fee); returns it and its fee.
    ``capped``: the path's rule lets the fee take at most 1% (release, refund)."""
    amount = coin.output.amount
    fee = _settle_fee(_fee_rate(wallet, client), len(pay), n_sigs)
    if capped and fee > amount // 100:
        raise O2OError("the escrow is too small to pay the network fee from it "
                       "(the fee may take at most 1% of a native-coin escrow)")
    if fee >= amount:
        raise O2OError("the escrow is too small to pay the network fee")
    base = amount - fee
    shares = [base * bps // BPS_TOTAL for _, bps in pay]
    shares[0] += base - sum(shares)
    outputs = tuple(TxOut(NATIVE_ASSET, s, PayToAddress(p))
                    for (p, _), s in zip(pay, shares, strict=True) if s > 0)
    return Tx((TxIn(coin.outpoint),), outputs, lock_height), fee


def _settle(wallet: Wallet, client: Any, unlocked: Unlocked, coin: Spendable,
            pay: list[tuple[bytes, int]], escrow_signers: list[bytes],
            lock_height: int = 0, complete: bool = True, capped: bool = True,
            ) -> Tx:
    """Build and sign a tx paying ``pay`` (pkh, bps) out of the escrow ``coin``."""
    if coin.output.asset == NATIVE_ASSET:
        tx, _ = _single_input_tx(wallet, client, coin, pay, lock_height,
                                 2 if not complete else len(escrow_signers), capped)
        return _sign(wallet, tx, [escrow_signers], unlocked)
    # A token escrow: the shares are of the whole amount; the fee is native coin
    # from this wallet.
    amount = coin.output.amount
    shares = [amount * bps // BPS_TOTAL for _, bps in pay]
    shares[0] += amount - sum(shares)
    outputs = [TxOut(coin.output.asset, s, PayToAddress(p))
               for (p, _), s in zip(pay, shares, strict=True) if s > 0]
    sync(wallet, client)
    plan = plan_payment(wallet_coins(wallet, client), outputs, wallet.peek_change(),
                        fee_rate=_fee_rate(wallet, client), required=[coin])
    tx = Tx(plan.tx.inputs, plan.tx.outputs, lock_height, plan.tx.payload)
    signers = [escrow_signers if c.outpoint == coin.outpoint else [c.owner] for c in plan.spent]
    return _sign(wallet, tx, signers, unlocked)


def release(wallet: Wallet, client: Any, unlocked: Unlocked, outpoint: Outpoint) -> Tx:
    """The payer confirms the service: each payee gets its share."""
    info = get_escrow(client, outpoint)
    _require_open(info)
    lock = escrow_lock(wallet, info)
    if not wallet.owns(lock.payer):
        raise O2OError(f"only the payer ({info['payer']}) can release this escrow")
    coin = _escrow_coin(info, lock, lock.payer)
    return _settle(wallet, client, unlocked, coin, list(lock.payees), [lock.payer])


def refund(wallet: Wallet, client: Any, unlocked: Unlocked, outpoint: Outpoint,
           height: int) -> tuple[Tx, str]:
    """A payee returns everything to the payer; or, from the timeout height on,
    the payer takes it back.  ``height`` is the chain tip.  Returns (tx, path)."""
    info = get_escrow(client, outpoint)
    _require_open(info)
    lock = escrow_lock(wallet, info)
    payee = next((p for p, _ in lock.payees if wallet.owns(p)), None)
    to_payer = [(lock.payer, BPS_TOTAL)]
    if payee is not None:
        coin = _escrow_coin(info, lock, payee)
        return _settle(wallet, client, unlocked, coin, to_payer, [payee]), "refund"
    if wallet.owns(lock.payer):
        if height + 1 < lock.timeout:
            raise O2OError(
                f"the payer can take the money back only from height {lock.timeout} "
                f"(the chain is at {height}); before that, release it or ask a payee to refund"
            )
        coin = _escrow_coin(info, lock, lock.payer)
        tx = _settle(wallet, client, unlocked, coin, to_payer, [lock.payer],
                     lock_height=lock.timeout, capped=False)
        return tx, "reclaim"
    raise O2OError("this wallet is neither a payee nor the payer of the escrow")


def dispute(wallet: Wallet, client: Any, unlocked: Unlocked, outpoint: Outpoint,
            pay: list[tuple[bytes, int]]) -> tuple[Tx, bool]:
    """The arbiter's ruling: ``pay`` (pkh, bps) of the escrow.  Signs with every
    party key this wallet holds (the arbiter and/or one party); returns (tx,
    complete) — an incomplete tx goes to the other signer for :func:`cosign`."""
    info = get_escrow(client, outpoint)
    _require_open(info)
    lock = escrow_lock(wallet, info)
    if lock.arbiter is None:
        raise O2OError("this escrow has no arbiter: it cannot be disputed")
    mine = [p for p in lock.addresses() if wallet.owns(p)]
    if not mine:
        raise O2OError("this wallet is not a party of the escrow")
    signers = [lock.arbiter] if lock.arbiter in mine else []
    others = [p for p in mine if p != lock.arbiter]
    if others:
        signers.append(others[0])
    signers = signers[:2]
    complete = len(signers) == 2 and lock.arbiter in signers
    coin = _escrow_coin(info, lock, signers[0])
    tx = _settle(wallet, client, unlocked, coin, pay, signers, complete=complete,
                 capped=False)
    return tx, complete


def describe_ruling(wallet: Wallet, client: Any, raw: str) -> str:
    """Who a partially signed ruling pays, for the co-signer to read first."""
    try:
        tx = Tx.from_bytes(bytes.fromhex(raw))
    except ValueError as exc:
        raise O2OError(f"not a transaction: {exc}") from None
    names: dict[bytes, tuple[str, int]] = {NATIVE_ASSET: (wallet.spec.native_symbol,
                                                          wallet.spec.native_decimals)}
    from o2ocli.amounts import format_amount

    from .payloadtx import asset_names

    if any(o.asset != NATIVE_ASSET for o in tx.outputs):
        names.update(asset_names(client))
    parts = []
    for out in tx.outputs:
        symbol, decimals = names.get(out.asset, (out.asset.hex()[:16] + "…", 0))
        who = out.lock.addresses()
        target = wallet.spec.address(who[0]) if len(who) == 1 else "a contract"
        parts.append(f"{format_amount(out.amount, decimals)} {symbol} to {target}")
    return ", ".join(parts) or "nothing"


def cosign(wallet: Wallet, client: Any, unlocked: Unlocked, raw: str) -> tuple[Tx, bool]:
    """Add this wallet's signature to a partially signed escrow dispute."""
    try:
        tx = Tx.from_bytes(bytes.fromhex(raw))
    except ValueError as exc:
        raise O2OError(f"not a transaction: {exc}") from None
    position = None
    for i, txin in enumerate(tx.inputs):
        try:
            info = client.call("getescrow", f"{txin.prevout.txid.hex()}:{txin.prevout.index}")
        except RpcError:
            continue
        position = i
        break
    if position is None:
        raise O2OError("the transaction spends no escrow")
    _require_open(info)
    lock = escrow_lock(wallet, info)
    present = {pair.pubkey for pair in tx.inputs[position].witness}
    from o2ocli.crypto.hashes import hash160

    signed = {hash160(p) for p in present}
    candidates = [p for p in lock.addresses() if wallet.owns(p) and p not in signed]
    if lock.arbiter is not None and lock.arbiter not in signed:
        candidates = [p for p in candidates if p == lock.arbiter]
    if not candidates:
        raise O2OError("this wallet holds no missing signature for that escrow")
    signers = [[] for _ in tx.inputs]
    signers[position] = [candidates[0]]
    keep = [list(t.witness) for t in tx.inputs]
    signed_tx = _sign(wallet, tx, signers, unlocked, keep=keep)
    return signed_tx, len(signed_tx.inputs[position].witness) == 2
