"""The chain database's LevelDB options (storage/db.leveldb_options): a
database written by an older node with plyvel's defaults (Snappy-compressed,
2 MiB tables) opens under them and reads back the same, before and after its
tables are rewritten uncompressed by a compaction; and the other way round."""

from __future__ import annotations

import os
import random

import plyvel

from o2ocli.storage.db import Database, leveldb_options

SEED = int(os.environ.get("O2O_TEST_SEED", "77"))


def entries(rng: random.Random, n: int) -> dict[bytes, bytes]:
    # Hash-like keys and values, as the UTXO set's, plus compressible ones.
    out = {b"u" + rng.randbytes(36): rng.randbytes(40) for _ in range(n)}
    out.update({b"t" + i.to_bytes(4, "big"): b"x" * 500 for i in range(n // 10)})
    return out


def test_a_database_written_with_default_options_reads_back_under_ours(tmp_path):
    print(f"seed {SEED}")
    rng = random.Random(SEED)
    path = tmp_path / "chaindata"
    old = entries(rng, 20_000)
    db = plyvel.DB(str(path), create_if_missing=True)  # plyvel's defaults: Snappy
    with db.write_batch() as batch:
        for key, value in old.items():
            batch.put(key, value)
    db.compact_range()
    db.close()
    new = entries(rng, 5_000)
    with Database(path, **leveldb_options(100)) as ours:
        assert all(ours.get(key) == value for key, value in old.items())
        with ours.write_batch() as batch:
            for key, value in new.items():
                batch.put(key, value)
        ours._db.compact_range()  # old tables rewritten with our options
        assert all(ours.get(key) == value for key, value in {**old, **new}.items())
        assert sum(1 for _ in ours.iterate(b"u")) == 25_000
    # And a node going back to plyvel's defaults still reads it all.
    db = plyvel.DB(str(path))
    assert all(db.get(key) == value for key, value in {**old, **new}.items())
    db.close()
