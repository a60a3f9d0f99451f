"""Shared fixtures for the crypto tests: access to the public test vectors.

The vectors live outside the repository, in ``<repo root>/../shared/vectors``. This file is
``<repo root>/tests/unit/crypto/conftest.py``, so ``parents[3]`` is the repository root.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
VECTORS_DIR = REPO_ROOT.parent / "shared" / "vectors"


def load_vector_file(name: str) -> Any:
    """Parse ``VECTORS_DIR / name`` as JSON (fails the test if the file is missing)."""
    path = VECTORS_DIR / name
    if not path.is_file():
        pytest.fail(f"test vector file not found: {path}")
    with path.open(encoding="utf-8") as fh:
        return json.load(fh)


@pytest.fixture(scope="session")
def vectors_dir() -> Path:
    """Directory holding the shared public test vectors."""
    return VECTORS_DIR


@pytest.fixture(scope="session")
def load_vector() -> Callable[[str], Any]:
    """Return a loader: ``load_vector("file.json")`` -> parsed JSON."""
    return load_vector_file
