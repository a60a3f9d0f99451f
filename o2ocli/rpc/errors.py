"""JSON-RPC error codes and the exceptions shared by the RPC server and client.

Standard library only: the CLI imports this module on every command.
"""

from __future__ import annotations

from typing import Any

# --- JSON-RPC 2.0 standard codes -----------------------------------------------------------
PARSE_ERROR = -32700
"""The body is not valid JSON."""
INVALID_REQUEST = -32600
"""The JSON is not a valid JSON-RPC 2.0 request (also used for HTTP-level refusals)."""
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
"""Wrong number of parameters, unknown parameter name, or a bad parameter value."""
INTERNAL_ERROR = -32603
"""An unexpected failure inside the node (details in the node log), or a malformed response."""

# --- Our own codes (numbered like bitcoind's) ----------------------------------------------
MISC_ERROR = -1
INVALID_ADDRESS = -5
NOT_FOUND = -8
"""Unknown block or transaction."""
DESERIALIZATION_ERROR = -22
TX_MISSING_INPUTS = -25
TX_REJECTED = -26
"""Transaction rejected; ``data`` is ``{"reason": <stable machine-readable reason>}``."""
TX_ALREADY_KNOWN = -27
IN_WARMUP = -28

ERROR_NAMES: dict[int, str] = {
    PARSE_ERROR: "PARSE_ERROR",
    INVALID_REQUEST: "INVALID_REQUEST",
    METHOD_NOT_FOUND: "METHOD_NOT_FOUND",
    INVALID_PARAMS: "INVALID_PARAMS",
    INTERNAL_ERROR: "INTERNAL_ERROR",
    MISC_ERROR: "MISC_ERROR",
    INVALID_ADDRESS: "INVALID_ADDRESS",
    NOT_FOUND: "NOT_FOUND",
    DESERIALIZATION_ERROR: "DESERIALIZATION_ERROR",
    TX_MISSING_INPUTS: "TX_MISSING_INPUTS",
    TX_REJECTED: "TX_REJECTED",
    TX_ALREADY_KNOWN: "TX_ALREADY_KNOWN",
    IN_WARMUP: "IN_WARMUP",
}
"""Symbolic name of each known code (for display)."""


class RpcError(Exception):
    """A JSON-RPC error: raised by methods on the server, raised by the client on an error reply.

    ``data`` must be JSON-serializable (or ``None``, in which case it is omitted on the wire).
    """

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(code, message, data)
        self.code = code
        self.message = message
        self.data = data

    def __str__(self) -> str:
        return f"{self.message} (code {self.code})"

    def __repr__(self) -> str:
        return f"RpcError({self.code!r}, {self.message!r}, {self.data!r})"

    def to_dict(self) -> dict[str, Any]:
        """The ``error`` member of a JSON-RPC response."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error

    @classmethod
    def from_dict(cls, error: Any) -> RpcError:
        """Rebuild from the ``error`` member of a response (malformed → ``INTERNAL_ERROR``)."""
        if (
            isinstance(error, dict)
            and isinstance(error.get("code"), int)
            and not isinstance(error.get("code"), bool)
            and isinstance(error.get("message"), str)
        ):
            return cls(error["code"], error["message"], error.get("data"))
        return cls(INTERNAL_ERROR, f"malformed error object in response: {error!r:.200}")


def tx_rejected(reason: str, message: str | None = None) -> RpcError:
    """``TX_REJECTED`` with the stable machine ``reason`` in ``data``."""
    return RpcError(TX_REJECTED, message or f"transaction rejected: {reason}", {"reason": reason})


class NodeUnreachable(Exception):
    """No node answers (connection refused, timeout, unknown host, or no cookie file)."""


class RpcAuthError(Exception):
    """The node refused our credentials (HTTP 401): stale cookie or wrong user/password."""
