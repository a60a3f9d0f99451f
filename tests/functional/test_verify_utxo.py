"""``o2ocli chain verify-utxo`` on a real node: the full scan agrees with the
commitment ``chain info`` shows, and a coin changed on disk behind the
node's back is reported with one line and exit code 1."""

from __future__ import annotations

import json
import re

from o2ocli.node.datadir import chaindata_path
from o2ocli.storage import Database, schema

from .payments import devnet
from .test_reindex_crash import write_chain


def test_verify_utxo_agrees_then_detects_a_coin_changed_on_disk(node_factory):
    node = node_factory()
    write_chain(node.datadir, devnet(), 3)  # three blocks of payments, written offline
    node.start("--dev", "--dev-period", "0")  # seals only when txs wait: a still chain
    verified = node.cli_json("chain", "verify-utxo")
    assert verified["ok"] is True and verified["error"] is None and verified["height"] >= 3
    # The scan agrees with what chain info shows at that block (the dev node may
    # have sealed a vote-only block since).
    info = node.rpc("getutxosetinfo", verified["height"])
    assert verified["tip"] == info["tip"]
    assert verified["scanned_hash"] == verified["utxo_set_hash"] == info["utxo_set_hash"]
    assert verified["scanned_count"] == verified["utxo_count"] == info["utxo_count"]
    human = node.cli("chain", "verify-utxo")
    assert human.returncode == 0 and " verified: " in human.stdout
    assert human.stdout.startswith("utxo set at height ")

    node.stop()
    with Database(chaindata_path(node.datadir)) as db:  # a bit flips in one coin
        key, value = next(iter(db.iterate(schema.UTXO)))
        with db.write_batch() as batch:
            batch.put(key, value[:-1] + bytes([value[-1] ^ 1]))
    node.start("--dev", "--dev-period", "0")
    bad = node.cli("chain", "verify-utxo")
    assert bad.returncode == 1
    assert bad.stderr.count("\n") == 1
    assert re.fullmatch(r"error: UTXO set commitment mismatch at height \d+: stored hash "
                        r"([0-9a-f]{64}) != full-scan hash ([0-9a-f]{64}) \(\d+ outputs recorded, "
                        r"\d+ scanned\) \(stop the node and run: o2ocli node reindex\)\n",
                        bad.stderr), bad.stderr
    bad_json = node.cli("chain", "verify-utxo", json_out=True)
    assert bad_json.returncode == 1
    result = json.loads(bad_json.stdout)
    assert result["ok"] is False and result["error"]["code"] == 1
    assert result["utxo_set_hash"] != result["scanned_hash"]
    assert result["utxo_count"] == result["scanned_count"]
