"""Installed documentation: the man pages land in share/man/man1 and ``man -l``
renders them; ``o2ocli --help`` shows real commands to start with."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from o2ocli.cli.main import cli

REPO = Path(__file__).resolve().parents[2]


def test_install_puts_every_man_page_in_share_man_man1_and_man_renders_it(tmp_path: Path):
    # The data-files step of `pip install .` (setup.cfg [options.data_files]), run
    # on its own so that no wheel is built.
    done = subprocess.run(
        [sys.executable, "-c", "from setuptools import setup; setup()", "-q", "install_data",
         "--install-dir", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    installed = tmp_path / "share" / "man" / "man1"
    pages = sorted(p.name for p in (REPO / "man").glob("*.1"))
    assert "o2ocli.1" in pages and "o2ocli-node.1" in pages
    assert sorted(p.name for p in installed.iterdir()) == pages
    env = {**os.environ, "MANWIDTH": "80"}
    for name in pages:
        page = installed / name
        if shutil.which("man"):
            shown = subprocess.run(["man", "-l", str(page)], capture_output=True, text=True,
                                   env=env, timeout=60)
        else:  # no man(1): render with groff, as man would
            shown = subprocess.run(["groff", "-man", "-Tutf8", str(page)],
                                   capture_output=True, text=True, timeout=60)
        assert shown.returncode == 0, (name, shown.stderr)
        text = re.sub(".\b", "", shown.stdout)  # no overstrike (bold, underline)
        assert "NAME" in text and "SYNOPSIS" in text, name
        assert name.removesuffix(".1") in text.lower(), name


def test_top_level_help_shows_real_examples():
    result = CliRunner().invoke(cli, ["--help"], prog_name="o2ocli")
    assert result.exit_code == 0
    assert "o2ocli node start --dev --detach" in result.output
    assert "o2ocli -w dev wallet balance" in result.output


def test_shell_completion_the_readme_documents_works():
    readme = (REPO / "README.rst").read_text()
    assert '_O2OCLI_COMPLETE=bash_source o2ocli' in readme
    env = {**os.environ, "_O2OCLI_COMPLETE": "bash_complete", "COMP_WORDS": "o2ocli no",
           "COMP_CWORD": "1"}
    done = subprocess.run([sys.executable, "-m", "o2ocli"], capture_output=True, text=True,
                          env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "plain,node" in done.stdout.splitlines()
