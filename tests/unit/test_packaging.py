"""Packaging: every subpackage is listed in setup.cfg, and the chain specs ship."""

from __future__ import annotations

import configparser
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_subpackage_is_listed_in_setup_cfg():
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    listed = set(config["options"]["packages"].split())
    found = {
        ".".join(p.parent.relative_to(REPO).parts)
        for p in (REPO / "o2ocli").rglob("__init__.py")
    }
    found.add("o2ocli.chaindata")
    assert found == listed


def test_chaindata_maps_to_the_top_level_folder():
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    assert "o2ocli.chaindata = chaindata" in config["options"]["package_dir"]
    assert (REPO / "chaindata" / "devnet.json").is_file()
    assert (REPO / "chaindata" / "testnet.json").is_file()
