"""Fixtures for functional tests: node processes that are always cleaned up."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .framework import NodeProcess


@pytest.fixture
def node_factory(tmp_path: Path) -> Iterator:
    """``make(name) -> NodeProcess``; every node is killed at teardown."""
    nodes: list[NodeProcess] = []

    def make(name: str = "node") -> NodeProcess:
        node = NodeProcess(tmp_path / name, name)
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        node.kill()
