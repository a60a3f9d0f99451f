"""Private files and folders: datadirs, wallets, keys and the RPC cookie are the owner's only.

Modes are set explicitly (``chmod`` after creation), so they do not depend on the umask:
folders 0700, files 0600. LevelDB creates its own files with the process umask, so LevelDB
folders are created under a temporary umask 077, their files are tightened afterwards, and
the 0700 folder is what keeps later files (new logs, tables) private.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "PRIVATE_DIR",
    "PRIVATE_FILE",
    "exposure_warning",
    "make_private_dir",
    "private_umask",
    "restrict_tree",
]

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def make_private_dir(path: Path) -> Path:
    """Create ``path`` and its missing parents, each mode 0700 whatever the umask.

    Folders that already exist keep their mode (the owner may have chosen it)."""
    missing: list[Path] = []
    current = Path(path)
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=PRIVATE_DIR)
        except FileExistsError:
            continue  # made by someone else meanwhile: not ours to change
        os.chmod(folder, PRIVATE_DIR)
    if not Path(path).is_dir():
        raise NotADirectoryError(f"{path} is not a directory")
    return Path(path)


@contextmanager
def private_umask() -> Iterator[None]:
    """Run the block with umask 077 (for libraries such as LevelDB that create files)."""
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def restrict_tree(path: Path) -> None:
    """Make folder ``path`` 0700 and everything in it 0700 (folders) / 0600 (files);
    symbolic links are left alone."""
    os.chmod(path, PRIVATE_DIR)
    for root, dirs, files in os.walk(path):
        for name in dirs:
            child = os.path.join(root, name)
            if not os.path.islink(child):
                os.chmod(child, PRIVATE_DIR)
        for name in files:
            child = os.path.join(root, name)
            if not os.path.islink(child):
                os.chmod(child, PRIVATE_FILE)


def exposure_warning(path: Path, what: str) -> str | None:
    """One line warning that ``what`` at ``path`` is open to other users, or None."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return None
    if not mode & 0o077:
        return None
    return (f"warning: {what} {path} is accessible by other users (mode {mode:04o}); "
            f"restrict it with: chmod 700 {path}")
