"""Global options that are wrong say so, naming what is wrong, before any command runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from o2ocli.cli.main import cli


def run(*args: str):
    return CliRunner().invoke(cli, list(args), prog_name="o2ocli")


def test_chain_that_does_not_exist_is_a_usage_error(tmp_path: Path):
    result = run("--datadir", str(tmp_path), "--chain", "nosuchnet", "node", "status")
    assert result.exit_code == 2
    assert "no chain spec named 'nosuchnet'" in result.stderr
    assert "devnet, testnet" in result.stderr
    missing = tmp_path / "nope.json"
    result = run("--datadir", str(tmp_path), "--chain", str(missing), "chain", "info")
    assert result.exit_code == 2
    assert f"chain spec file {missing} does not exist" in result.stderr


def test_chain_spec_file_and_builtin_names_pass(tmp_path: Path):
    result = run("--datadir", str(tmp_path), "--chain", "testnet", "wallet", "list")
    assert result.exit_code == 0, result.output
    assert f"no wallets in {tmp_path}" in result.stdout


def test_datadir_that_is_a_file_is_named(tmp_path: Path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    result = run("--datadir", str(afile), "wallet", "list")
    assert result.exit_code == 2
    assert f"{afile} is a file, not a directory" in result.stderr


def test_missing_datadir_is_named_by_wallet_commands(tmp_path: Path):
    missing = tmp_path / "missing"
    result = run("--datadir", str(missing), "wallet", "balance")
    assert result.exit_code == 1
    assert f"datadir {missing} does not exist" in result.stderr
    result = run("--datadir", str(missing), "node", "status")
    assert result.exit_code == 3
    assert str(missing) in result.stderr


@pytest.mark.parametrize("url", ["http://127.0.0.1:99999", "http://127.0.0.1:0",
                                 "ftp://127.0.0.1:1", "127.0.0.1:19443"])
def test_bad_rpc_url_is_a_usage_error(tmp_path: Path, url: str):
    result = run("--datadir", str(tmp_path), "--rpc", url, "chain", "info")
    assert result.exit_code == 2
    assert "Invalid value for '--rpc'" in result.stderr
    assert repr(url) in result.stderr


@pytest.mark.parametrize(("args", "example"), [
    (["node", "status", "--json"], "o2ocli --json node status"),
    (["wallet", "balance", "-w", "shop"], "o2ocli -w NAME wallet balance"),
    (["chain", "info", "--datadir", "/tmp"], "o2ocli --datadir DIR chain info"),
])
def test_global_option_after_the_command_gets_a_hint(args: list[str], example: str):
    result = run(*args)
    assert result.exit_code == 2
    assert "is a global option: put it before the command" in result.stderr
    assert example in result.stderr


def test_unknown_option_that_is_not_global_gets_no_hint():
    result = run("node", "status", "--bogus")
    assert result.exit_code == 2
    assert "global option" not in result.stderr


def test_trace_show_without_a_wallet_suggests_merchant(tmp_path: Path):
    result = run("--datadir", str(tmp_path), "trace", "show", "TEA-2026-001")
    assert result.exit_code == 1
    assert "--merchant ADDRESS" in result.stderr
    assert result.stderr.count("\n") == 1
