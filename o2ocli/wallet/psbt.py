"""Partially signed transactions: the file a payment travels in between its
signers (format ``o2o-psbt`` version 1, JSON; described in ``docs/psbt.rst``).

A :class:`Psbt` holds the unsigned transaction, for every input the previous
transaction and the coin it spends (so a signer needs no node and can check
the coin against the txid it is named by), the key set of the paying wallet
(``m`` and account xpubs, with the derivation path of each input key and of
each change output) and the signatures collected so far.

:func:`parse` checks everything a file can prove on its own and raises
:class:`PsbtError` with a one-line reason: the format and version, the coin
data against the previous transactions, each key against its path, each
change output against the key set, and every signature against the sighash.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from o2ocli.chainspec import ChainSpec
from o2ocli.core.encoding import DecodeError, Reader, Writer
from o2ocli.core.locks import Multisig, PayToAddress, decode_lock, encode_lock
from o2ocli.core.tx import NATIVE_ASSET, SigPair, Tx, TxOut
from o2ocli.crypto.hashes import hash160
from o2ocli.crypto.keys import InvalidKeyError, PrivateKey, PublicKey

from .hd import ExtendedKey
from .multisig import derive_lock, lock_address, parse_xpubs

__all__ = [
    "FORMAT",
    "VERSION",
    "PsbtError",
    "KeyPath",
    "PsbtInput",
    "Psbt",
    "parse",
    "combine",
    "finalize",
    "sign",
    "summary",
]

FORMAT = "o2o-psbt"
VERSION = 1


class PsbtError(ValueError):
    """A file that is not a valid partially signed transaction (one-line reason)."""


@dataclass(frozen=True)
class KeyPath:
    """A key that may sign an input: its pubkey and where it comes from."""

    pubkey: bytes
    xpub: int
    """Index into :attr:`Psbt.xpubs`."""
    path: tuple[int, int]
    """(key-chain, index) below that account."""


@dataclass
class PsbtInput:
    """One input: the transaction it spends, the coin, keys and signatures."""

    prev_tx: Tx
    coin: TxOut
    keys: list[KeyPath] = field(default_factory=list)
    signatures: dict[bytes, bytes] = field(default_factory=dict)
    """pubkey → 64-byte signature over the tx's sighash."""


@dataclass
class Psbt:
    """A partially signed transaction."""

    chain_id: str
    tx: Tx
    """The transaction with empty witnesses."""
    inputs: list[PsbtInput]
    m: int
    xpubs: list[str]
    change: dict[int, tuple[int, int]] = field(default_factory=dict)
    """Output index → (key-chain, index) of the paying wallet's change."""

    def to_json(self) -> dict[str, Any]:
        """The file's JSON document."""
        def coin(out: TxOut) -> dict[str, Any]:
            w = Writer()
            encode_lock(out.lock, w)
            return {"asset": out.asset.hex(), "amount": out.amount, "lock": w.getvalue().hex()}

        return {
            "format": FORMAT,
            "version": VERSION,
            "chain_id": self.chain_id,
            "txid": self.tx.txid.hex(),
            "tx": self.tx.to_bytes().hex(),
            "m": self.m,
            "xpubs": list(self.xpubs),
            "inputs": [
                {
                    "prev_tx": i.prev_tx.to_bytes().hex(),
                    "coin": coin(i.coin),
                    "keys": [{"pubkey": k.pubkey.hex(), "xpub": k.xpub, "path": list(k.path)}
                             for k in i.keys],
                    "signatures": {p.hex(): s.hex() for p, s in sorted(i.signatures.items())},
                }
                for i in self.inputs
            ],
            "change": [{"output": j, "path": list(p)} for j, p in sorted(self.change.items())],
        }

    def dumps(self) -> str:
        """The file's text."""
        return json.dumps(self.to_json(), indent=1) + "\n"

    @property
    def sighash(self) -> bytes:
        return self.tx.sighash(self.chain_id)


def _hex(value: Any, what: str, size: int | None = None) -> bytes:
    if not isinstance(value, str):
        raise PsbtError(f"{what} must be a hex string")
    try:
        data = bytes.fromhex(value)
    except ValueError:
        raise PsbtError(f"{what} is not hex") from None
    if size is not None and len(data) != size:
        raise PsbtError(f"{what} must be {size} bytes")
    return data


def _int(value: Any, what: str, lo: int = 0, hi: int = 2**64 - 1) -> int:
    if type(value) is not int or not lo <= value <= hi:
        raise PsbtError(f"{what} must be an integer in {lo}..{hi}")
    return value


def _path(value: Any, what: str) -> tuple[int, int]:
    if not isinstance(value, list) or len(value) != 2:
        raise PsbtError(f"{what} must be [chain, index]")
    return _int(value[0], what, 0, 2**31 - 1), _int(value[1], what, 0, 2**31 - 1)


def _coin(data: Any, where: str) -> TxOut:
    if not isinstance(data, dict):
        raise PsbtError(f"{where}: coin must be an object")
    try:
        r = Reader(_hex(data.get("lock"), f"{where} coin lock"))
        lock = decode_lock(r)
        r.finish("lock")
        return TxOut(_hex(data.get("asset"), f"{where} coin asset", 32),
                     _int(data.get("amount"), f"{where} coin amount"), lock)
    except (DecodeError, ValueError) as exc:
        if isinstance(exc, PsbtError):
            raise
        raise PsbtError(f"{where}: bad coin: {exc}") from None


def _tx(value: Any, what: str) -> Tx:
    try:
        return Tx.from_bytes(_hex(value, what))
    except PsbtError:
        raise
    except ValueError as exc:  # DecodeError, and values a constructor refuses
        raise PsbtError(f"{what} does not decode: {exc}") from None


def parse(text: str | bytes) -> Psbt:
    """Read and check a file's text (see the module docstring)."""
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        raise PsbtError("not a partially signed transaction file (expected JSON)") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise PsbtError(f"not a partially signed transaction file (no \"format\": \"{FORMAT}\")")
    if doc.get("version") != VERSION:
        raise PsbtError(f"unsupported {FORMAT} version {doc.get('version')!r} "
                        f"(this o2ocli reads version {VERSION})")
    chain_id = doc.get("chain_id")
    if not isinstance(chain_id, str) or not chain_id:
        raise PsbtError("chain_id must be a non-empty string")
    tx = _tx(doc.get("tx"), "tx")
    if any(txin.witness for txin in tx.inputs):
        raise PsbtError("tx must be unsigned (signatures go in the inputs' \"signatures\")")
    if doc.get("txid") != tx.txid.hex():
        raise PsbtError("txid does not match the tx")
    m = _int(doc.get("m"), "m", 1, 15)
    xpub_texts = doc.get("xpubs")
    if not isinstance(xpub_texts, list) or not all(isinstance(x, str) for x in xpub_texts):
        raise PsbtError("xpubs must be a list of strings")
    if len(xpub_texts) > 15 or (xpub_texts and m > len(xpub_texts)):
        raise PsbtError(f"m = {m} does not fit {len(xpub_texts)} xpubs (at most 15)")
    try:
        xpubs = parse_xpubs(xpub_texts)
    except ValueError as exc:
        raise PsbtError(str(exc)) from None
    raw_inputs = doc.get("inputs")
    if not isinstance(raw_inputs, list) or len(raw_inputs) != len(tx.inputs):
        raise PsbtError("inputs must list one entry per input of the tx")
    psbt = Psbt(chain_id, tx, [], m, xpub_texts)
    digest = psbt.sighash
    for n, (txin, item) in enumerate(zip(tx.inputs, raw_inputs, strict=True)):
        psbt.inputs.append(_parse_input(n, txin.prevout, item, xpubs, digest))
    raw_change = doc.get("change", [])
    if not isinstance(raw_change, list):
        raise PsbtError("change must be a list")
    for entry in raw_change:
        if not isinstance(entry, dict):
            raise PsbtError("change entries must be objects")
        j = _int(entry.get("output"), "change output", 0, len(tx.outputs) - 1)
        path = _path(entry.get("path"), "change path")
        if not xpubs or derive_lock(xpubs, m, *path) != tx.outputs[j].lock:
            raise PsbtError(f"output {j} is marked as change but does not pay the "
                            "wallet's own keys")
        psbt.change[j] = path
    return psbt


def _parse_input(n: int, prevout: Any, item: Any, xpubs: list[ExtendedKey],
                 digest: bytes) -> PsbtInput:
    where = f"input {n}"
    if not isinstance(item, dict):
        raise PsbtError(f"{where} must be an object")
    prev = _tx(item.get("prev_tx"), f"{where} prev_tx")
    if prev.txid != prevout.txid:
        raise PsbtError(f"{where}: prev_tx is not the transaction the input spends")
    if prevout.index >= len(prev.outputs):
        raise PsbtError(f"{where}: prev_tx has no output {prevout.index}")
    coin = _coin(item.get("coin"), where)
    if coin != prev.outputs[prevout.index]:
        raise PsbtError(f"{where}: coin data does not match the output it spends")
    if not isinstance(coin.lock, PayToAddress | Multisig):
        raise PsbtError(f"{where}: coins under a {type(coin.lock).__name__} lock are not "
                        "supported here")
    members = set(coin.lock.addresses())
    keys = []
    raw_keys = item.get("keys", [])
    if not isinstance(raw_keys, list):
        raise PsbtError(f"{where}: keys must be a list")
    for entry in raw_keys:
        if not isinstance(entry, dict):
            raise PsbtError(f"{where}: key entries must be objects")
        pubkey = _hex(entry.get("pubkey"), f"{where} key", 33)
        k = _int(entry.get("xpub"), f"{where} key xpub", 0, max(len(xpubs) - 1, 0))
        path = _path(entry.get("path"), f"{where} key path")
        if not xpubs or xpubs[k].derive(path[0]).derive(path[1]).pubkey != pubkey:
            raise PsbtError(f"{where}: a key does not match its derivation path")
        if hash160(pubkey) not in members:
            raise PsbtError(f"{where}: a listed key cannot sign the coin's lock")
        keys.append(KeyPath(pubkey, k, path))
    sigs = item.get("signatures", {})
    if not isinstance(sigs, dict):
        raise PsbtError(f"{where}: signatures must be an object")
    signatures = {}
    for pub_hex, sig_hex in sigs.items():
        pubkey = _hex(pub_hex, f"{where} signature key", 33)
        signature = _hex(sig_hex, f"{where} signature", 64)
        if hash160(pubkey) not in members:
            raise PsbtError(f"{where}: a signature is from a key that cannot sign the coin")
        try:
            valid = PublicKey(pubkey).verify(signature, digest)
        except InvalidKeyError:
            valid = False
        if not valid:
            raise PsbtError(f"{where}: bad signature (the file was altered after signing, "
                            "or is for another chain)")
        signatures[pubkey] = signature
    return PsbtInput(prev, coin, keys, signatures)


def combine(psbts: list[Psbt]) -> Psbt:
    """One file with the signatures of all ``psbts`` (the same tx on the same chain)."""
    if not psbts:
        raise PsbtError("nothing to combine")
    first = psbts[0]
    for other in psbts[1:]:
        if other.chain_id != first.chain_id:
            raise PsbtError(f"files are for different chains ({first.chain_id!r} and "
                            f"{other.chain_id!r})")
        if other.tx.txid != first.tx.txid:
            raise PsbtError(f"files are for different transactions ({first.tx.txid.hex()[:16]}… "
                            f"and {other.tx.txid.hex()[:16]}…)")
        if (other.m, other.xpubs, other.change) != (first.m, first.xpubs, first.change):
            raise PsbtError("files of the same transaction list different key sets or change")
    merged = Psbt(first.chain_id, first.tx, [], first.m, list(first.xpubs), dict(first.change))
    for n, item in enumerate(first.inputs):
        sigs: dict[bytes, bytes] = {}
        keys = list(item.keys)
        for p in psbts:
            sigs.update(p.inputs[n].signatures)
            keys += [k for k in p.inputs[n].keys if k not in keys]
        merged.inputs.append(PsbtInput(item.prev_tx, item.coin, keys, sigs))
    return merged


def sign(psbt: Psbt, account: ExtendedKey | None,
         key_for: Callable[[bytes], PrivateKey | None]) -> int:
    """Add the signatures this signer can make; returns how many it added.

    ``account`` is the signer's private account key: it signs every listed key
    derived from its own xpub.  ``key_for(pubkey_hash)`` gives a key for a
    pay-to-address coin the signer holds otherwise (imported keys), or None.
    """
    digest = psbt.sighash
    own = account.neuter().serialize(private=False) if account is not None else None
    added = 0
    for item in psbt.inputs:
        keys: list[PrivateKey] = []
        for entry in item.keys:
            if own is not None and psbt.xpubs[entry.xpub] == own:
                child = account.derive(entry.path[0]).derive(entry.path[1])  # type: ignore[union-attr]
                if child.key is not None and child.pubkey == entry.pubkey:
                    keys.append(child.key)
        if not keys and isinstance(item.coin.lock, PayToAddress):
            key = key_for(item.coin.lock.pubkey_hash)
            if key is not None:
                keys.append(key)
        for key in keys:
            pubkey = key.public_key.to_bytes()
            if pubkey not in item.signatures:
                item.signatures[pubkey] = key.sign(digest)
                added += 1
    return added


def finalize(psbt: Psbt, spec: ChainSpec) -> Tx:
    """The signed transaction; PsbtError naming the inputs that lack signatures."""
    witnesses = []
    missing = []
    for n, item in enumerate(psbt.inputs):
        lock = item.coin.lock
        by_hash = {hash160(p): (p, s) for p, s in item.signatures.items()}
        if isinstance(lock, PayToAddress):
            need, order = 1, [lock.pubkey_hash]
        else:
            assert isinstance(lock, Multisig)
            need, order = lock.m, list(lock.pubkey_hashes)
        have = [by_hash[h] for h in order if h in by_hash]
        if len(have) < need:
            others = [spec.address(h) for h in order if h not in by_hash]
            missing.append(f"input {n} has {len(have)} of {need} signatures (can sign: "
                           f"{', '.join(others)})")
            continue
        witnesses.append(tuple(SigPair(p, s) for p, s in have[:need]))
    if missing:
        raise PsbtError("not enough signatures: " + "; ".join(missing))
    return psbt.tx.with_witnesses(witnesses)


def summary(psbt: Psbt, spec: ChainSpec, own_xpub: str | None = None) -> dict[str, Any]:
    """What a signer signs: recipients, per-asset amounts, the fee (from the
    coins), change and the chain.  Amounts are base units.  With ``own_xpub``
    (the signer's), outputs count as change only if the file's key set
    includes that xpub: otherwise they are listed as recipients."""
    trusted = own_xpub is None or own_xpub in psbt.xpubs
    recipients = []
    change = []
    for j, out in enumerate(psbt.tx.outputs):
        entry = {"address": lock_address(spec, out.lock), "asset": out.asset.hex(),
                 "units": out.amount}
        (change if j in psbt.change and trusted else recipients).append(entry)
    totals_in: dict[bytes, int] = {}
    for item in psbt.inputs:
        totals_in[item.coin.asset] = totals_in.get(item.coin.asset, 0) + item.coin.amount
    totals_out: dict[bytes, int] = {}
    for out in psbt.tx.outputs:
        totals_out[out.asset] = totals_out.get(out.asset, 0) + out.amount
    fee = totals_in.get(NATIVE_ASSET, 0) - totals_out.get(NATIVE_ASSET, 0)
    return {"chain_id": psbt.chain_id, "txid": psbt.tx.txid.hex(), "recipients": recipients,
            "change": change, "fee_units": fee, "m": psbt.m, "n": len(psbt.xpubs),
            "signatures": [len(i.signatures) for i in psbt.inputs],
            "needed": [i.coin.lock.m if isinstance(i.coin.lock, Multisig) else 1
                       for i in psbt.inputs]}

