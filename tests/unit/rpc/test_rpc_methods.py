"""The method registry and dispatcher, in-process (no HTTP)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from rpc_helpers import make_methods

from o2ocli.rpc.errors import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    NOT_FOUND,
    TX_REJECTED,
    RpcError,
    tx_rejected,
)
from o2ocli.rpc.server import RpcMethods


def call(methods: RpcMethods, name: str, params: Any = None) -> Any:
    return methods.call_sync(name, params)


def error_of(methods: RpcMethods, name: str, params: Any = None) -> RpcError:
    with pytest.raises(RpcError) as info:
        call(methods, name, params)
    return info.value


def test_positional_named_and_default_params():
    methods = make_methods()
    assert call(methods, "add", [2, 3]) == 5
    assert call(methods, "add", [2]) == 2
    assert call(methods, "add", {"a": 2, "b": 5}) == 7
    assert call(methods, "add", {"b": 5, "a": 1}) == 6
    assert call(methods, "getinfo") == {"version": "0.1.0", "blocks": 0}
    assert call(methods, "getinfo", []) == call(methods, "getinfo", {})


def test_unknown_method():
    error = error_of(make_methods(), "nosuchmethod", [])
    assert error.code == METHOD_NOT_FOUND
    assert "nosuchmethod" in error.message


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ([1, 2, 3], "too many parameters"),
        ([], "missing required parameter 'a'"),
        ({"b": 1}, "missing required parameter 'a'"),
        ({"a": 1, "c": 2}, "unknown parameter 'c'"),
    ],
)
def test_bad_params_are_invalid_params_with_usage(params, fragment):
    error = error_of(make_methods(), "add", params)
    assert error.code == INVALID_PARAMS
    assert fragment in error.message
    assert "usage: add <a> [b=0]" in error.message


def test_type_error_inside_a_method_is_internal_error_not_invalid_params(caplog):
    error = error_of(make_methods(), "typeerror_inside", [5])
    assert error.code == INTERNAL_ERROR
    assert isinstance(error.__cause__, TypeError)
    assert "Traceback" in caplog.text  # logged, with the traceback


def test_unexpected_exception_is_a_short_internal_error():
    error = error_of(make_methods(), "boom")
    assert error.code == INTERNAL_ERROR
    assert "secret internal detail" not in error.message
    assert "ValueError" in error.message


def test_rpc_error_passes_through():
    error = error_of(make_methods(), "reject")
    assert (error.code, error.data) == (TX_REJECTED, {"reason": "fee-too-low"})
    assert error.message == "transaction rejected: fee too low"


def test_async_method_and_bytes_result():
    methods = make_methods()
    assert call(methods, "asleep", [0, "x"]) == "x"
    assert asyncio.run(methods.call("asleep", {"seconds": 0})) == "done"
    assert error_of(methods, "getbytes").code == INTERNAL_ERROR


def test_register_forms_and_introspection():
    methods = RpcMethods()

    @methods.method
    def first() -> int:
        return 1

    @methods.method()
    def second() -> int:
        return 2

    methods.register("third", lambda x, *, verbose=False: [x, verbose])
    assert methods.names() == ["first", "second", "third"] == list(methods)
    assert "first" in methods and len(methods) == 3
    assert call(methods, "third", {"x": 1, "verbose": True}) == [1, True]
    # keyword-only parameters cannot be given by position
    assert error_of(methods, "third", [1, True]).code == INVALID_PARAMS
    assert methods.usage("third") == "third <x> [verbose=false]"
    with pytest.raises(ValueError, match="already registered"):
        methods.register("first", first)


def test_register_with_explicit_params():
    methods = RpcMethods()

    def getblock(blockhash: str, verbosity: int = 1, *, _node: object = None) -> list[Any]:
        return [blockhash, verbosity]

    methods.register("getblock", getblock, params=["blockhash", "verbosity"])
    assert call(methods, "getblock", ["ab", 2]) == ["ab", 2]
    assert call(methods, "getblock", {"blockhash": "ab"}) == ["ab", 1]
    assert "unknown parameter '_node'" in error_of(methods, "getblock", {"_node": 1}).message
    assert error_of(methods, "getblock", ["ab", 2, 3]).code == INVALID_PARAMS

    with pytest.raises(ValueError, match="no parameter 'nope'"):
        methods.register("x", getblock, params=["blockhash", "nope"])
    with pytest.raises(ValueError, match="not exposed and has no default"):
        methods.register("y", getblock, params=["verbosity"])


def test_error_helpers():
    error = tx_rejected("fee-too-low")
    assert (error.code, error.data) == (TX_REJECTED, {"reason": "fee-too-low"})
    assert RpcError(NOT_FOUND, "unknown block").to_dict() == {
        "code": -8,
        "message": "unknown block",
    }
    assert RpcError.from_dict({"code": -8, "message": "m", "data": 1}).data == 1
    assert RpcError.from_dict("junk").code == INTERNAL_ERROR
    assert str(RpcError(NOT_FOUND, "unknown block")) == "unknown block (code -8)"
