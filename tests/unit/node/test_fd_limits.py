"""The node's open-file budget: the soft limit is raised, RPC gets a bounded share."""

from __future__ import annotations

import resource
from collections.abc import Iterator

import pytest

from o2ocli.node.runtime import raise_fd_limit, rpc_connection_cap


@pytest.fixture
def restore_limits() -> Iterator[tuple[int, int]]:
    limits = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        yield limits
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, limits)


def test_soft_limit_is_raised_up_to_the_hard_limit(restore_limits):
    _, hard = restore_limits
    assert hard == resource.RLIM_INFINITY or hard > 64, "hard limit too low for this test"
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
    want = 300 if hard == resource.RLIM_INFINITY else min(300, hard)
    assert raise_fd_limit(target=300) == want
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == (want, hard)
    # never lowered
    assert raise_fd_limit(target=100) == want
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == (want, hard)


@pytest.mark.parametrize(("soft", "cap"), [(4096, 128), (1024, 128), (256, 32), (40, 8)])
def test_rpc_connection_cap_is_an_eighth_of_the_file_limit(restore_limits, soft, cap):
    _, hard = restore_limits
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
        cap = max(8, min(128, soft // 8))
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert rpc_connection_cap() == cap
