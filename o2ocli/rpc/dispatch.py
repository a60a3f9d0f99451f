"""JSON-RPC 2.0 without HTTP: the method registry and request dispatch.

:class:`RpcMethods` holds the callables exposed over JSON-RPC and turns a
request body into its reply (:meth:`RpcMethods.handle_body`); the HTTP side
(:mod:`.server`) only authenticates, reads the body and writes the reply.

Protocol
--------
* A request is ``{"jsonrpc": "2.0", "id": <str|number|null>, "method": <str>,
  "params": <list|object>}``; ``params`` may be omitted (no arguments), given by position
  (list) or by name (object). A request without ``id`` is a notification: it runs, but gets
  no response entry.
* A batch is a JSON array of requests, answered by an array of the non-notification
  responses, in request order. An empty batch is one ``-32600`` error; a batch of only
  notifications (like a single notification) is answered ``204 No Content``. Batches are
  capped (``max_batch``, 10,000 by default).
* A response is ``{"jsonrpc": "2.0", "id": ..., "result": ...}`` or
  ``{"jsonrpc": "2.0", "id": ..., "error": {"code": ..., "message": ...[, "data": ...]}}``,
  always with HTTP 200 for JSON-RPC-level errors. Codes: see :mod:`o2ocli.rpc.errors`
  (standard -327xx codes, plus bitcoind-like ones such as -26 ``TX_REJECTED``, whose
  ``data`` is ``{"reason": ...}``). Unexpected failures are ``-32603`` with a short
  message; the traceback goes to the node log only.

Methods
-------
Methods live in an :class:`RpcMethods` registry; they may be plain or ``async`` callables and
run on the server's event loop (plain ones are called directly, so they must be fast). They
return JSON-serializable values (hex strings, never ``bytes``) and signal failures by raising
:class:`RpcError`. ``await methods.call(name, params)`` runs one without HTTP.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from .errors import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    RpcError,
)

__all__ = ["RpcMethods", "DEFAULT_MAX_BATCH", "error_reply"]

log = logging.getLogger("o2ocli.rpc.server")

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_MAX_BATCH = 10_000

_NO_ID = object()
"""Marks a request without an ``id`` member (a notification)."""

_P = inspect.Parameter


def _dumps(obj: Any) -> str:
    """Compact, strict JSON (``NaN``/``Infinity`` are not JSON and are refused)."""
    return json.dumps(obj, separators=(",", ":"), allow_nan=False)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON constant {name}")


def _finite_float(text: str) -> float:
    """A JSON number with a fraction or exponent; one that overflows (``1e999``)
    is refused, as it could not be written back (an id is echoed)."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:32]} is out of range")
    return value


def _loads(body: bytes) -> Any:
    """Parse a request body; any failure is a ``ValueError``."""
    try:
        return json.loads(body, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


# ---------------------------------------------------------------------------------------------
# Method registry
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Method:
    name: str
    func: Callable[..., Any]
    signature: inspect.Signature
    by_keyword: bool
    """Call with ``func(**arguments)`` (when ``params=`` renamed/reordered the parameters)."""

    def usage(self) -> str:
        parts = [self.name]
        for p in self.signature.parameters.values():
            if p.kind is _P.VAR_POSITIONAL:
                parts.append(f"[{p.name}...]")
            elif p.kind is _P.VAR_KEYWORD:
                parts.append(f"[{p.name}=...]")
            elif p.default is _P.empty:
                parts.append(f"<{p.name}>" if p.kind is not _P.KEYWORD_ONLY else f"{p.name}=<...>")
            else:
                try:
                    default = _dumps(p.default)
                except (TypeError, ValueError):
                    default = repr(p.default)
                parts.append(f"[{p.name}={default}]")
        return " ".join(parts)


class RpcMethods:
    """Registry of the callables exposed over JSON-RPC, and dispatcher.

    ::

        methods = RpcMethods()

        @methods.method("getblock")
        async def getblock(blockhash: str, verbosity: int = 1) -> dict: ...

        methods.register("getinfo", node.getinfo)
    """

    def __init__(self) -> None:
        self._methods: dict[str, _Method] = {}
        self.observe: Callable[[str, float], None] | None = None
        """Called with the method name and the seconds each call of a registered
        method took (failed calls too); the node's metrics set it."""

    # -- registration -------------------------------------------------------------------------

    def register(
        self, name: str, func: Callable[..., Any], *, params: list[str] | None = None
    ) -> None:
        """Expose ``func`` as ``name``.

        The accepted parameters come from ``inspect.signature(func)``. ``params`` instead lists
        the exposed parameter names in positional order: each must be a parameter of ``func``
        that can be passed by keyword (or ``func`` takes ``**kwargs``), and the parameters of
        ``func`` left out must have defaults. Raises ``ValueError`` on a duplicate name or an
        impossible ``params``.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"RPC method name must be a non-empty string, not {name!r}")
        if name in self._methods:
            raise ValueError(f"RPC method {name!r} is already registered")
        if not callable(func):
            raise TypeError(f"RPC method {name!r}: {func!r} is not callable")
        try:
            signature = inspect.signature(func)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"RPC method {name!r}: cannot read the signature: {exc}") from exc
        by_keyword = False
        if params is not None:
            signature = self._exposed_signature(name, signature, params)
            by_keyword = True
        self._methods[name] = _Method(name, func, signature, by_keyword)

    @staticmethod
    def _exposed_signature(
        name: str, signature: inspect.Signature, params: list[str]
    ) -> inspect.Signature:
        if isinstance(params, str) or len(set(params)) != len(params):
            raise ValueError(f"RPC method {name!r}: params must be a list of distinct names")
        original = signature.parameters
        takes_kwargs = any(p.kind is _P.VAR_KEYWORD for p in original.values())
        exposed = []
        for pname in params:
            if not isinstance(pname, str) or not pname.isidentifier():
                raise ValueError(f"RPC method {name!r}: bad parameter name {pname!r}")
            p = original.get(pname)
            if p is None:
                if not takes_kwargs:
                    raise ValueError(f"RPC method {name!r}: function has no parameter {pname!r}")
                default = _P.empty
            elif p.kind in (_P.POSITIONAL_OR_KEYWORD, _P.KEYWORD_ONLY):
                default = p.default
            else:
                raise ValueError(
                    f"RPC method {name!r}: parameter {pname!r} cannot be passed by name"
                )
            exposed.append(_P(pname, _P.POSITIONAL_OR_KEYWORD, default=default))
        for p in original.values():
            if (
                p.name not in params
                and p.default is _P.empty
                and p.kind not in (_P.VAR_POSITIONAL, _P.VAR_KEYWORD)
            ):
                raise ValueError(
                    f"RPC method {name!r}: parameter {p.name!r} is not exposed and has no default"
                )
        try:
            return inspect.Signature(exposed)
        except ValueError as exc:
            raise ValueError(f"RPC method {name!r}: {exc}") from exc

    def method(
        self, name: str | Callable[..., Any] | None = None, *, params: list[str] | None = None
    ) -> Any:
        """Decorator form of :meth:`register`: ``@methods.method("getblock")``.

        ``@methods.method()`` and bare ``@methods.method`` use the function's ``__name__``.
        The function is returned unchanged.
        """
        if callable(name):
            func = name
            self.register(func.__name__, func, params=params)
            return func

        def decorator(func: F) -> F:
            self.register(name or func.__name__, func, params=params)
            return func

        return decorator

    # -- introspection ------------------------------------------------------------------------

    def __contains__(self, name: object) -> bool:
        return name in self._methods

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._methods))

    def __len__(self) -> int:
        return len(self._methods)

    def names(self) -> list[str]:
        """Registered method names, sorted."""
        return sorted(self._methods)

    def usage(self, name: str) -> str:
        """One-line usage, e.g. ``getblock <blockhash> [verbosity=1]``; ``KeyError`` if unknown."""
        return self._methods[name].usage()

    # -- dispatch -----------------------------------------------------------------------------

    def _bind(self, m: _Method, params: list[Any] | dict[str, Any]) -> inspect.BoundArguments:
        def invalid(detail: str) -> RpcError:
            return RpcError(INVALID_PARAMS, f"{m.name}: {detail} (usage: {m.usage()})")

        plist = list(m.signature.parameters.values())
        kinds = {p.kind for p in plist}
        try:
            if isinstance(params, list):
                if _P.VAR_POSITIONAL not in kinds:
                    most = sum(
                        p.kind in (_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD) for p in plist
                    )
                    if len(params) > most:
                        raise invalid(
                            f"too many parameters: got {len(params)}, takes at most {most}"
                        )
                return m.signature.bind(*params)
            if _P.VAR_KEYWORD not in kinds:
                accepted = [
                    p.name for p in plist if p.kind in (_P.POSITIONAL_OR_KEYWORD, _P.KEYWORD_ONLY)
                ]
                unknown = [k for k in params if k not in accepted]
                if unknown:
                    names = ", ".join(repr(k) for k in unknown)
                    raise invalid(
                        f"unknown parameter {names} (accepted: {', '.join(accepted) or 'none'})"
                    )
            return m.signature.bind(**params)
        except TypeError as exc:
            detail = str(exc).replace(
                "missing a required argument: ", "missing required parameter "
            )
            raise invalid(detail) from None

    async def _invoke(self, name: str, params: list[Any] | dict[str, Any] | None) -> Any:
        """Run ``name``; every failure is an :class:`RpcError`. The result is not checked."""
        m = self._methods.get(name)
        if m is None:
            raise RpcError(METHOD_NOT_FOUND, f"Method not found: {name}")
        if params is None:
            params = []
        if not isinstance(params, list | dict):
            raise RpcError(INVALID_REQUEST, "params must be an array or an object")
        observe = self.observe
        if observe is None:
            return await self._run(m, params)
        started = time.perf_counter()
        try:
            return await self._run(m, params)
        finally:
            observe(name, time.perf_counter() - started)

    async def _run(self, m: _Method, params: list[Any] | dict[str, Any]) -> Any:
        name = m.name
        bound = self._bind(m, params)
        try:
            if m.by_keyword:
                result = m.func(**bound.arguments)
            else:
                result = m.func(*bound.args, **bound.kwargs)
            if inspect.isawaitable(result):
                result = await result
        except RpcError:
            raise
        except Exception as exc:
            log.exception("RPC method %s failed", name)
            raise RpcError(
                INTERNAL_ERROR, f"internal error in {name} ({type(exc).__name__}); see the node log"
            ) from exc
        return result

    async def call(self, name: str, params: list[Any] | dict[str, Any] | None = None) -> Any:
        """Run method ``name`` in-process, exactly as over HTTP, and return its result.

        Raises :class:`RpcError` for everything a client would see as an error: unknown
        method, invalid params, an error raised by the method, an unexpected exception
        (``INTERNAL_ERROR``, chained) or a result that is not JSON-serializable.
        """
        result = await self._invoke(name, params)
        try:
            _dumps(result)
        except (TypeError, ValueError) as exc:
            raise _not_serializable(name, exc) from exc
        return result

    def call_sync(self, name: str, params: list[Any] | dict[str, Any] | None = None) -> Any:
        """:meth:`call` from synchronous code with no running event loop (tests, scripts)."""
        return asyncio.run(self.call(name, params))

    # -- requests ---------------------------------------------------------------------------


    async def handle_body(self, body: bytes, max_batch: int = DEFAULT_MAX_BATCH) -> str | None:
        """The JSON reply to a request body (one request or a batch of at most
        ``max_batch``), or ``None`` when nothing is to be answered."""
        try:
            payload = _loads(body)
        except ValueError as exc:
            error = RpcError(PARSE_ERROR, f"Parse error: {exc}")
            return _dumps(_error_response(None, error))
        if isinstance(payload, list):
            if not payload:
                error = RpcError(INVALID_REQUEST, "Invalid Request: empty batch")
                return _dumps(_error_response(None, error))
            if len(payload) > max_batch:
                error = RpcError(
                    INVALID_REQUEST,
                    f"Invalid Request: batch of {len(payload)} requests (max {max_batch})",
                )
                return _dumps(_error_response(None, error))
            parts = []
            for item in payload:
                part = await self._handle_one(item)
                if part is not None:
                    parts.append(part)
            return "[" + ",".join(parts) + "]" if parts else None
        return await self._handle_one(payload)

    async def _handle_one(self, request: Any) -> str | None:
        """Serialized response to one request object, ``None`` for a notification."""
        if not isinstance(request, dict):
            error = RpcError(INVALID_REQUEST, "Invalid Request: not a JSON object")
            return _dumps(_error_response(None, error))
        id_ = request.get("id", _NO_ID)
        reply_id = id_ if id_ is not _NO_ID and _valid_id(id_) else None
        problem = None
        if request.get("jsonrpc") != "2.0":
            problem = 'jsonrpc must be "2.0"'
        elif not isinstance(request.get("method"), str):
            problem = "method must be a string"
        elif "params" in request and not isinstance(request["params"], list | dict):
            problem = "params must be an array or an object"
        elif id_ is not _NO_ID and not _valid_id(id_):
            problem = "id must be a string, a number or null"
        if problem is not None:
            error = RpcError(INVALID_REQUEST, f"Invalid Request: {problem}")
            return _dumps(_error_response(reply_id, error))

        name = request["method"]
        try:
            result = await self._invoke(name, request.get("params"))
        except RpcError as error:
            if id_ is _NO_ID:
                log.debug("RPC notification %s failed: %s", name, error)
                return None
            try:
                return _dumps(_error_response(id_, error))
            except (TypeError, ValueError) as exc:
                log.error("RPC method %s raised an error with unserializable data: %s", name, exc)
                return _dumps(_error_response(id_, RpcError(error.code, error.message)))
        if id_ is _NO_ID:
            return None
        try:
            return _dumps({"jsonrpc": "2.0", "id": id_, "result": result})
        except (TypeError, ValueError) as exc:
            return _dumps(_error_response(id_, _not_serializable(name, exc)))


def _not_serializable(name: str, exc: Exception) -> RpcError:
    log.error("RPC method %s returned a value that is not JSON-serializable: %s", name, exc)
    return RpcError(INTERNAL_ERROR, f"internal error in {name}: result is not JSON-serializable")


def _error_response(id_: Any, error: RpcError) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "error": error.to_dict()}


def error_reply(id_: Any, error: RpcError) -> str:
    """The serialized JSON-RPC error response to request ``id_``."""
    return _dumps(_error_response(id_, error))


def _valid_id(id_: Any) -> bool:
    return id_ is None or (isinstance(id_, str | int | float) and not isinstance(id_, bool))
