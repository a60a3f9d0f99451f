"""Synchronous JSON-RPC 2.0 client for the node (standard library only, fast to import).

::

    client = RpcClient("http://127.0.0.1:19443", cookie_path=datadir / ".cookie")
    info = client.call("getinfo")
    block = client.call_named("getblock", blockhash=h, verbosity=2)

Credentials, first found: ``user``/``password`` arguments, the URL's userinfo
(``http://user:pass@127.0.0.1:19443``), the cookie file (re-read at every call, since the node
writes a new one at each start). Failures: :class:`RpcError` (error reply, or a malformed
one as ``INTERNAL_ERROR``), :class:`NodeUnreachable`, :class:`RpcAuthError`.
"""

from __future__ import annotations

import base64
import itertools
import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from .errors import INTERNAL_ERROR, NodeUnreachable, RpcAuthError, RpcError

__all__ = ["NodeUnreachable", "RpcAuthError", "RpcClient", "RpcError"]

_opener: Any = None


def _get_opener() -> Any:
    """A urllib opener that never uses proxies (``http_proxy`` must not capture localhost).

    ``urllib.request`` is imported here, not at module level, so that importing the client
    (done by every CLI command) stays cheap.
    """
    global _opener
    if _opener is None:
        import urllib.request

        _opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return _opener


class RpcClient:
    """Talks to one node's RPC server."""

    def __init__(
        self,
        url: str,
        *,
        cookie_path: Path | None = None,
        user: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"bad RPC URL {url!r} (expected http://host:port/)")
        if user is None and parts.username is not None:
            user = unquote(parts.username)
            if password is None and parts.password is not None:
                password = unquote(parts.password)
        netloc = parts.netloc.rpartition("@")[2]
        self.url = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
        """The endpoint, without credentials (safe to print)."""
        self.cookie_path = Path(cookie_path) if cookie_path is not None else None
        self.user = user
        self.password = password
        self.timeout = timeout
        self._ids = itertools.count(1)

    def __repr__(self) -> str:
        return f"RpcClient({self.url!r})"

    # -- public API ---------------------------------------------------------------------------

    def call(self, method: str, *params: Any) -> Any:
        """Call ``method`` with positional parameters; returns its result."""
        return self._single(method, list(params))

    def call_named(self, method: str, **params: Any) -> Any:
        """Call ``method`` with named parameters; returns its result."""
        return self._single(method, params)

    def batch(self, calls: list[tuple[str, list[Any] | dict[str, Any]]]) -> list[Any | RpcError]:
        """Send several calls in one request; results (or :class:`RpcError`) in call order.

        A failure of the whole request (unreachable, unauthorized, malformed reply, or an
        error answered for the batch as a whole) is raised instead.
        """
        if not calls:
            return []
        ids = [next(self._ids) for _ in calls]
        payload = [
            {"jsonrpc": "2.0", "id": id_, "method": method, "params": params}
            for id_, (method, params) in zip(ids, calls, strict=True)
        ]
        reply = self._post(payload)
        if isinstance(reply, dict) and "error" in reply:
            raise RpcError.from_dict(reply["error"])
        if not isinstance(reply, list):
            raise _malformed(reply)
        by_id: dict[Any, Any] = {}
        for item in reply:
            if not isinstance(item, dict) or "id" not in item:
                raise _malformed(reply)
            by_id[item["id"]] = item
        results: list[Any | RpcError] = []
        for id_, (method, _) in zip(ids, calls, strict=True):
            item = by_id.get(id_)
            if item is None:
                results.append(RpcError(INTERNAL_ERROR, f"no response to {method} in the batch"))
            else:
                try:
                    results.append(_result(item))
                except RpcError as error:
                    results.append(error)
        return results

    # -- internals ----------------------------------------------------------------------------

    def _single(self, method: str, params: list[Any] | dict[str, Any]) -> Any:
        id_ = next(self._ids)
        reply = self._post({"jsonrpc": "2.0", "id": id_, "method": method, "params": params})
        if not isinstance(reply, dict):
            raise _malformed(reply)
        if reply.get("id") != id_ and "error" not in reply:
            raise _malformed(reply)
        return _result(reply)

    def _credentials(self) -> str | None:
        if self.user is not None:
            return f"{self.user}:{self.password or ''}"
        if self.cookie_path is None:
            return None
        try:
            cookie = self.cookie_path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise NodeUnreachable(
                f"node is not running (no cookie file at {self.cookie_path})"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise RpcAuthError(f"cannot read the cookie file {self.cookie_path}: {exc}") from None
        if ":" not in cookie:
            raise RpcAuthError(f"malformed cookie file {self.cookie_path}")
        return cookie

    def _post(self, payload: Any) -> Any:
        import http.client
        import urllib.error
        import urllib.request

        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        credentials = self._credentials()
        if credentials is not None:
            token = base64.b64encode(credentials.encode()).decode("ascii")
            headers["Authorization"] = f"Basic {token}"
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with _get_opener().open(request, timeout=self.timeout) as response:
                status = response.status
                data = response.read()
        except urllib.error.HTTPError as exc:
            status = exc.code
            if status == 401:
                raise RpcAuthError(
                    f"the node at {self.url} refused our credentials (HTTP 401): the cookie "
                    "file may be stale, or the user/password is wrong"
                ) from None
            try:
                data = exc.read()
            except (OSError, http.client.HTTPException):
                data = b""
            finally:
                exc.close()
        except urllib.error.URLError as exc:
            raise self._unreachable(exc.reason) from None
        except (OSError, http.client.HTTPException) as exc:
            raise self._unreachable(exc) from None
        try:
            reply = json.loads(data)
        except ValueError:
            raise RpcError(
                INTERNAL_ERROR, f"malformed response from {self.url} (HTTP {status}): {data!r:.200}"
            ) from None
        if status != 200 and not (isinstance(reply, dict) and "error" in reply):
            raise RpcError(INTERNAL_ERROR, f"unexpected HTTP {status} from {self.url}")
        return reply

    def _unreachable(self, reason: Any) -> Exception:
        import http.client
        import socket

        if isinstance(reason, TimeoutError):
            return NodeUnreachable(f"node did not answer within {self.timeout:g} s at {self.url}")
        if isinstance(reason, socket.gaierror):
            host = urlsplit(self.url).hostname
            return NodeUnreachable(f"cannot resolve the node's host {host!r} ({self.url})")
        if isinstance(reason, ConnectionRefusedError):
            return NodeUnreachable(f"node is not running (no answer at {self.url})")
        if isinstance(reason, http.client.HTTPException | ConnectionError):
            # something listens, but the exchange broke off (node stopping?) or is not HTTP
            return NodeUnreachable(f"connection to the node at {self.url} failed: {reason!r}")
        return NodeUnreachable(f"cannot reach the node at {self.url}: {reason}")


def _malformed(reply: Any) -> RpcError:
    return RpcError(INTERNAL_ERROR, f"malformed JSON-RPC response: {reply!r:.200}")


def _result(item: dict[str, Any]) -> Any:
    """The result of one response object, or raise its error."""
    if "error" in item and item["error"] is not None:
        raise RpcError.from_dict(item["error"])
    if "result" not in item:
        raise _malformed(item)
    return item["result"]
