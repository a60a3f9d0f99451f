"""Multisig wallets: ``m``-of-``n`` addresses from ``n`` account xpubs, under the
existing :class:`~o2ocli.core.locks.Multisig` lock (no new consensus bytes).

* Address ``i`` of key-chain ``c`` is the lock ``Multisig.of(m, [HASH160 of
  xpub_k / c / i for each xpub k])``.  Receiving addresses use chain
  :data:`MS_RECEIVE` (3) and change :data:`MS_CHANGE` (4) of every account, so
  a cosigner's own single-key addresses (chains 0 to 2) never share a key with
  the multisig ones.
* A multisig address is written ``Base58Check(address_version ‖ lock bytes)``
  (tag ``02``, ``m``, ``n``, the hashes): chain-bound like a plain address and
  told apart from one by its length (a plain address holds 21 bytes, a
  multisig one at least 24).  ``wallet send --to`` accepts both.
* A multisig wallet is a wallet whose ``meta`` has ``"multisig": {"m": M,
  "xpubs": [...]}`` (the xpubs sorted, so every cosigner derives the same
  addresses); it keeps a copy of its own wallet's (encrypted) seed so it can
  sign its share.  Its address counters live in the note ``multisig``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from o2ocli.chainspec import ChainSpec
from o2ocli.core.encoding import DecodeError, Reader
from o2ocli.core.locks import Lock, Multisig, PayToAddress, decode_lock, lock_bytes
from o2ocli.core.tx import Outpoint, TxOut
from o2ocli.crypto.address import AddressError
from o2ocli.crypto.base58check import Base58Error, b58check_decode, b58check_encode

from .builder import Spendable
from .hd import ExtendedKey, HDError
from .hdpath import GAP_LIMIT

__all__ = [
    "MS_RECEIVE",
    "MS_CHANGE",
    "multisig_address",
    "parse_recipient",
    "lock_address",
    "derive_lock",
    "parse_xpubs",
    "is_multisig",
    "multisig_config",
    "receive_address",
    "next_change",
    "commit_change",
    "multisig_coins",
    "multisig_balances",
]

MS_RECEIVE = 3
"""Key-chain of multisig receiving addresses under every cosigner's account."""
MS_CHANGE = 4
"""Key-chain of multisig change addresses."""
_NOTE = "multisig"


def multisig_address(spec: ChainSpec, lock: Multisig) -> str:
    """The text form of a multisig lock on ``spec``'s chain."""
    return b58check_encode(bytes((spec.address_version,)) + lock_bytes(lock))


def parse_recipient(spec: ChainSpec, text: str) -> Lock:
    """A plain address as :class:`PayToAddress`, a multisig address as
    :class:`Multisig`; :class:`AddressError` (the plain address's) otherwise."""
    try:
        return PayToAddress(spec.decode_address(text))
    except AddressError as plain_error:
        try:
            payload = b58check_decode(text.strip())
        except (Base58Error, ValueError):
            raise plain_error from None
        if len(payload) < 4 or payload[1] != Multisig.TAG:
            raise plain_error from None
        if payload[0] != spec.address_version:
            raise AddressError("multisig address of another chain") from None
        try:
            r = Reader(payload[1:])
            lock = decode_lock(r)
            r.finish("multisig address")
        except DecodeError as exc:
            raise AddressError(f"bad multisig address: {exc}") from None
        return lock


def lock_address(spec: ChainSpec, lock: Lock) -> str:
    """Display text of an output's lock."""
    if isinstance(lock, PayToAddress):
        return spec.address(lock.pubkey_hash)
    if isinstance(lock, Multisig):
        return multisig_address(spec, lock)
    return type(lock).__name__.lower()


def derive_lock(xpubs: Sequence[ExtendedKey], m: int, chain: int, index: int) -> Lock:
    """The lock of address ``chain/index`` of a key set: pay-to-address for one
    key with ``m`` = 1, else ``m``-of-``n`` multisig."""
    hashes = [x.derive(chain).derive(index).pubkey_hash for x in xpubs]
    if len(hashes) == 1 and m == 1:
        return PayToAddress(hashes[0])
    return Multisig.of(m, hashes)


def parse_xpubs(texts: Sequence[str]) -> list[ExtendedKey]:
    """Account xpubs (depth 3, public); ValueError naming the bad one."""
    keys = []
    for text in texts:
        try:
            key = ExtendedKey.parse(text.strip())
        except HDError as exc:
            raise ValueError(f"bad xpub {text[:16]}…: {exc}") from None
        if key.key is not None or key.depth != 3:
            raise ValueError(f"{text[:16]}… is not an account xpub (use 'wallet export-xpub')")
        keys.append(key)
    return keys


def is_multisig(wallet: Any) -> bool:
    """True for a wallet made with ``wallet create --multisig``."""
    return "multisig" in wallet.meta


def multisig_config(wallet: Any) -> tuple[int, list[str]]:
    """(m, sorted xpubs) of a multisig wallet."""
    info = wallet.meta["multisig"]
    return int(info["m"]), list(info["xpubs"])


def _counters(wallet: Any) -> dict[str, int]:
    return wallet.get_note(_NOTE) or {"receive": 0, "change": 0}


def _keys(wallet: Any) -> tuple[int, list[ExtendedKey]]:
    m, xpubs = multisig_config(wallet)
    return m, parse_xpubs(xpubs)


def receive_address(wallet: Any, new: bool = False) -> str:
    """The current multisig receiving address, or the next one with ``new``."""
    counters = _counters(wallet)
    if new:
        counters["receive"] += 1
        wallet.put_note(_NOTE, counters)
    m, keys = _keys(wallet)
    lock = derive_lock(keys, m, MS_RECEIVE, counters["receive"])
    assert isinstance(lock, Multisig)
    return multisig_address(wallet.spec, lock)


def next_change(wallet: Any) -> tuple[Lock, int]:
    """(lock, index) of the change address the next payment uses."""
    m, keys = _keys(wallet)
    index = _counters(wallet)["change"]
    return derive_lock(keys, m, MS_CHANGE, index), index


def commit_change(wallet: Any) -> None:
    """Record that the change address of :func:`next_change` was handed out."""
    counters = _counters(wallet)
    counters["change"] += 1
    wallet.put_note(_NOTE, counters)


def _watched(wallet: Any) -> dict[Lock, tuple[int, int]]:
    m, keys = _keys(wallet)
    counters = _counters(wallet)
    locks = {}
    for chain, used in ((MS_RECEIVE, counters["receive"]), (MS_CHANGE, counters["change"])):
        for index in range(used + GAP_LIMIT):
            locks[derive_lock(keys, m, chain, index)] = (chain, index)
    return locks


def multisig_coins(wallet: Any, client: Any, include_spent: bool = True
                   ) -> list[tuple[Spendable, tuple[int, int], bool]]:
    """(coin, (chain, index), spent by a mempool tx) of every unspent output
    under one of the wallet's multisig addresses (gap limit on both chains)."""
    locks = _watched(wallet)
    spec = wallet.spec
    queries = sorted({spec.address(lock.pubkey_hashes[0]) for lock in locks
                      if isinstance(lock, Multisig)})
    items = client.call("listunspent", queries, True, include_spent)
    found = []
    seen = set()
    for item in items:
        data = item["lock"]
        if data["type"] != "multisig":
            continue
        lock = Multisig(data["m"], tuple(spec.decode_address(a) for a in data["addresses"]))
        path = locks.get(lock)
        outpoint = Outpoint(bytes.fromhex(item["txid"]), item["index"])
        if path is None or outpoint in seen:
            continue
        seen.add(outpoint)
        out = TxOut(bytes.fromhex(item["asset_id"]), item["units"], lock)
        coin = Spendable(outpoint, out, item["height"] is not None, bytes(20))
        found.append((coin, path, "spent_by" in item))
    return found


def multisig_balances(wallet: Any, client: Any) -> list[Any]:
    """Per-asset :class:`~o2ocli.wallet.service.Balance` of a multisig wallet."""
    from o2ocli.core.tx import NATIVE_ASSET

    from .service import Balance

    result = {NATIVE_ASSET: Balance(NATIVE_ASSET)}
    for coin, _path, spent in multisig_coins(wallet, client):
        entry = result.setdefault(coin.output.asset, Balance(coin.output.asset))
        if coin.confirmed:
            entry.confirmed += coin.output.amount
            if spent:
                entry.unconfirmed -= coin.output.amount
        elif not spent:
            entry.unconfirmed += coin.output.amount
    return sorted(result.values(), key=lambda b: (b.asset != NATIVE_ASSET, b.asset))
