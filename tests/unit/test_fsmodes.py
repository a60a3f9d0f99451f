"""Private folders and files whatever the umask (``o2ocli.fsmodes`` and its users)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from o2ocli.chainspec import load_spec
from o2ocli.fsmodes import exposure_warning, make_private_dir, private_umask
from o2ocli.storage.db import Database
from o2ocli.wallet.wallet import create_wallet

MNEMONIC = "test test test test test test test test test test test junk"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o022, 0o000], ids=["umask022", "umask000"])
def umask(request) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def test_make_private_dir_makes_missing_parents_0700_and_leaves_existing(tmp_path, umask):
    existing = tmp_path / "shared"
    existing.mkdir()
    existing.chmod(0o755)
    made = make_private_dir(existing / "a" / "b")
    assert made == existing / "a" / "b"
    assert mode(existing / "a") == 0o700
    assert mode(existing / "a" / "b") == 0o700
    assert mode(existing) == 0o755
    assert make_private_dir(existing) == existing  # idempotent, no change
    assert mode(existing) == 0o755
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError):
        make_private_dir(tmp_path / "file")


def test_private_umask_is_restored(umask):
    with private_umask():
        assert os.umask(0o077) == 0o077
    assert os.umask(umask) == umask


def test_database_and_wallet_files_are_private(tmp_path, umask):
    with Database(tmp_path / "dd" / "chaindata") as db, db.write_batch() as batch:
        batch.put(b"k", b"v")
    for path in [tmp_path / "dd", *(tmp_path / "dd").rglob("*")]:
        assert mode(path) == (0o700 if path.is_dir() else 0o600), path
    create_wallet(tmp_path / "dd", "w", load_spec("devnet"), MNEMONIC, None).close()
    wallets = tmp_path / "dd" / "wallets"
    for path in [wallets, *wallets.rglob("*")]:
        assert mode(path) == (0o700 if path.is_dir() else 0o600), path


def test_exposure_warning_names_the_path_and_the_fix(tmp_path):
    folder = tmp_path / "w"
    folder.mkdir()
    folder.chmod(0o750)
    warning = exposure_warning(folder, "wallet folder")
    assert warning == (f"warning: wallet folder {folder} is accessible by other users "
                       f"(mode 0750); restrict it with: chmod 700 {folder}")
    folder.chmod(0o700)
    assert exposure_warning(folder, "wallet folder") is None
    assert exposure_warning(tmp_path / "missing", "wallet folder") is None
