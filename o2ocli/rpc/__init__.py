"""JSON-RPC 2.0 transport: the node's server (:mod:`o2ocli.rpc.server`) and the CLI's client.

Only the light, stdlib-only modules are imported here; import the aiohttp-based server
explicitly with ``from o2ocli.rpc.server import RpcServer, RpcMethods``.
"""

from .client import RpcClient
from .errors import NodeUnreachable, RpcAuthError, RpcError

__all__ = ["NodeUnreachable", "RpcAuthError", "RpcClient", "RpcError"]
