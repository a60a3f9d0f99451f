"""Fixtures for the RPC tests (helpers in ``rpc_helpers``): servers are always stopped."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from rpc_helpers import ServerThread, make_methods

from o2ocli.rpc.server import RpcMethods


@pytest.fixture
def start_server() -> Iterator[Callable[..., ServerThread]]:
    """``start_server(methods=None, **RpcServer kwargs)``; every server is stopped at teardown."""
    started: list[ServerThread] = []

    def start(methods: RpcMethods | None = None, **kwargs: Any) -> ServerThread:
        st = ServerThread(methods if methods is not None else make_methods(), **kwargs)
        started.append(st)
        return st

    yield start
    for st in started:
        st.stop()


@pytest.fixture
def server(start_server: Callable[..., ServerThread]) -> ServerThread:
    """A server with the test methods and no authentication."""
    return start_server()
