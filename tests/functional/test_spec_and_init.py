"""A new network as a user sets it up: ``chain spec new``, ``node init``, and a
validator node of a 3-validator chain started on its own (real processes)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from o2ocli.chainspec import ChainSpec, load_spec
from o2ocli.consensus.poa import DIFF_NO_TURN, seal_header
from o2ocli.core.block import Block, BlockHeader, merkle_root
from o2ocli.crypto.address import decode_wif
from o2ocli.crypto.keys import PrivateKey
from o2ocli.node.datadir import read_key_file
from o2ocli.p2p.messages import BlockMsg, encode_frame

from .framework import free_port, run_cli, wait_until
from .test_p2p_misbehaviour import RawPeer

SPEC_KEYS = {"spec", "validators", "validator_keys", "funds_key"}


def spec_new(tmp_path: Path, *extra: str, out: Path | None = None):
    out = out or tmp_path / "net"
    return run_cli(
        tmp_path / "unused", "chain", "spec", "new", "mynet", "--validators", "3",
        "--period", "2", "--out", str(out), *extra, json_out=True,
    )


@pytest.fixture
def net(tmp_path) -> tuple[Path, dict]:
    """A fresh ``mynet`` spec with 3 validator keys in tmp_path/net."""
    out = spec_new(tmp_path)
    assert out.returncode == 0, out.stderr
    return tmp_path / "net", json.loads(out.stdout)


def key_address(spec: ChainSpec, path: Path) -> str:
    secret, _ = decode_wif(path.read_text().strip(), version=spec.wif_version)
    return spec.address(PrivateKey(secret).public_key.hash160())


def init(datadir: Path, spec_file: Path | str, *extra: str):
    return run_cli(datadir, "--chain", str(spec_file), "node", "init", *extra, json_out=True)


def assert_one_error_line(out, code: int = 1) -> str:
    assert out.returncode == code, (out.returncode, out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    return lines[0]


# -------------------------------------------------------------- spec new
def test_spec_new_writes_a_loadable_spec_and_private_key_files(net):
    out_dir, result = net
    assert SPEC_KEYS <= result.keys()
    spec_file = Path(result["spec"])
    assert spec_file == out_dir / "mynet.json"
    spec = load_spec(spec_file)
    assert spec.chain_id == "o2o-mynet"
    assert spec.period == 2
    assert len(result["validators"]) == 3
    assert sorted(spec.decode_address(a) for a in result["validators"]) == list(spec.validators)

    key_files = [Path(p) for p in result["validator_keys"]]
    assert key_files == [out_dir / f"validator-{i}.key" for i in (1, 2, 3)]
    for path in [*key_files, Path(result["funds_key"])]:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
        text = path.read_text()
        assert text.endswith("\n") and text.count("\n") == 1, path
    assert [key_address(spec, p) for p in key_files] == result["validators"]
    funds = key_address(spec, Path(result["funds_key"]))
    assert spec.decode_address(funds) == spec.allocations[0][0]
    assert len({p.read_text() for p in key_files}) == 3


def test_spec_new_refuses_to_overwrite(tmp_path, net):
    out_dir, _ = net
    before = {p.name: p.read_text() for p in out_dir.iterdir()}
    again = spec_new(tmp_path)
    line = assert_one_error_line(again)
    assert "already exists" in line
    assert {p.name: p.read_text() for p in out_dir.iterdir()} == before


def test_refusal_with_json_is_also_reported_on_stdout(tmp_path, net):
    # CliError's documented --json behaviour: {"error": {"code", "message"}} on stdout.
    again = spec_new(tmp_path)
    assert again.returncode == 1
    assert again.stdout.strip(), "nothing on stdout for a --json refusal"
    error = json.loads(again.stdout)["error"]
    assert error["code"] == 1 and "already exists" in error["message"]


# ------------------------------------------------------------------ init
def test_node_init_creates_then_accepts_the_same_chain(tmp_path, net):
    out_dir, _ = net
    spec = load_spec(out_dir / "mynet.json")
    datadir = tmp_path / "node"
    first = init(datadir, out_dir / "mynet.json")
    assert first.returncode == 0, first.stderr
    data = json.loads(first.stdout)
    assert {"datadir", "chain_id", "genesis_hash"} <= data.keys()
    assert data["datadir"] == str(datadir)
    assert data["chain_id"] == "o2o-mynet"
    assert data["genesis_hash"] == spec.genesis_block().hash.hex()
    assert data["created"] is True
    assert (datadir / "chainspec.json").is_file()

    second = init(datadir, out_dir / "mynet.json")
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout) == {**data, "created": False}


def test_node_init_can_write_a_validator_key(tmp_path, net):
    out_dir, _ = net
    spec = load_spec(out_dir / "mynet.json")
    key_file = tmp_path / "keys" / "new-validator.key"
    out = init(tmp_path / "node", out_dir / "mynet.json", "--validator-key-out", str(key_file))
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert data["validator_address"] == key_address(spec, key_file)
    assert spec.decode_address(data["validator_address"]) not in spec.validators
    again = init(tmp_path / "node", out_dir / "mynet.json", "--validator-key-out", str(key_file))
    assert "already exists" in assert_one_error_line(again)


def test_node_init_with_a_malformed_spec_names_the_field(tmp_path, net):
    out_dir, _ = net
    data = json.loads((out_dir / "mynet.json").read_text())
    data["network_magic"] = "not-hex!"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    datadir = tmp_path / "node"
    out = init(datadir, bad)
    assert "network_magic" in assert_one_error_line(out)
    assert not (datadir / "chainspec.json").exists()


def test_node_init_for_another_chain_is_refused(tmp_path, net):
    out_dir, _ = net
    datadir = tmp_path / "node"
    assert init(datadir, out_dir / "mynet.json").returncode == 0
    out = init(datadir, "testnet")
    line = assert_one_error_line(out)
    assert "belongs to chain" in line and "o2o-mynet" in line
    assert load_spec(datadir / "chainspec.json").chain_id == "o2o-mynet"


# ------------------------------------------------------------------ start
def test_single_validator_of_three_seals_at_most_one_block(tmp_path, net, node_factory):
    out_dir, result = net
    spec = load_spec(out_dir / "mynet.json")
    node = node_factory("node")
    assert init(node.datadir, out_dir / "mynet.json").returncode == 0
    node.start("--validator-key", str(out_dir / "validator-1.key"))

    info = node.cli_json("chain", "info")
    assert info["chain_id"] == "o2o-mynet"
    assert sorted(info["validators"]) == sorted(result["validators"])
    assert node.cli_json("node", "status")["validator"] == result["validators"][0]

    node.wait_height(1, timeout=10)
    block = node.cli_json("chain", "block", "1")
    me = result["validators"][0]
    assert block["validator"] == me
    in_turn = spec.address(spec.validators[1 % 3])
    assert block["difficulty"] == (2 if in_turn == me else 1)

    # With 3 validators a sealer must wait for another one: the chain stops at 1.
    # Proof, without sleeping: another validator's block 2 is handed to the node
    # stamped max_future seconds past the node's last chance to seal block 2
    # itself.  The node keeps it and connects it when its own clock reaches
    # that chance (plus slack), so once block 2 shows up, the node's sealing
    # slot for height 2 has passed by its own clock: had it sealed a block 2,
    # that block (first seen, at least as heavy) would be the one at height 2.
    assert node.height() == 1
    info = node.rpc("getinfo")
    assert info["finalized_height"] == 0
    block2 = other_validators_block(spec, out_dir, node.rpc, me, slack=SEAL_SLACK)
    peer = RawPeer(node, "127.0.0.1", spec.network_magic)
    try:
        peer.handshake(info)
        peer.send(encode_frame(spec.network_magic, BlockMsg(block2)))
        wait_until(lambda: "ahead of our clock" in node.log_path.read_text(), 20,
                   "the node to keep the early block 2")
        wait_until(lambda: node.height() >= 2, 30, "the node to connect block 2 when due")
    finally:
        peer.close()
    assert node.rpc("getblockhash", 2) == block2.hash.hex()
    assert node.rpc("getblock", 2)["validator"] != me
    assert node.rpc("getinfo")["finalized_height"] == 0
    assert node.running()
    assert node.stop() == 0


SEAL_SLACK = 3
"""Seconds past ``parent time + period`` by which a validator that may seal
has done so: the out-of-turn wait (0.5 s), the wiggle (at most signer limit ×
0.5 s = 1 s with 3 validators) and a second for whole-second timestamps."""


def other_validators_block(spec: ChainSpec, out_dir: Path, rpc, me: str, *,
                           slack: int) -> Block:
    """An empty block on the tip sealed by a validator that is neither ``me``
    nor in turn (so it is no heavier than a block ``me`` could seal), stamped
    ``max_future`` seconds after the tip's time + period + ``slack``."""
    tip = Block.from_bytes(bytes.fromhex(rpc("getblock", rpc("getbestblockhash"), 0)))
    height = tip.height + 1
    in_turn = spec.address(spec.validators[height % len(spec.validators)])
    keys = [read_key_file(out_dir / f"validator-{i}.key", spec.wif_version)
            for i in range(1, len(spec.validators) + 1)]
    signer = next(k for k in keys
                  if spec.address(k.public_key.hash160()) not in (me, in_turn))
    when = tip.header.time + spec.period + slack + spec.max_future
    header = BlockHeader(height, tip.hash, merkle_root([]), when, DIFF_NO_TURN)
    return Block(seal_header(header, signer, spec.chain_id), ())


def test_rpc_on_a_public_address_needs_allow_remote(tmp_path, net):
    out_dir, _ = net
    datadir = tmp_path / "node"
    assert init(datadir, out_dir / "mynet.json").returncode == 0
    out = run_cli(datadir, "node", "start", "--rpc-listen", f"0.0.0.0:{free_port()}", timeout=30)
    assert out.returncode == 1, out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "--rpc-allow-remote" in last
    assert not (datadir / "node.json").exists()


def test_start_on_an_uninitialised_datadir_is_refused(tmp_path):
    datadir = tmp_path / "empty"
    out = run_cli(datadir, "node", "start", timeout=30)
    assert "not initialised" in assert_one_error_line(out)
    assert not (datadir / "chainspec.json").exists()
