"""Method tables: a domain module's methods are plain functions taking the
node first; binding exposes them with the node filled in."""

from __future__ import annotations

import inspect
from types import SimpleNamespace
from typing import Any

import pytest

from o2ocli.node.api import TABLES, build_methods
from o2ocli.node.methods.table import MethodTable
from o2ocli.rpc import errors as E
from o2ocli.rpc.errors import RpcError
from o2ocli.rpc.server import RpcMethods


def test_a_test_only_family_registers_its_method_with_one_table():
    table = MethodTable()

    @table.method("getplugin")
    def getplugin(node: Any, name: Any, times: Any = 1) -> dict[str, Any]:
        """Echo ``name`` ``times`` times with the node's chain name."""
        if not isinstance(times, int):
            raise RpcError(E.INVALID_PARAMS, "times must be an integer")
        return {"chain": node.chain_name, "echo": [name] * times}

    node = SimpleNamespace(chain_name="devnet")
    assert getplugin(node, "x") == {"chain": "devnet", "echo": ["x"]}  # still a plain function
    methods = RpcMethods()
    table.bind(methods, node)
    assert methods.usage("getplugin") == "getplugin <name> [times=1]"
    assert methods.call_sync("getplugin", ["y", 2]) == {"chain": "devnet", "echo": ["y", "y"]}
    assert methods.call_sync("getplugin", {"name": "z"}) == {"chain": "devnet", "echo": ["z"]}
    with pytest.raises(RpcError) as info:
        methods.call_sync("getplugin", {"name": "z", "node": node})
    assert info.value.code == E.INVALID_PARAMS  # the context is not a param
    with pytest.raises(RpcError) as info:
        methods.call_sync("getplugin", ["y", "2"])
    assert info.value.code == E.INVALID_PARAMS
    with pytest.raises(ValueError, match="already in this table"):
        table.method("getplugin")(getplugin)


def test_every_method_name_is_in_exactly_one_table():
    names = [name for table in TABLES for name in table.functions]
    assert len(names) == len(set(names)) == 49
    methods = build_methods(SimpleNamespace())
    assert sorted(names) == methods.names()
    for table in TABLES:
        for name, func in table.functions.items():
            first = next(iter(inspect.signature(func).parameters))
            assert first == "node", f"{name}: the context comes first"
            assert func.__doc__, f"{name} has no docstring (it is the method's help)"
