"""One table of RPC methods per domain module.

A method is a plain top-level function whose first parameter is the node it
runs on (an explicit context, see :class:`~o2ocli.node.methods.context.NodeContext`);
the rest are its JSON-RPC params, exactly as clients pass them::

    TABLE = MethodTable()

    @TABLE.method("getblockcount")
    def getblockcount(node: NodeContext) -> int:
        return node.chain.height

The function stays importable and callable directly (``getblockcount(node)``);
:meth:`MethodTable.bind` puts every method of the table into the RPC
dispatcher with the node bound, so the exposed params are the function's
params after ``node``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

from o2ocli.rpc.server import RpcMethods

__all__ = ["MethodTable"]

F = TypeVar("F", bound=Callable[..., Any])


class MethodTable:
    """The RPC methods of one domain module, by name."""

    def __init__(self) -> None:
        self.functions: dict[str, Callable[..., Any]] = {}

    def method(self, name: str) -> Callable[[F], F]:
        """Register the decorated function as RPC method ``name`` (the function is
        returned unchanged)."""

        def decorator(func: F) -> F:
            if name in self.functions:
                raise ValueError(f"RPC method {name!r} is already in this table")
            self.functions[name] = func
            return func

        return decorator

    def bind(self, methods: RpcMethods, node: Any) -> None:
        """Expose every method of this table on ``methods``, running on ``node``."""
        for name, func in self.functions.items():
            methods.register(name, partial(func, node))
