"""Layering: ``o2ocli.core`` and ``o2ocli.consensus`` stay pure.

They may not import storage, networking, the node, RPC, the wallet or the CLI,
nor anything that reads a clock, the OS, randomness or threads.  And ``core``
(pure data) may not depend on ``consensus`` (rules over that data).

The modules are read with :mod:`ast`, never imported, so a forbidden import is
found even when it sits in a function body or behind a condition.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIR = REPO_ROOT / "o2ocli"
PURE_PACKAGES = ("core", "consensus")

FORBIDDEN = (
    "o2ocli.storage",
    "o2ocli.node",
    "o2ocli.p2p",
    "o2ocli.rpc",
    "o2ocli.wallet",
    "o2ocli.cli",
    "asyncio",
    "plyvel",
    "socket",
    "time",
    "datetime",
    "random",
    "threading",
    "multiprocessing",
    "os",
)
"""Modules (and everything under them) the pure layers must not import."""

BEYOND_TOP = "<relative import beyond the top-level package>"


def module_name(path: Path) -> tuple[str, bool]:
    """Dotted module name of ``path`` (under the repo root) and whether it is a package."""
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts.pop()
    return ".".join(parts), is_package


def _resolve_relative(package: str, level: int, name: str | None) -> str:
    """Absolute target of ``from <level dots><name> import ...`` inside ``package``."""
    parts = package.split(".") if package else []
    keep = len(parts) - (level - 1)
    if keep < 1:
        return BEYOND_TOP
    base = ".".join(parts[:keep])
    return f"{base}.{name}" if name else base


def imported_names(source: str, module: str, is_package: bool) -> Iterator[tuple[int, str]]:
    """Every absolute module name ``source`` (the text of ``module``) may import.

    ``from X import y`` yields both ``X`` and ``X.y`` (``y`` may be a submodule).
    Literal ``importlib.import_module("...")`` / ``__import__("...")`` calls count too.
    """
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                target = _resolve_relative(package, node.level, node.module)
            else:
                target = node.module or ""
            yield node.lineno, target
            if target != BEYOND_TOP:
                for alias in node.names:
                    if alias.name != "*":
                        yield node.lineno, f"{target}.{alias.name}"
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            first = node.args[0]
            if called in ("import_module", "__import__") and isinstance(first, ast.Constant):
                if isinstance(first.value, str):
                    name = first.value
                    if name.startswith("."):
                        level = len(name) - len(name.lstrip("."))
                        name = _resolve_relative(package, level, name.lstrip(".") or None)
                    yield node.lineno, name


def _matches(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def forbidden_imports(
    source: str, module: str, is_package: bool = False, forbidden: tuple[str, ...] = FORBIDDEN
) -> list[str]:
    """``"line N: name"`` for each import in ``source`` that reaches a ``forbidden`` module."""
    found: list[tuple[int, str]] = []
    for lineno, name in imported_names(source, module, is_package):
        if name != BEYOND_TOP and not any(_matches(name, bad) for bad in forbidden):
            continue
        # ``from bad import x`` is reported once, as ``bad``, not again as ``bad.x``
        if any(line == lineno and _matches(name, seen) for line, seen in found):
            continue
        found.append((lineno, name))
    return [f"line {lineno}: {name}" for lineno, name in found]


def _modules(*subpackages: str) -> list[Path]:
    return sorted(p for sub in subpackages for p in (PACKAGE_DIR / sub).rglob("*.py"))


PURE_MODULES = _modules(*PURE_PACKAGES)
CORE_MODULES = _modules("core")


def _id(path: Path) -> str:
    return module_name(path)[0]


# ---------------------------------------------------------------------------
# The checks on the real tree
# ---------------------------------------------------------------------------


def test_the_pure_modules_are_found():
    names = {module_name(p)[0] for p in PURE_MODULES}
    for expected in (
        "o2ocli.core",
        "o2ocli.core.tx",
        "o2ocli.core.block",
        "o2ocli.consensus",
        "o2ocli.consensus.tx",
        "o2ocli.consensus.block",
        "o2ocli.consensus.locks",
    ):
        assert expected in names
    assert set(CORE_MODULES) < set(PURE_MODULES)


@pytest.mark.parametrize("path", PURE_MODULES, ids=_id)
def test_pure_module_has_no_forbidden_import(path):
    module, is_package = module_name(path)
    bad = forbidden_imports(path.read_text(encoding="utf-8"), module, is_package)
    assert bad == [], f"{module} imports impure modules: {bad}"


@pytest.mark.parametrize("path", CORE_MODULES, ids=_id)
def test_core_does_not_import_consensus(path):
    module, is_package = module_name(path)
    source = path.read_text(encoding="utf-8")
    bad = forbidden_imports(source, module, is_package, forbidden=("o2ocli.consensus",))
    assert bad == [], f"{module} (core) imports consensus: {bad}"


# ---------------------------------------------------------------------------
# Self-tests: the checker catches what it must and only that
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "module", "is_package", "expected"),
    [
        ("import time\n", "o2ocli.core.tx", False, ["line 1: time"]),
        ("import os.path\n", "o2ocli.core.tx", False, ["line 1: os.path"]),
        ("from datetime import datetime\n", "o2ocli.core.tx", False, ["line 1: datetime"]),
        ("import asyncio as aio\n", "o2ocli.consensus.tx", False, ["line 1: asyncio"]),
        (
            "from o2ocli.storage.db import Database\n",
            "o2ocli.consensus.block",
            False,
            ["line 1: o2ocli.storage.db"],
        ),
        ("from o2ocli import wallet\n", "o2ocli.core.tx", False, ["line 1: o2ocli.wallet"]),
        (
            "from ..storage import db\n",
            "o2ocli.consensus.block",
            False,
            ["line 1: o2ocli.storage"],
        ),
        ("from .. import node\n", "o2ocli.consensus.block", False, ["line 1: o2ocli.node"]),
        # in a package's __init__, one dot is the package itself
        ("from ..p2p import peer\n", "o2ocli.consensus", True, ["line 1: o2ocli.p2p"]),
        ("from ...x import y\n", "o2ocli.core.tx", False, [f"line 1: {BEYOND_TOP}"]),
        (
            "def later():\n    import random\n    return random.random()\n",
            "o2ocli.core.tx",
            False,
            ["line 2: random"],
        ),
        (
            "try:\n    import plyvel\nexcept ImportError:\n    plyvel = None\n",
            "o2ocli.core.tx",
            False,
            ["line 2: plyvel"],
        ),
        (
            "import importlib\nm = importlib.import_module('socket')\n",
            "o2ocli.core.tx",
            False,
            ["line 2: socket"],
        ),
        ("t = __import__('threading')\n", "o2ocli.core.tx", False, ["line 1: threading"]),
        (
            "from multiprocessing.pool import Pool\nimport o2ocli.rpc.server\n",
            "o2ocli.core.tx",
            False,
            ["line 1: multiprocessing.pool", "line 2: o2ocli.rpc.server"],
        ),
    ],
)
def test_checker_catches_forbidden_imports(source, module, is_package, expected):
    assert forbidden_imports(source, module, is_package) == expected


@pytest.mark.parametrize(
    ("source", "module", "is_package"),
    [
        ("import timeit\nimport ossaudiodev\nimport randomish\n", "o2ocli.core.tx", False),
        ("from dataclasses import dataclass\nimport struct\n", "o2ocli.core.tx", False),
        ("from o2ocli.crypto.hashes import sha256d\n", "o2ocli.core.tx", False),
        ("from .encoding import Writer\nfrom . import limits\n", "o2ocli.core.tx", False),
        ("from o2ocli.core.tx import time\n", "o2ocli.consensus.tx", False),
        ("from .storage_format import x\n", "o2ocli.core.tx", False),
        ("from ..core import tx\n", "o2ocli.consensus.block", False),
    ],
)
def test_checker_allows_pure_imports(source, module, is_package):
    assert forbidden_imports(source, module, is_package) == []


def test_checker_flags_core_importing_consensus():
    forbidden = ("o2ocli.consensus",)
    assert forbidden_imports(
        "from ..consensus.errors import TxInvalid\n", "o2ocli.core.tx", forbidden=forbidden
    ) == ["line 1: o2ocli.consensus.errors"]
    assert forbidden_imports(
        "from o2ocli import consensus\n", "o2ocli.core", True, forbidden=forbidden
    ) == ["line 1: o2ocli.consensus"]
    assert (
        forbidden_imports("from ..core import tx\n", "o2ocli.consensus.block", forbidden=forbidden)
        == []
    )


def test_module_name_of_files_and_packages():
    assert module_name(PACKAGE_DIR / "core" / "tx.py") == ("o2ocli.core.tx", False)
    assert module_name(PACKAGE_DIR / "consensus" / "__init__.py") == ("o2ocli.consensus", True)
