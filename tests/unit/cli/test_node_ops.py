"""``node start`` for operators, in process: the config file and its precedence,
``--print-config``, log rotation and JSON lines, and the RPC port checks."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from o2ocli.cli.main import cli
from o2ocli.node.logsetup import configure_logging
from o2ocli.node.nodeconfig import port_free


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


def print_config(datadir: Path, *args: str) -> dict:
    result = CliRunner().invoke(
        cli, ["--json", "--datadir", str(datadir), "node", "start", "--print-config", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_config_file_sets_options_and_the_command_line_wins(tmp_path: Path):
    (tmp_path / "o2ocli.toml").write_text(
        'rpc-listen = "127.0.0.1:19500"\n'
        'connect = ["10.0.0.2:19444", "10.0.0.3:19444"]\n'
        "no-discover = true\n"
        'log-level = "warning"\n'
        "max_inbound = 8\n"  # the underscore spelling is accepted too
        'validator-key = "keys/validator.key"\n'
    )
    data = print_config(tmp_path, "--log-level", "debug")
    settings, sources = data["settings"], data["sources"]
    assert settings["rpc-listen"] == "127.0.0.1:19500"
    assert settings["connect"] == ["10.0.0.2:19444", "10.0.0.3:19444"]
    assert settings["no-discover"] is True
    assert settings["max-inbound"] == 8
    assert sources["rpc-listen"] == str(tmp_path / "o2ocli.toml")
    assert settings["log-level"] == "debug"
    assert sources["log-level"] == "command line"
    assert settings["http-rate-limit"] == 20.0
    assert sources["http-rate-limit"] == "default"
    assert "print-config" not in settings
    assert settings["validator-key"] == str(tmp_path / "keys" / "validator.key")


def test_print_config_without_a_file_shows_the_defaults(tmp_path: Path):
    result = CliRunner().invoke(cli, ["--datadir", str(tmp_path), "node", "start",
                                      "--print-config"])
    assert result.exit_code == 0, result.output
    assert "(absent)" in result.output
    assert "max-inbound = 32    # default" in result.output
    assert "metrics-listen = (unset)    # default" in result.output
    assert not (tmp_path / "chaindata").exists()  # printed, nothing started


@pytest.mark.parametrize(("text", "needle"), [
    ("rpc-lisen = \"127.0.0.1:1\"\n", "unknown key 'rpc-lisen'"),
    ("print-config = true\n", "unknown key 'print-config'"),
    ("no-discover = \"yes\"\n", "key 'no-discover' must be true or false"),
    ("listen = [\"a:1\", \"b:2\"]\n", "key 'listen' takes one value"),
    ("[connect]\nx = 1\n", "key 'connect' must be a value"),
    ("dev = \n", "is not valid TOML"),
])
def test_bad_config_file_is_an_error_naming_the_file_and_key(tmp_path: Path, text: str,
                                                              needle: str):
    (tmp_path / "o2ocli.toml").write_text(text)
    result = CliRunner().invoke(cli, ["--datadir", str(tmp_path), "node", "start",
                                      "--print-config"])
    assert result.exit_code == 1
    assert needle in result.stderr
    assert str(tmp_path / "o2ocli.toml") in result.stderr
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize(("text", "needle"), [
    ("max-inbound = 0\n", "key 'max-inbound': 0 is not in the range 1<=x<=1000"),
    ('log-level = "loud"\n', "key 'log-level': 'loud' is not one of"),
])
def test_bad_value_in_config_file_is_a_usage_error_naming_the_key(tmp_path: Path, text: str,
                                                                  needle: str):
    (tmp_path / "o2ocli.toml").write_text(text)
    result = CliRunner().invoke(cli, ["--datadir", str(tmp_path), "node", "start",
                                      "--print-config"])
    assert result.exit_code == 2
    assert needle in result.stderr
    assert str(tmp_path / "o2ocli.toml") in result.stderr
    helped = CliRunner().invoke(cli, ["--datadir", str(tmp_path), "node", "start", "--help"])
    assert helped.exit_code == 0  # a broken file does not hide the help


def test_log_file_rotates_by_size(tmp_path: Path, restore_logging: None):
    log_file = tmp_path / "node.log"
    configure_logging("info", file=log_file, max_bytes=2000, backups=3, stderr=False)
    log = logging.getLogger("o2ocli.test")
    for i in range(400):
        log.info("line %d of a log that outgrows its file", i)
    log.debug("not written at info level")
    rotated = sorted(p.name for p in tmp_path.iterdir())
    assert rotated == ["node.log", "node.log.1", "node.log.2", "node.log.3"]
    assert all((tmp_path / name).stat().st_size <= 2000 for name in rotated)
    assert "line 399 of" in log_file.read_text()
    assert "not written" not in "".join((tmp_path / n).read_text() for n in rotated)


def test_log_json_writes_one_object_per_line(tmp_path: Path, restore_logging: None):
    log_file = tmp_path / "node.log"
    configure_logging("debug", json_lines=True, file=log_file, stderr=False)
    log = logging.getLogger("o2ocli.test")
    log.debug("block %d connected", 7)
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("it failed")
    entries = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert entries[0]["message"] == "block 7 connected"
    assert entries[0]["level"] == "debug" and entries[0]["logger"] == "o2ocli.test"
    assert entries[0]["time"].endswith("Z")
    assert "ValueError: boom" in entries[1]["exception"]
    assert len(entries) == 2


def test_port_in_time_wait_counts_as_free():
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        accepted.close()  # the server closes first: its side goes to TIME_WAIT
        client.recv(1)
        client.close()
    assert port_free("127.0.0.1", port)


def test_rpc_port_really_taken_is_an_error_naming_it(tmp_path: Path, restore_logging: None):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert not port_free("127.0.0.1", port)
        result = CliRunner().invoke(cli, ["--datadir", str(tmp_path / "dev"), "node", "start",
                                          "--dev", "--rpc-listen", f"127.0.0.1:{port}"])
    assert result.exit_code == 1
    assert f"cannot serve RPC on 127.0.0.1:{port}" in result.stderr


def test_status_during_initial_sync_shows_blocks_headers_and_eta(monkeypatch):
    from o2ocli.cli import node as node_cli

    info = {"height": 200, "tip": "ab" * 32, "finalized_height": 190, "peers": 3,
            "mempool_size": 0, "syncing": True, "sync_height": 1000, "chain_id": "o2o-x",
            "validator": None, "header_height": 1000, "verification_progress": 0.2,
            "sync_eta_seconds": 185.0}
    answers = {"getinfo": info, "getpeerinfo": {"peers": []}}
    monkeypatch.setattr(node_cli, "rpc_call", lambda ctx, method, *a: answers[method])
    result = CliRunner().invoke(cli, ["node", "status"])
    assert result.exit_code == 0, result.output
    assert "blocks     200 of 1000 headers (20.0% verified), ETA 3m05s" in result.output
    data = json.loads(CliRunner().invoke(cli, ["--json", "node", "status"]).stdout)
    assert data["sync_eta_seconds"] == 185.0 and data["header_height"] == 1000
