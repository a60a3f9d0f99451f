"""A node as its operator runs it: settings from DATADIR/o2ocli.toml, Prometheus
metrics scraped while it seals, JSON log lines, the sync line of ``node status``,
and a restart on the same RPC port (one node for the whole module)."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from o2ocli.rpc.client import RpcClient
from o2ocli.rpc.errors import RpcError

from .framework import NodeProcess, free_port, wait_until


@pytest.fixture(scope="module")
def ops_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    datadir: Path = tmp_path_factory.mktemp("ops") / "node"
    datadir.mkdir()
    port = free_port()
    (datadir / "o2ocli.toml").write_text(
        f'metrics-listen = "127.0.0.1:{port}"\n'
        "log-json = true\n"
        f'log-file = "{datadir / "node.log"}"\n'
    )
    node = NodeProcess(datadir, "ops")
    node.metrics_url = f"http://127.0.0.1:{port}/metrics"  # type: ignore[attr-defined]
    node.start("--dev")
    yield node
    node.kill()


def scrape(node: NodeProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics as {(name, sorted labels): value}."""
    with urllib.request.urlopen(node.metrics_url, timeout=30) as reply:  # type: ignore[attr-defined]
        assert reply.headers["Content-Type"].startswith("text/plain")
        text = reply.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_move_while_the_node_seals(ops_node: NodeProcess):
    node = ops_node
    node.wait_height(2)
    first = scrape(node)
    assert first[("o2o_validator", ())] == 1
    assert first[("o2o_tip_height", ())] >= 2
    assert first[("o2o_blocks_sealed_total", ())] >= 2
    assert first[("o2o_block_connect_seconds_count", ())] >= 2
    assert first[("o2o_peers", (("direction", "inbound"),))] == 0
    assert first[("o2o_sync_progress", ())] == 1.0
    calls = first.get(("o2o_rpc_requests_total", (("method", "getblockcount"),)), 0)
    for _ in range(3):
        node.rpc("getblockcount")
    tip = first[("o2o_tip_height", ())]
    later = wait_until(lambda: (s := scrape(node))[("o2o_tip_height", ())] > tip and s,
                       30, "the scraped tip height to grow")
    assert later[("o2o_rpc_requests_total", (("method", "getblockcount"),))] >= calls + 3
    assert later[("o2o_rpc_request_seconds_count", (("method", "getblockcount"),))] >= calls + 3
    assert later[("o2o_blocks_sealed_total", ())] > first[("o2o_blocks_sealed_total", ())]
    assert later[("o2o_finalized_height", ())] >= first[("o2o_finalized_height", ())]
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(node.metrics_url.replace("/metrics", "/"), timeout=30)  # type: ignore[attr-defined]
    assert missing.value.code == 404


def test_metrics_count_accepted_and_refused_transactions(ops_node: NodeProcess):
    node = ops_node
    before = scrape(node)
    address = node.rpc("getinfo")["validator"]
    sent = node.cli_json("-w", "dev", "wallet", "send", "--to", address, "--amount", "1")
    raw = node.rpc("getrawtx", sent["txid"])
    with pytest.raises(RpcError):
        node.rpc("sendrawtx", raw)  # the same transaction again: refused
    after = scrape(node)
    assert after[("o2o_txs_accepted_total", ())] == before[("o2o_txs_accepted_total", ())] + 1
    refused = {labels: value for (name, labels), value in after.items()
               if name == "o2o_txs_refused_total"}
    assert sum(refused.values()) >= 1, after
    assert all(labels[0][0] == "reason" for labels in refused)
    # Verified when it entered the mempool: its block's connect is a cache hit.
    hits = ("o2o_signature_cache_hits_total", ())
    wait_until(lambda: scrape(node)[hits] > before[hits], 30,
               "the sealed block's signature to be a cache hit")
    assert ("o2o_signatures_verified_ahead_total", ()) in after


def test_status_shows_blocks_against_headers(ops_node: NodeProcess):
    status = ops_node.cli_json("node", "status")
    assert status["header_height"] >= status["height"]
    assert status["verification_progress"] == 1.0
    assert status["sync_eta_seconds"] is None  # not syncing
    text = ops_node.cli("node", "status").stdout
    assert "% verified)" in text and " headers " in text


def test_log_is_json_lines_with_a_line_per_sealed_block(ops_node: NodeProcess):
    lines = (ops_node.datadir / "node.log").read_text().splitlines()
    entries = [json.loads(line) for line in lines]
    assert {"time", "level", "logger", "message"} <= entries[0].keys()
    assert any(e["message"].startswith("sealed block ") for e in entries)
    assert all(e["level"] != "debug" for e in entries)  # --log-level info by default


def test_restart_keeps_the_same_rpc_port(ops_node: NodeProcess):
    node = ops_node
    port = node.rpc_port
    # A kept-alive RPC connection that the server closes at shutdown leaves the
    # server's side of it in TIME_WAIT on the RPC port.
    client = RpcClient(f"http://127.0.0.1:{port}", cookie_path=node.datadir / ".cookie")
    client.call("getinfo")
    assert node.stop() == 0
    started = time.monotonic()
    node.start("--dev")
    assert node.info()["rpc"] == f"http://127.0.0.1:{port}"
    height = node.height()
    node.kill()  # no clean shutdown at all
    node.start("--dev")
    assert time.monotonic() - started < 60
    assert node.info()["rpc"] == f"http://127.0.0.1:{port}"
    node.wait_height(height + 1)


def test_detached_node_logs_only_json_lines_to_node_log(ops_node: NodeProcess):
    node = ops_node
    node.kill()
    starts_before = (node.datadir / "node.log").read_text().count('"node started:')
    config = node.datadir / "o2ocli.toml"
    config.write_text(config.read_text() + "detach = true\n")  # the child must not detach again
    started = node.cli("node", "start", "--dev",
                       "--rpc-listen", f"127.0.0.1:{node.rpc_port}", "--no-listen")
    info = node.info() or {}
    try:
        assert started.returncode == 0, started.stderr
        height = node.height()
        node.wait_height(height + 1)
        assert node.cli("node", "stop").returncode == 0
    finally:
        pid = info.get("pid")
        if isinstance(pid, int) and node.info():
            os.kill(pid, signal.SIGKILL)
    lines = (node.datadir / "node.log").read_text().splitlines()
    entries = [json.loads(line) for line in lines]  # the dev-mode warning too
    starts = sum(e["message"].startswith("node started:") for e in entries)
    assert starts == starts_before + 1  # one background node, not a chain of them
    assert any("dev mode" in e["message"] and e["level"] == "warning" for e in entries)
    assert entries[-1]["message"] == "node stopped; database closed"
