"""The dev node as a user meets it: start, produce, query, stop, restart, reindex."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from .framework import run_cli, wait_until

CHAIN_INFO_KEYS = {
    "chain_id", "native_symbol", "genesis_hash", "height", "tip", "finalized_height",
    "validators", "utxo_set_hash", "utxo_count",
}


def test_dev_node_seals_a_block_every_second_and_answers(node_factory):
    node = node_factory()
    node.start("--dev")
    node.wait_height(3)
    info = node.cli_json("chain", "info")
    assert CHAIN_INFO_KEYS <= info.keys()
    assert info["chain_id"] == "o2o-devnet"
    # One validator: its vote for each new block finalizes the parent (FFG).
    assert info["finalized_height"] == info["height"] - 1
    status = node.cli_json("node", "status")
    keys = {"height", "tip", "finalized_height", "peers", "mempool_size", "syncing"}
    assert keys <= status.keys()
    block = node.cli_json("chain", "block", "2")
    assert {"hash", "height", "prev", "time", "validator", "txs"} <= block.keys()
    assert block["validator"] == info["validators"][0]
    one = node.cli_json("chain", "block", "1")
    assert block["prev"] == one["hash"]
    assert block["time"] >= one["time"] + 1  # the devnet's 1-second period
    by_hash = node.cli_json("chain", "block", block["hash"])
    assert by_hash["height"] == 2


def test_second_node_on_same_datadir_is_refused(node_factory):
    node = node_factory()
    node.start("--dev")
    again = node.cli("node", "start", "--dev")
    assert again.returncode == 1
    assert "already running" in again.stderr
    assert again.stderr.count("\n") == 1
    assert node.running()


def test_stop_restart_and_reindex_keep_the_chain(node_factory):
    node = node_factory()
    node.start("--dev")
    node.wait_height(3)
    stopped = node.cli_json("node", "stop")
    assert stopped == {"stopped": True}
    assert node.proc.wait(30) == 0
    assert not (node.datadir / "node.json").exists()
    assert not (node.datadir / ".cookie").exists()
    down = node.cli("chain", "info")
    assert down.returncode == 3
    assert down.stderr.startswith("error: node is not running")

    reindexed = json.loads(run_cli(node.datadir, "node", "reindex", json_out=True).stdout)
    node.start("--dev", "--dev-period", "0")
    utxo = node.rpc("getutxosetinfo")
    assert reindexed["height"] == utxo["height"] >= 3
    assert reindexed["utxo_set_hash"] == utxo["utxo_set_hash"]
    h3 = node.rpc("getblockhash", 3)
    node.stop()
    node.start("--dev")
    node.wait_height(utxo["height"] + 1)
    assert node.rpc("getblockhash", 3) == h3


def test_reindex_refuses_while_running(node_factory):
    node = node_factory()
    node.start("--dev", "--dev-period", "0")
    out = node.cli("node", "reindex")
    assert out.returncode == 1
    assert "stop it first" in out.stderr


def test_rpc_over_http_with_cookie_batch_and_errors(node_factory):
    node = node_factory()
    node.start("--dev", "--dev-period", "0")
    url = f"http://127.0.0.1:{node.rpc_port}/"
    user, password = (node.datadir / ".cookie").read_text().strip().split(":", 1)

    def post(body: bytes, auth: bool = True) -> tuple[int, object]:
        request = urllib.request.Request(url, data=body, method="POST",
                                         headers={"content-type": "application/json"})
        if auth:
            import base64

            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, None

    status, _ = post(b'{"jsonrpc":"2.0","id":1,"method":"getinfo"}', auth=False)
    assert status == 401
    status, body = post(json.dumps([
        {"jsonrpc": "2.0", "id": 1, "method": "getblockcount"},
        {"jsonrpc": "2.0", "id": 2, "method": "nosuchmethod"},
        {"jsonrpc": "2.0", "id": 3, "method": "getblockhash", "params": [10**6]},
        {"jsonrpc": "2.0", "id": 4, "method": "sendrawtx", "params": ["zz"]},
        {"jsonrpc": "2.0", "id": 5, "method": "sendrawtx", "params": ["0011"]},
    ]).encode())
    assert status == 200
    by_id = {r["id"]: r for r in body}
    assert by_id[1]["result"] == 0
    assert by_id[2]["error"]["code"] == -32601
    assert by_id[3]["error"]["code"] == -8
    assert by_id[4]["error"]["code"] == -32602
    assert by_id[5]["error"]["code"] == -22
    status, body = post(b"{not json")
    assert body["error"]["code"] == -32700


def test_commands_without_a_node_exit_3(tmp_path):
    for args in (["chain", "info"], ["node", "status"], ["validator", "list"], ["node", "stop"]):
        out = run_cli(tmp_path / "nothing", *args)
        assert out.returncode == 3, args
        assert out.stderr.startswith("error: ") and out.stderr.count("\n") == 1
        assert "Traceback" not in out.stderr


def test_validator_propose_and_discard(node_factory):
    from o2ocli.crypto.keys import PrivateKey

    from .payments import Payer, devnet, funds_key

    node = node_factory()
    node.start("--dev", "--dev-period", "0")
    spec = devnet()
    newcomer = spec.address(PrivateKey.generate().public_key.hash160())
    proposals = node.cli_json("validator", "propose", newcomer, "--add")["proposals"]
    assert proposals == [{"address": newcomer, "action": "add"}]
    assert node.cli_json("validator", "discard", newcomer)["proposals"] == []
    missing = node.cli("validator", "discard", newcomer)
    assert missing.returncode == 1
    bad = node.cli("validator", "propose", "not-an-address", "--add")
    assert bad.returncode == 1 and "invalid address" in bad.stderr
    node.cli_json("validator", "propose", newcomer, "--add")
    payer = Payer(spec, funds_key(spec))
    payer.refresh(node)
    node.rpc("sendrawtx", payer.pay(funds_key(spec).public_key.hash160(), 1000).to_bytes().hex())
    wait_until(lambda: len(node.cli_json("validator", "list")["validators"]) == 2,
               what="the vote to pass")
    listed = node.cli_json("validator", "list")
    assert newcomer in listed["validators"]
    block = node.cli_json("chain", "block", "1")
    assert block["vote"] == {"address": newcomer, "action": "add"}


def test_rpc_methods_refuse_bad_params_without_side_effects(node_factory):
    from o2ocli.rpc.errors import RpcError

    node = node_factory()
    node.start("--dev", "--dev-period", "0")
    client = node.client()
    before = client.call("getpeerinfo")
    cases = [
        ("addpeer", ["no-port"], -32602),
        ("addpeer", ["host:70000"], -32602),
        ("addpeer", [5], -32602),
        ("unban", ["192.0.2.1"], -8),
        ("unban", [""], -32602),
        ("setnetworkactive", ["yes"], -32602),
        ("listunspent", ["not-a-list"], -32602),
        ("listunspent", [["not-an-address"]], -5),
        ("getaddresseshistory", [[1]], -5),
        ("getblock", [10**9], -8),
        ("getblock", [0, 7], -32602),
        ("gettx", ["00" * 31], -32602),
        ("propose", ["not-an-address", True], -5),
    ]
    for method, params, code in cases:
        try:
            client.call(method, *params)
        except RpcError as exc:
            assert exc.code == code, (method, params, exc.code, exc.message)
        else:
            raise AssertionError(f"{method}{params} was accepted")
    after = client.call("getpeerinfo")
    assert after["banned"] == before["banned"]
    assert after["known_addresses"] == before["known_addresses"]
    assert after["network_active"] is True


def test_o2o_rpc_methods_refuse_bad_params_cleanly(node_factory):
    """Every O2O query method answers bad params with a JSON-RPC error (never an
    internal error or a traceback in the log) and changes nothing."""
    from o2ocli.rpc.errors import RpcError

    node = node_factory()
    node.start("--dev", "--dev-period", "0")
    client = node.client()
    address = node.cli_json("-w", "dev", "wallet", "address")["address"]
    before = client.call("getutxosetinfo")
    spaced = "00" * 31 + " 0"  # 64 characters that bytes.fromhex would accept
    cases = [
        ("gettoken", ["ab"], -32602),
        ("gettoken", ["ßß"], -32602),
        ("gettoken", ["NOSUCH"], -8),
        ("gettoken", [spaced], -32602),
        ("gettoken", [7], -32602),
        ("getreview", [spaced], -32602),
        ("getreview", ["11" * 32], -8),
        ("listreviews", ["stars", address], -32602),
        ("listreviews", ["merchant", "not-an-address"], -5),
        ("listreviews", ["purchase", "zz"], -32602),
        ("getreviewstats", ["not-an-address"], -5),
        ("listrewardable", ["NOSUCH", [address]], -8),
        ("getescrow", ["11" * 32 + ":²"], -32602),
        ("getescrow", ["11" * 32], -32602),
        ("getescrow", ["11" * 32 + ":0"], -8),
        ("listescrows", [[]], -32602),
        ("gettrace", [spaced], -32602),
        ("gettrace", ["TEA", "not-an-address"], -5),
        ("gettrace", ["TEA", address], -8),
        ("listconsents", [address, "owner"], -32602),
        ("checkconsent", [address, address, ""], -32602),
        ("checkconsent", ["nope", address, "contact"], -5),
    ]
    for method, params, code in cases:
        try:
            client.call(method, *params)
        except RpcError as exc:
            assert exc.code == code, (method, params, exc.code, exc.message)
        else:
            raise AssertionError(f"{method}{params} was accepted")
    assert client.call("getutxosetinfo") == before
    assert "Traceback" not in node.log_path.read_text(errors="replace")
    assert client.call("checkconsent", address, address, "contact")["granted"] is False
