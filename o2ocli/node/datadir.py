"""The data directory: what lives where, and how it is created.

::

The datadir and the folders in it are created mode 0700 and its files 0600, whatever the
umask (see :mod:`o2ocli.fsmodes`)::

    DATADIR/chainspec.json   copy of the chain spec (the datadir remembers its chain)
    DATADIR/chaindata/       the node's LevelDB (blocks, index, UTXO set, indexes)
    DATADIR/node.json        written while a node runs: pid, RPC URL (removed at shutdown)
    DATADIR/.cookie          RPC credentials while a node runs (mode 0600)
    DATADIR/validator.key    validator key written by ``node start --dev`` (WIF, 0600)
    DATADIR/node.log         log of a ``--detach``-ed node
    DATADIR/wallets/NAME/    wallets
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from o2ocli.chainspec import ChainSpec, SpecError, load_spec
from o2ocli.crypto.address import AddressError, decode_wif, encode_wif
from o2ocli.crypto.keys import InvalidKeyError, PrivateKey
from o2ocli.fsmodes import make_private_dir

__all__ = [
    "DatadirError",
    "default_datadir",
    "spec_path",
    "chaindata_path",
    "node_info_path",
    "cookie_path",
    "read_spec",
    "init_datadir",
    "write_private_file",
    "write_key_file",
    "read_key_file",
    "read_node_info",
    "write_node_info",
]


class DatadirError(Exception):
    """The datadir is missing, belongs to another chain, or a file in it is bad."""


def default_datadir(chain_name: str) -> Path:
    """``~/.o2ocli/dev`` for the devnet (what ``node start --dev`` uses), else
    ``~/.o2ocli/<chain>``."""
    folder = "dev" if chain_name == "devnet" else chain_name
    return Path.home() / ".o2ocli" / folder


def spec_path(datadir: Path) -> Path:
    """Where the datadir keeps its chain spec."""
    return datadir / "chainspec.json"


def chaindata_path(datadir: Path) -> Path:
    """The node's LevelDB folder."""
    return datadir / "chaindata"


def node_info_path(datadir: Path) -> Path:
    """The running node's info file."""
    return datadir / "node.json"


def cookie_path(datadir: Path) -> Path:
    """The RPC cookie file."""
    return datadir / ".cookie"


def read_spec(datadir: Path) -> ChainSpec | None:
    """The chain spec stored in ``datadir``, or None if it was never initialised."""
    path = spec_path(datadir)
    if not path.is_file():
        return None
    try:
        return load_spec(path)
    except SpecError as exc:
        raise DatadirError(f"{path}: {exc}") from None


def write_private_file(path: Path, data: str, mode: int = 0o600) -> None:
    """Write ``data`` atomically (temp file + rename) with ``mode`` permissions; a missing
    parent folder is created mode 0700."""
    make_private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def init_datadir(datadir: Path, spec: ChainSpec) -> bool:
    """Create ``datadir`` for ``spec`` (copying the spec file).  Returns False if
    it already was initialised for the same chain; raises DatadirError if it
    belongs to another chain."""
    existing = read_spec(datadir)
    if existing is not None:
        if existing.genesis_block().hash != spec.genesis_block().hash:
            raise DatadirError(
                f"datadir {datadir} belongs to chain {existing.chain_id!r} "
                f"(genesis differs from {spec.chain_id!r})"
            )
        return False
    make_private_dir(datadir)
    text = Path(spec.source).read_text(encoding="utf-8") if spec.source else "{}"
    write_private_file(spec_path(datadir), text)
    return True


def write_key_file(path: Path, key: PrivateKey, wif_version: int) -> None:
    """Write ``key`` as one WIF line, mode 0600 (refuses to overwrite)."""
    if path.exists():
        raise DatadirError(f"{path} already exists; refusing to overwrite a key file")
    write_private_file(path, encode_wif(key.secret, version=wif_version) + "\n")


def read_key_file(path: Path, wif_version: int) -> PrivateKey:
    """Read a one-line WIF key file."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise DatadirError(f"cannot read key file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise DatadirError(f"key file {path} is not text (expected one WIF line)") from None
    try:
        secret, _ = decode_wif(text, version=wif_version)
        return PrivateKey(secret)
    except (AddressError, InvalidKeyError) as exc:
        raise DatadirError(f"key file {path} is not a valid key for this chain: {exc}") from None


def read_node_info(datadir: Path) -> dict[str, Any] | None:
    """The running node's info (pid, rpc URL), or None."""
    try:
        return json.loads(node_info_path(datadir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_node_info(datadir: Path, info: dict[str, Any]) -> None:
    """Publish the running node's info."""
    write_private_file(node_info_path(datadir), json.dumps(info, indent=2) + "\n")
