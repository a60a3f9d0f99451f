"""Layering: the layer map of docs/architecture.rst, enforced over all of ``o2ocli``.

Every top-level unit of the package (a subpackage like ``o2ocli.p2p`` or a
module like ``o2ocli.chainspec``) may import only the units :data:`LAYER_MAP`
allows; the map is acyclic, covers every unit, and is the one the document
prints.  Besides:

* ``o2ocli.core``, ``o2ocli.consensus`` and ``o2ocli.amounts`` stay pure: no
  storage, networking, node, RPC, wallet or CLI, nor anything that reads a
  clock, the OS, randomness or threads; and ``core`` (pure data) does not
  depend on ``consensus`` (rules over that data);
* no module imports a private (``_name``) member of another module;
* ``o2ocli.cli.common`` (shared CLI plumbing) imports no other CLI module;
* the database, HTTP and CLI libraries stay in their homes;
* no module grows past :data:`MAX_MODULE_LINES` (a few, being split, are listed).

The modules are read with :mod:`ast`, never imported, so a forbidden import is
found even when it sits in a function body or behind a condition.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIR = REPO_ROOT / "o2ocli"
ARCHITECTURE_DOC = REPO_ROOT / "docs" / "architecture.rst"
PURE_PACKAGES = ("core", "consensus", "amounts")

LAYER_MAP: dict[str, frozenset[str]] = {
    "crypto": frozenset(),
    "fsmodes": frozenset(),
    "asyncutil": frozenset(),
    "core": frozenset({"crypto"}),
    "consensus": frozenset({"core", "crypto"}),
    "amounts": frozenset({"consensus"}),
    "chainspec": frozenset({"amounts", "consensus", "core", "crypto"}),
    "storage": frozenset({"consensus", "core", "crypto", "fsmodes"}),
    "p2p": frozenset({"asyncutil", "consensus", "core", "crypto", "storage"}),
    "rpc": frozenset({"fsmodes"}),
    "node": frozenset({"amounts", "asyncutil", "chainspec", "consensus", "core", "crypto",
                       "fsmodes", "p2p", "rpc", "storage"}),
    "wallet": frozenset({"amounts", "chainspec", "consensus", "core", "crypto", "fsmodes",
                         "rpc"}),
    "pos": frozenset({"amounts", "fsmodes", "wallet"}),
    "demo": frozenset({"rpc"}),
    "testing": frozenset({"core", "crypto", "p2p"}),
    "web": frozenset({"amounts", "core", "node", "rpc"}),
    "cli": frozenset({"amounts", "chainspec", "core", "crypto", "demo", "fsmodes", "node",
                      "pos", "rpc", "storage", "wallet", "web"}),
    "__main__": frozenset({"cli"}),
}
"""Top-level unit of ``o2ocli`` → the other units it may import.  Every unit may
also import the package root (``from o2ocli import __version__``)."""

LIBRARY_HOMES = {
    "plyvel": frozenset({"storage", "wallet"}),
    "aiohttp": frozenset({"rpc", "web", "pos"}),
    "click": frozenset({"cli", "node"}),  # node: the initial-sync progress bar
    "prometheus_client": frozenset({"node"}),  # node/metrics.py: the node's metrics
}
"""Third-party libraries with a home: only these units import them."""

MAX_MODULE_LINES = 500
"""A module past this is split along its responsibilities (docs/architecture.rst, "Module size")."""
OVERSIZED: dict[str, int] = {}
"""Modules still past the limit (issue 15 splits them): they may only shrink, and
leave this list once under the limit."""

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


@functools.cache
def _parse(source: str) -> ast.Module:
    """The syntax tree of ``source`` (each module is read by several checks)."""
    return ast.parse(source)


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
    for node in ast.walk(_parse(source)):
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


def _modules(*units: str) -> list[Path]:
    found = []
    for unit in units:
        if (PACKAGE_DIR / f"{unit}.py").is_file():
            found.append(PACKAGE_DIR / f"{unit}.py")
        else:
            found.extend((PACKAGE_DIR / unit).rglob("*.py"))
    return sorted(found)


def unit_of(name: str) -> str | None:
    """The top-level unit of module ``name`` ("" for the package root), or None
    if it is not part of ``o2ocli``."""
    parts = name.split(".")
    if parts[0] != "o2ocli":
        return None
    if len(parts) == 1 or parts[1] == "__version__":
        return ""
    return parts[1]


def all_units() -> set[str]:
    """Every top-level unit found under ``o2ocli/``."""
    units = {p.stem for p in PACKAGE_DIR.glob("*.py") if p.name != "__init__.py"}
    units.update(p.parent.name for p in PACKAGE_DIR.glob("*/__init__.py"))
    return units


def layer_violations(
    source: str, module: str, is_package: bool = False,
    layer_map: dict[str, frozenset[str]] = LAYER_MAP,
) -> list[str]:
    """``"line N: name"`` for each import of a unit the map does not allow ``module``."""
    own = unit_of(module)
    allowed = layer_map.get(own or "", frozenset()) | {own, ""}
    found: list[tuple[int, str]] = []
    for lineno, name in imported_names(source, module, is_package):
        target = BEYOND_TOP if name == BEYOND_TOP else unit_of(name)
        if target is None or target in allowed:
            continue
        if any(line == lineno and _matches(name, seen) for line, seen in found):
            continue
        found.append((lineno, name))
    return [f"line {lineno}: {name}" for lineno, name in found]


def private_imports(source: str, module: str, is_package: bool = False) -> list[str]:
    """``"line N: name"`` for each ``_private`` member imported from another o2ocli module."""
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(_parse(source)):
        if not isinstance(node, ast.ImportFrom):
            continue
        target = _resolve_relative(package, node.level, node.module) if node.level else (
            node.module or "")
        if unit_of(target) is None:
            continue
        for alias in node.names:
            if alias.name.startswith("_") and not alias.name.startswith("__"):
                found.append(f"line {node.lineno}: {target}.{alias.name}")
    return found


def documented_map(text: str) -> dict[str, frozenset[str]]:
    """The map as docs/architecture.rst prints it: lines
    ``* ``unit`` may import: ``a``, ``b``.`` (or ``nothing else in o2ocli.``)."""
    found = {}
    item = r"^\* ``(\w+)`` may import: (.*?)(?=^\* |^\s*$|\Z)"
    for match in re.finditer(item, text, re.MULTILINE | re.DOTALL):
        found[match.group(1)] = frozenset(re.findall(r"``(\w+)``", match.group(2)))
    return found


PURE_MODULES = _modules(*PURE_PACKAGES)
CORE_MODULES = _modules("core")
ALL_MODULES = sorted(PACKAGE_DIR.rglob("*.py"))


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


def test_every_unit_is_in_the_layer_map():
    assert all_units() == set(LAYER_MAP), "add the new unit to LAYER_MAP and the architecture doc"


def test_the_layer_map_is_acyclic():
    done: set[str] = set()

    def visit(unit: str, path: tuple[str, ...]) -> None:
        assert unit not in path, f"import cycle in the layer map: {' -> '.join(path + (unit,))}"
        if unit in done:
            return
        for dep in LAYER_MAP[unit]:
            assert dep in LAYER_MAP, f"{unit} may import {dep}, which is not a unit"
            visit(dep, path + (unit,))
        done.add(unit)

    for unit in LAYER_MAP:
        visit(unit, ())


def test_the_architecture_doc_prints_the_layer_map():
    assert documented_map(ARCHITECTURE_DOC.read_text(encoding="utf-8")) == LAYER_MAP


@pytest.mark.parametrize("path", ALL_MODULES, ids=_id)
def test_module_imports_only_what_its_layer_allows(path):
    module, is_package = module_name(path)
    bad = layer_violations(path.read_text(encoding="utf-8"), module, is_package)
    unit = unit_of(module)
    assert bad == [], f"{module} ({unit}) may import only {sorted(LAYER_MAP[unit])}: {bad}"


@pytest.mark.parametrize("path", ALL_MODULES, ids=_id)
def test_no_private_member_is_imported_from_another_module(path):
    module, is_package = module_name(path)
    bad = private_imports(path.read_text(encoding="utf-8"), module, is_package)
    assert bad == [], f"{module} imports private names (make them public or move them): {bad}"


def test_cli_common_imports_no_other_cli_module():
    path = PACKAGE_DIR / "cli" / "common.py"
    module, is_package = module_name(path)
    names = [n for _, n in imported_names(path.read_text(encoding="utf-8"), module, is_package)]
    assert [n for n in names if _matches(n, "o2ocli.cli")] == []


@pytest.mark.parametrize("path", ALL_MODULES, ids=_id)
def test_libraries_stay_in_their_homes(path):
    module, is_package = module_name(path)
    unit = unit_of(module)
    for lineno, name in imported_names(path.read_text(encoding="utf-8"), module, is_package):
        for library, homes in LIBRARY_HOMES.items():
            if _matches(name, library):
                assert unit in homes, f"{module} line {lineno} imports {library} (home: {homes})"


@pytest.mark.parametrize("path", ALL_MODULES, ids=_id)
def test_module_size(path):
    rel = path.relative_to(REPO_ROOT).as_posix()
    lines = len(path.read_text(encoding="utf-8").splitlines())
    if rel in OVERSIZED:
        assert lines <= OVERSIZED[rel], f"{rel} grew to {lines} lines: split it"
        assert lines > MAX_MODULE_LINES, f"{rel} is {lines} lines now: drop it from OVERSIZED"
    else:
        assert lines <= MAX_MODULE_LINES, f"{rel} has {lines} lines: split it"


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


@pytest.mark.parametrize(
    ("source", "module", "is_package", "expected"),
    [
        ("from o2ocli.node.mempool import MempoolError\n", "o2ocli.p2p.manager", False,
         ["line 1: o2ocli.node.mempool"]),
        ("from ..node import runtime\n", "o2ocli.p2p.manager", False, ["line 1: o2ocli.node"]),
        ("if x:\n    import o2ocli.cli.main\n", "o2ocli.node.api", False,
         ["line 2: o2ocli.cli.main"]),
        ("from o2ocli import wallet\n", "o2ocli.node", True, ["line 1: o2ocli.wallet"]),
        ("from ....x import y\n", "o2ocli.p2p.manager", False, [f"line 1: {BEYOND_TOP}"]),
        ("from o2ocli.p2p import messages\n", "o2ocli.rpc.server", False,
         ["line 1: o2ocli.p2p"]),
    ],
)
def test_layer_checker_catches_imports_outside_the_map(source, module, is_package, expected):
    assert layer_violations(source, module, is_package) == expected


@pytest.mark.parametrize(
    ("source", "module"),
    [
        ("from o2ocli import __version__\nimport asyncio\n", "o2ocli.p2p.manager"),
        ("from o2ocli.storage.schema import PEER_BAN\n", "o2ocli.p2p.bans"),
        ("from .interface import NodeLink\nfrom . import messages\n", "o2ocli.p2p.manager"),
        ("from o2ocli.p2p.manager import PeerManager\n", "o2ocli.node.runtime"),
        ("import click\nimport o2ocli.wallet.wallet\n", "o2ocli.cli.wallet"),
    ],
)
def test_layer_checker_allows_imports_in_the_map(source, module):
    assert layer_violations(source, module) == []


def test_private_import_checker():
    assert private_imports("from .wallet import _address\n", "o2ocli.cli.trace") == [
        "line 1: o2ocli.cli.wallet._address"]
    assert private_imports("from ..p2p.peer import _x as y\n", "o2ocli.node.api") == [
        "line 1: o2ocli.p2p.peer._x"]
    assert private_imports(
        "from o2ocli import __version__\nfrom os import _exit\nfrom .a import b\n",
        "o2ocli.cli.trace") == []


def test_documented_map_reads_the_doc_format():
    text = ("* ``core`` may import: ``crypto``.\n* ``crypto`` may import: nothing else.\n"
            "* ``node`` may import: ``core``,\n  ``p2p``.\n\nThe ``wallet`` text after.\n")
    assert documented_map(text) == {"core": frozenset({"crypto"}), "crypto": frozenset(),
                                    "node": frozenset({"core", "p2p"})}

