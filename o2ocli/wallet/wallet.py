"""Wallets: an HD key tree (BIP39/BIP32) plus imported keys, in LevelDB.

Layout of ``DATADIR/wallets/NAME`` (its own LevelDB; keys are ASCII prefixes)::

    meta            JSON: name, chain_id, version, created, encrypted, hd,
                    receive_index, next_index {"0": n, "1": n, "2": n} (addresses handed
                    out per chain), derived {"0": n, "1": n} (addresses watched)
    seed            keystore blob (JSON) of the BIP39 mnemonic
    xpub            the account's extended public key (addresses are derived
                    without the passphrase)
    a<pubkeyhash>   JSON: {"chain": 0|1, "index": i} or {"imported": true}
    k<pubkeyhash>   keystore blob (JSON) of an imported private key

A wallet folder is mode 0700 and its files 0600 whatever the umask (``wallets`` too, when
this creates it); LevelDB's later files are covered by the folder's mode.

Creation is atomic: the wallet is built in a hidden temporary folder and
renamed into place only when complete, so a crash never leaves a half-made
wallet that looks valid.  Only one process may open a wallet (LevelDB lock).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import plyvel

from o2ocli.chainspec import ChainSpec
from o2ocli.core.locks import PayToAddress
from o2ocli.core.tx import SigPair, Tx
from o2ocli.crypto.keys import PrivateKey
from o2ocli.fsmodes import make_private_dir, private_umask, restrict_tree

from .bip39 import mnemonic_to_seed, validate_mnemonic
from .hd import ExtendedKey
from .hdpath import ACCOUNT_PATH, CHANGE, EXTERNAL, GAP_LIMIT, INVOICE, INVOICE_GAP_LIMIT
from .keystore import decrypt_secret, encrypt_secret, plain_secret

__all__ = [
    "Wallet",
    "WalletError",
    "WalletExists",
    "WalletLocked",
    "WalletNotFound",
    "Unlocked",
    "create_wallet",
    "list_wallets",
    "wallets_dir",
    "NAME_RE",
]

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
VERSION = 1


class WalletError(Exception):
    """A wallet operation failed; the message says why."""


class WalletNotFound(WalletError):
    """No wallet of that name."""


class WalletExists(WalletError):
    """A wallet of that name already exists."""


class WalletLocked(WalletError):
    """Another process has the wallet open."""


def wallets_dir(datadir: Path) -> Path:
    """Folder holding all wallets of a datadir."""
    return datadir / "wallets"


def list_wallets(datadir: Path) -> list[str]:
    """Names of the complete wallets in ``datadir`` (temporary folders excluded)."""
    folder = wallets_dir(datadir)
    if not folder.is_dir():
        return []
    return sorted(
        p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")
        and (p / "CURRENT").exists()
    )


def _check_name(name: str) -> None:
    if not NAME_RE.fullmatch(name):
        raise WalletError(
            f"invalid wallet name {name!r}: use 1-64 letters, digits, '-' or '_'"
        )


def create_wallet(
    datadir: Path,
    name: str,
    spec: ChainSpec,
    mnemonic: str | None,
    passphrase: str | None,
    *,
    imported: list[PrivateKey] | None = None,
    scrypt_n: int | None = None,
    xpub: str | None = None,
    copied_seed: tuple[bytes, bool] | None = None,
    extra_meta: dict[str, Any] | None = None,
) -> Wallet:
    """Create wallet ``name`` from ``mnemonic`` (validated), encrypted with
    ``passphrase`` (None = not encrypted), atomically.  Returns it open.

    With ``mnemonic`` None and ``xpub`` (an account ``xpub`` from
    :meth:`Wallet.export_xpub`) the wallet is *watch-only*: it derives the same
    receiving and change addresses, sees their coins and history, and holds no
    private key (it refuses to sign).  ``copied_seed`` (the seed blob of the
    wallet ``xpub`` came from, and whether it is encrypted) lets such a wallet
    sign with that wallet's keys (a multisig wallet); ``extra_meta`` is merged
    into the metadata."""
    _check_name(name)
    if (mnemonic is None) == (xpub is None):
        raise WalletError("give either a recovery phrase or an xpub")
    text = validate_mnemonic(mnemonic) if mnemonic is not None else None
    account_key = _parse_account_xpub(xpub) if xpub is not None else None
    final = wallets_dir(datadir) / name
    if final.exists():
        raise WalletExists(f"wallet {name!r} already exists")
    make_private_dir(final.parent)
    tmp = final.parent / f".{name}.tmp-{secrets.token_hex(4)}"
    kdf = {} if scrypt_n is None else {"n": scrypt_n}

    def protect(secret: bytes) -> dict[str, Any]:
        if passphrase is None:
            return plain_secret(secret)
        return encrypt_secret(secret, passphrase, **kdf)

    try:
        if text is not None:
            master = ExtendedKey.from_seed(mnemonic_to_seed(text))
            account = master.derive_path(ACCOUNT_PATH).neuter()
        else:
            assert account_key is not None
            account = account_key
        with private_umask():
            db = plyvel.DB(str(tmp), create_if_missing=True, error_if_exists=True)
        try:
            meta = {
                "name": name,
                "chain_id": spec.chain_id,
                "version": VERSION,
                "created": int(time.time()),
                "encrypted": (passphrase is not None and text is not None)
                or bool(copied_seed and copied_seed[1]),
                "hd": True,
                "watch_only": text is None and copied_seed is None,
                "receive_index": 0,
                "next_index": {str(EXTERNAL): 0, str(CHANGE): 0, str(INVOICE): 0},
                "derived": {str(EXTERNAL): 0, str(CHANGE): 0, str(INVOICE): 0},
                **(extra_meta or {}),
            }
            with db.write_batch(transaction=True, sync=True) as batch:
                if text is not None:
                    batch.put(b"seed", json.dumps(protect(text.encode())).encode())
                elif copied_seed is not None:
                    batch.put(b"seed", copied_seed[0])
                batch.put(b"xpub", account.serialize(private=False).encode())
                for key in imported or []:
                    pkh = key.public_key.hash160()
                    batch.put(b"k" + pkh, json.dumps(protect(key.secret)).encode())
                    batch.put(b"a" + pkh, json.dumps({"imported": True}).encode())
                batch.put(b"meta", json.dumps(meta).encode())
        finally:
            db.close()
        restrict_tree(tmp)
        os.rename(tmp, final)
        fd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    wallet = Wallet.open(datadir, name, spec)
    if "multisig" not in wallet.meta:
        wallet.issue(EXTERNAL)
    return wallet


def _parse_account_xpub(text: str) -> ExtendedKey:
    """An account-level public extended key (``m/44'/7171'/0'``, depth 3)."""
    from .hd import HDError

    try:
        key = ExtendedKey.parse(text.strip())
    except HDError as exc:
        raise WalletError(f"bad xpub: {exc}") from None
    if key.key is not None:
        raise WalletError("that is a private extended key (xprv): a watch-only wallet "
                          "takes the xpub from 'wallet export-xpub'")
    if key.depth != 3:
        raise WalletError(f"the xpub is not an account key (depth {key.depth}, expected 3): "
                          "use the one 'wallet export-xpub' prints")
    return key


@dataclass
class Unlocked:
    """Signing material of an open wallet (lives only for one command)."""

    account: ExtendedKey | None
    imported: dict[bytes, PrivateKey]


class Wallet:
    """An open wallet.  Use as a context manager or call :meth:`close`."""

    def __init__(self, path: Path, db: Any, spec: ChainSpec) -> None:
        self.path = path
        self.db = db
        self.spec = spec
        self.name = path.name
        raw = db.get(b"meta")
        if raw is None:
            raise WalletError(f"wallet {self.name!r} is damaged (no metadata)")
        self.meta: dict[str, Any] = json.loads(raw)
        if self.meta.get("chain_id") != spec.chain_id:
            raise WalletError(
                f"wallet {self.name!r} belongs to chain {self.meta.get('chain_id')!r}, "
                f"not {spec.chain_id!r}"
            )
        xpub = db.get(b"xpub")
        self.account = ExtendedKey.parse(xpub.decode()) if xpub else None
        self._chain_keys: dict[int, ExtendedKey] = {}
        self.policy: Any = None
        """A :class:`~o2ocli.wallet.fees.SendPolicy` the CLI sets (fee choice, approval)."""

    @classmethod
    def open(cls, datadir: Path, name: str, spec: ChainSpec) -> Wallet:
        """Open an existing wallet (one process at a time)."""
        _check_name(name)
        path = wallets_dir(datadir) / name
        if not (path / "CURRENT").exists():
            known = ", ".join(list_wallets(datadir)) or "none"
            raise WalletNotFound(f"no wallet named {name!r} (wallets: {known})")
        try:
            with private_umask():
                db = plyvel.DB(str(path), create_if_missing=False)
        except plyvel.IOError as exc:
            if "lock" in str(exc).lower():
                raise WalletLocked(f"wallet {name!r} is open in another process") from None
            raise WalletError(f"cannot open wallet {name!r}: {exc}") from None
        try:
            return cls(path, db, spec)
        except BaseException:
            db.close()
            raise

    def close(self) -> None:
        """Close the wallet's database."""
        if not self.db.closed:
            self.db.close()

    def __enter__(self) -> Wallet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------- addresses
    @property
    def watch_only(self) -> bool:
        """True if the wallet holds no private keys (made from an xpub)."""
        return bool(self.meta.get("watch_only"))

    def export_xpub(self) -> str:
        """The account's extended public key (for a watch-only twin)."""
        if self.account is None:
            raise WalletError("wallet has no HD keys")
        return self.account.serialize(private=False)

    @property
    def encrypted(self) -> bool:
        """True if secrets need the passphrase."""
        return bool(self.meta.get("encrypted"))

    def _save_meta(self, batch: Any = None) -> None:
        (batch or self.db).put(b"meta", json.dumps(self.meta).encode())

    def _derive_pkh(self, chain: int, index: int) -> bytes:
        if self.account is None:
            raise WalletError("wallet has no HD keys")
        if "multisig" in self.meta:  # its own seed copy must not pay or receive alone
            raise WalletError(f"wallet {self.name!r} is a multisig wallet: it has multisig "
                              "addresses only (address, balance, send --unsigned, sign)")
        chain_key = self._chain_keys.get(chain)
        if chain_key is None:
            chain_key = self._chain_keys[chain] = self.account.derive(chain)
        return chain_key.derive(index).pubkey_hash

    def issue(self, chain: int) -> bytes:
        """Hand out the next address of ``chain`` (recorded and watched);
        returns its pubkey hash."""
        index = self.meta["next_index"].get(str(chain), 0)
        pkh = self._derive_pkh(chain, index)
        self.meta["next_index"][str(chain)] = index + 1
        derived = self.meta["derived"]
        derived[str(chain)] = max(derived.get(str(chain), 0), index + 1)
        if chain == EXTERNAL:
            self.meta["receive_index"] = index
        with self.db.write_batch(transaction=True, sync=True) as batch:
            batch.put(b"a" + pkh, json.dumps({"chain": chain, "index": index}).encode())
            self._save_meta(batch)
        return pkh

    def receive_address(self, new: bool = False) -> str:
        """The current receiving address, or a fresh one with ``new``."""
        if "multisig" in self.meta:
            from . import multisig

            return multisig.receive_address(self, new)
        index = self.meta["receive_index"]
        if new or self.meta["next_index"][str(EXTERNAL)] <= index:
            return self.spec.address(self.issue(EXTERNAL))
        return self.spec.address(self._derive_pkh(EXTERNAL, index))

    def primary_pkh(self) -> bytes:
        """The wallet's first receiving address (m/.../0/0): a stable identity
        (a merchant's item namespace); an imported-key-only wallet uses its
        first watched address."""
        if self.account is not None:
            return self._derive_pkh(EXTERNAL, 0)
        pkhs = self.pubkey_hashes()
        if not pkhs:
            raise WalletError("the wallet has no addresses")
        return pkhs[0]

    def peek_change(self) -> PayToAddress:
        """The change address the next payment will use (not recorded yet: call
        :meth:`commit_change` once the payment went out)."""
        return PayToAddress(self._derive_pkh(CHANGE, self.meta["next_index"][str(CHANGE)]))

    def commit_change(self, lock: PayToAddress) -> None:
        """Record that ``lock`` (from :meth:`peek_change`) has been used."""
        if self.peek_change() != lock:
            raise WalletError("change address changed underneath the payment")
        self.issue(CHANGE)

    def change_lock(self) -> PayToAddress:
        """A fresh change address, recorded at once (watched from now on)."""
        return PayToAddress(self.issue(CHANGE))

    def iter_addresses(self) -> Iterator[tuple[bytes, dict[str, Any]]]:
        """(pubkey hash, info) of every address the wallet watches."""
        for key, value in self.db.iterator(prefix=b"a"):
            yield key[1:], json.loads(value)

    def pubkey_hashes(self) -> list[bytes]:
        """Every watched pubkey hash."""
        return [pkh for pkh, _ in self.iter_addresses()]

    def owns(self, pkh: bytes) -> bool:
        """True if the wallet watches ``pkh``."""
        return self.db.get(b"a" + pkh) is not None

    def extend_gap(self, used: set[bytes]) -> bool:
        """Watch GAP_LIMIT unused addresses after the last used one on each
        chain, and never hand out an address at or below the last used one.
        Returns True if new addresses were derived (the caller rescans)."""
        grew = False
        last_used = {EXTERNAL: -1, CHANGE: -1, INVOICE: -1}
        for pkh, info in self.iter_addresses():
            chain = info.get("chain")
            if chain in last_used and pkh in used:
                last_used[chain] = max(last_used[chain], info["index"])
        with self.db.write_batch(transaction=True, sync=True) as batch:
            for chain, last in last_used.items():
                key = str(chain)
                self.meta["next_index"].setdefault(key, 0)
                self.meta["derived"].setdefault(key, 0)
                if self.meta["next_index"][key] <= last:
                    self.meta["next_index"][key] = last + 1
                    if chain == EXTERNAL:
                        self.meta["receive_index"] = last + 1
                gap = INVOICE_GAP_LIMIT if chain == INVOICE else GAP_LIMIT
                target = max(self.meta["next_index"][key], last + 1) + gap
                derived = self.meta["derived"][key]
                for index in range(derived, target):
                    pkh = self._derive_pkh(chain, index)
                    batch.put(b"a" + pkh, json.dumps({"chain": chain, "index": index}).encode())
                if target > derived:
                    self.meta["derived"][key] = target
                    grew = True
            self._save_meta(batch)
        return grew

    # --------------------------------------------------------------- secrets
    def unlock(self, passphrase: str | None) -> Unlocked:
        """Decrypt the signing keys (raises keystore.WrongPassphrase); a watch-only
        wallet raises :class:`WalletError`."""
        if self.watch_only:
            raise WalletError(
                f"wallet {self.name!r} is watch-only: it holds no private keys and cannot "
                "sign; sign with the wallet that owns the keys"
            )
        account = None
        seed_blob = self.db.get(b"seed")
        if seed_blob is not None:
            text = decrypt_secret(json.loads(seed_blob), passphrase or "").decode()
            master = ExtendedKey.from_seed(mnemonic_to_seed(text))
            account = master.derive_path(ACCOUNT_PATH)
        imported = {}
        for key, value in self.db.iterator(prefix=b"k"):
            imported[key[1:]] = PrivateKey(decrypt_secret(json.loads(value), passphrase or ""))
        return Unlocked(account, imported)

    def mnemonic(self, passphrase: str | None) -> str:
        """The wallet's recovery phrase."""
        blob = self.db.get(b"seed")
        if blob is None:
            raise WalletError("wallet has no recovery phrase")
        return decrypt_secret(json.loads(blob), passphrase or "").decode()

    def key_for(self, pkh: bytes, unlocked: Unlocked) -> PrivateKey:
        """The private key of a watched address."""
        if pkh in unlocked.imported:
            return unlocked.imported[pkh]
        raw = self.db.get(b"a" + pkh)
        if raw is None:
            raise WalletError(f"address {self.spec.address(pkh)} is not in this wallet")
        info = json.loads(raw)
        if "chain" not in info or unlocked.account is None:
            raise WalletError(f"no private key for {self.spec.address(pkh)}")
        child = unlocked.account.derive(info["chain"]).derive(info["index"])
        if child.key is None or child.pubkey_hash != pkh:
            raise WalletError(f"key derivation mismatch for {self.spec.address(pkh)}")
        return child.key

    def import_key(self, key: PrivateKey, passphrase: str | None) -> bytes:
        """Add a private key (encrypted like the rest); returns its pubkey hash."""
        if self.watch_only:
            raise WalletError(f"wallet {self.name!r} is watch-only: it takes no private keys")
        if self.encrypted:
            if passphrase is None:
                raise WalletError("wallet is encrypted: a passphrase is needed")
            self.unlock(passphrase)  # proves the passphrase before storing anything
            blob = encrypt_secret(key.secret, passphrase)
        else:
            blob = plain_secret(key.secret)
        pkh = key.public_key.hash160()
        with self.db.write_batch(transaction=True, sync=True) as batch:
            batch.put(b"k" + pkh, json.dumps(blob).encode())
            if self.db.get(b"a" + pkh) is None:
                batch.put(b"a" + pkh, json.dumps({"imported": True}).encode())
        return pkh

    def sign_digest(self, pkh: bytes, digest: bytes, unlocked: Unlocked) -> tuple[bytes, bytes]:
        """(compressed pubkey, 64-byte signature) of ``digest`` by the key of ``pkh``
        (reviews and replies are signed this way)."""
        key = self.key_for(pkh, unlocked)
        return key.public_key.to_bytes(), key.sign(digest)

    # ---------------------------------------------------------------- notes
    def get_note(self, name: str) -> Any:
        """A JSON value the wallet remembers (e.g. a pending token issue), or None."""
        raw = self.db.get(b"n" + name.encode())
        return None if raw is None else json.loads(raw)

    def put_note(self, name: str, value: Any) -> None:
        """Remember a JSON value (written with sync)."""
        self.db.put(b"n" + name.encode(), json.dumps(value).encode(), sync=True)

    def delete_note(self, name: str) -> None:
        """Forget a note."""
        self.db.delete(b"n" + name.encode(), sync=True)

    def sign(self, tx: Tx, owners: list[bytes], unlocked: Unlocked) -> Tx:
        """Sign every input of ``tx``; ``owners[i]`` is the pubkey hash of input i's coin."""
        digest = tx.sighash(self.spec.chain_id)
        witnesses = []
        for pkh in owners:
            key = self.key_for(pkh, unlocked)
            witnesses.append((SigPair(key.public_key.to_bytes(), key.sign(digest)),))
        return tx.with_witnesses(witnesses)
