"""Datadirs, wallets, keys and the RPC cookie are the owner's only, whatever the umask;
keys can be imported without putting them on the command line."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import select
import signal
import stat
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .framework import free_port, run_cli, wait_until


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@contextlib.contextmanager
def umask(value: int) -> Iterator[None]:
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


def ok(datadir: Path, *args: str, input_text: str | None = None) -> dict:
    out = run_cli(datadir, *args, json_out=True, input_text=input_text)
    assert out.returncode == 0, f"{args}: {out.stderr}"
    return json.loads(out.stdout)


def assert_private_tree(root: Path) -> None:
    """``root`` and its folders 0700, its files 0600."""
    assert mode(root) == 0o700, f"{root}: {mode(root):04o}"
    for path in root.rglob("*"):
        want = 0o700 if path.is_dir() else 0o600
        assert mode(path) == want, f"{path}: {mode(path):04o}, want {want:04o}"


@contextlib.contextmanager
def detached_dev_node(datadir: Path) -> Iterator[dict]:
    port = free_port()
    try:
        yield ok(datadir, "node", "start", "--dev", "--dev-period", "0", "--detach",
                 "--rpc-listen", f"127.0.0.1:{port}")
    finally:
        info_path = datadir / "node.json"
        pid = json.loads(info_path.read_text())["pid"] if info_path.exists() else None
        stopped = run_cli(datadir, "node", "stop", timeout=60)
        if stopped.returncode != 0 and pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("mask", [0o022, 0o000], ids=["umask022", "umask000"])
def test_datadir_wallets_keys_and_cookie_are_private(tmp_path, mask):
    datadir = tmp_path / "home" / "o2o"
    with umask(mask):
        with detached_dev_node(datadir) as started:
            assert started["pid"] > 0
            alice = ok(datadir, "wallet", "create", "alice", "--no-passphrase")
            assert alice["name"] == "alice"
            wait_until(lambda: (datadir / ".cookie").exists(), 30, "the cookie")
            assert mode(datadir / ".cookie") == 0o600
            assert mode(datadir / "node.json") == 0o600
            assert mode(datadir / "node.log") == 0o600
        assert mode(tmp_path / "home") == 0o700
        assert mode(datadir) == 0o700
        assert mode(datadir / "chainspec.json") == 0o600
        assert mode(datadir / "validator.key") == 0o600
        assert_private_tree(datadir / "chaindata")
        assert mode(datadir / "wallets") == 0o700
        assert_private_tree(datadir / "wallets" / "dev")
        assert_private_tree(datadir / "wallets" / "alice")
        key_out = tmp_path / "keys" / "v1.key"
        init = ok(tmp_path / "other", "--chain", "devnet", "node", "init",
                  "--validator-key-out", str(key_out))
        assert init["validator_key"] == str(key_out)
        assert mode(key_out) == 0o600
        assert mode(key_out.parent) == 0o700
        assert_private_tree(tmp_path / "other")


@pytest.fixture
def offline(tmp_path) -> Path:
    """An initialised devnet datadir (no node running: wallet key commands are offline)."""
    datadir = tmp_path / "dd"
    ok(datadir, "--chain", "devnet", "node", "init")
    return datadir


def test_group_readable_wallet_warns_once_on_open(offline):
    ok(offline, "wallet", "create", "w", "--no-passphrase")
    folder = offline / "wallets" / "w"
    folder.chmod(0o755)
    out = run_cli(offline, "-w", "w", "wallet", "address")
    assert out.returncode == 0, out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("warning: ")
    assert str(folder) in lines[0] and "0755" in lines[0]
    assert f"chmod 700 {folder}" in lines[0]
    folder.chmod(0o700)
    quiet = run_cli(offline, "-w", "w", "wallet", "address")
    assert quiet.returncode == 0 and quiet.stderr == ""
    assert quiet.stdout == out.stdout


def test_import_key_from_stdin_or_key_file(offline, tmp_path):
    source = ok(offline, "wallet", "create", "source", "--no-passphrase")
    wif = ok(offline, "-w", "source", "wallet", "export-key", source["address"])["wif"]
    for name in ("viastdin", "viafile", "viaarg"):
        ok(offline, "wallet", "create", name, "--no-passphrase")

    assert ok(offline, "-w", "viastdin", "wallet", "import-key",
              input_text=wif + "\n") == {"address": source["address"]}
    key_file = tmp_path / "source.key"
    key_file.write_text(wif + "\n")
    assert ok(offline, "-w", "viafile", "wallet", "import-key",
              "--key-file", str(key_file)) == {"address": source["address"]}
    # the old form still works
    assert ok(offline, "-w", "viaarg", "wallet", "import-key", wif) == {
        "address": source["address"]}

    empty = run_cli(offline, "-w", "viastdin", "wallet", "import-key", input_text="")
    assert empty.returncode == 1
    assert empty.stderr.strip().splitlines() == [
        "error: no private key: give it on standard input, with --key-file FILE, or as WIF"]
    both = run_cli(offline, "-w", "viastdin", "wallet", "import-key", wif,
                   "--key-file", str(key_file))
    assert both.returncode == 2
    assert "not both" in both.stderr
    missing = run_cli(offline, "-w", "viastdin", "wallet", "import-key",
                      "--key-file", str(tmp_path / "nope.key"))
    assert missing.returncode == 1
    assert "cannot read key file" in missing.stderr and "Traceback" not in missing.stderr
    helptext = run_cli(offline, "wallet", "import-key", "--help")
    assert "shell history" in helptext.stdout and "--key-file" in helptext.stdout


def test_import_key_prompts_without_echo_on_a_terminal(offline):
    source = ok(offline, "wallet", "create", "source", "--no-passphrase")
    wif = ok(offline, "-w", "source", "wallet", "export-key", source["address"])["wif"]
    ok(offline, "wallet", "create", "target", "--no-passphrase")
    master, slave = pty.openpty()

    def controlling_terminal() -> None:
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(
        [sys.executable, "-m", "o2ocli", "--datadir", str(offline), "--json", "-w", "target",
         "wallet", "import-key"],
        stdin=slave, stdout=subprocess.PIPE, stderr=slave, preexec_fn=controlling_terminal,
    )
    os.close(slave)
    try:
        seen = b""
        deadline = time.monotonic() + 60
        while b"Private key (WIF):" not in seen:
            assert time.monotonic() < deadline, f"no prompt; terminal showed {seen!r}"
            if select.select([master], [], [], 0.5)[0]:
                try:
                    seen += os.read(master, 1024)
                except OSError:
                    raise AssertionError(f"exited without a prompt: {seen!r}") from None
        os.write(master, wif.encode() + b"\n")
        out, _ = proc.communicate(timeout=60)
        with contextlib.suppress(OSError):  # the terminal is gone once the process exits
            while chunk := os.read(master, 1024):
                seen += chunk
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        os.close(master)
    assert proc.returncode == 0, seen
    assert json.loads(out) == {"address": source["address"]}
    assert wif.encode() not in seen  # typed without echo
