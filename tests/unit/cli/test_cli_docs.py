"""The command line: version, help, and every command documented."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
from click.testing import CliRunner

from o2ocli import __version__
from o2ocli.cli.main import cli

REPO = Path(__file__).resolve().parents[3]


def walk(command: click.Command, path: tuple[str, ...] = ()):
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from walk(sub, (*path, name))


def test_version_runs_as_a_process():
    out = subprocess.run(
        [sys.executable, "-m", "o2ocli", "--version"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0
    assert out.stdout.strip() == f"o2ocli, version {__version__}"


def test_unknown_command_is_a_usage_error():
    result = CliRunner().invoke(cli, ["no-such-command"])
    assert result.exit_code == 2
    assert "No such command" in result.output


def test_every_command_has_help_with_an_example_and_a_man_page():
    for path, _command in walk(cli):
        result = CliRunner().invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, path
        assert "Example" in result.output, f"{' '.join(path) or 'o2ocli'} --help has no example"
        page = "o2ocli" if not path else f"o2ocli-{path[0]}"
        assert (REPO / "man" / f"{page}.1").is_file(), f"no man page man/{page}.1"
        if path:
            text = (REPO / "man" / f"{page}.1").read_text().replace("\\-", "-")
            assert path[-1] in text, f"man/{page}.1 does not mention {path[-1]}"
