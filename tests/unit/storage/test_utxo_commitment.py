"""The UTXO set commitment kept per block equals a full scan, through connects,
disconnects and reorgs, and does not depend on the chain's history."""

from __future__ import annotations

import os
import random

import pytest

from o2ocli.consensus.params import ConsensusParams
from o2ocli.storage import ChainState, Database, schema
from o2ocli.storage.utxocommit import UtxoCommitment, verify_utxo_set
from o2ocli.testing.chaingen import ChainGenerator

SEED = int(os.environ.get("O2O_COMMIT_SEED", "20261207"))
STEPS = int(os.environ.get("O2O_COMMIT_STEPS", "16"))
PARAMS = ConsensusParams("o2o-test")


def new_generator() -> ChainGenerator:
    return ChainGenerator("o2o-test", n_keys=8, coins_per_key=3)


def open_state(path, gen: ChainGenerator) -> ChainState:
    return ChainState(Database(path), PARAMS, gen.genesis)


def main_chain(state: ChainState) -> list:
    return [state.get_block(state.get_block_hash(h)) for h in range(1, state.height + 1)]


def assert_matches_scan(state: ChainState, why: str) -> None:
    stored, scanned = state.utxo_stats(), state.scan_utxo_stats()
    assert stored == scanned, f"{why} (seed {SEED}: rerun with O2O_COMMIT_SEED={SEED})"


def test_commitment_equals_the_full_scan_through_random_reorgs(tmp_path):
    """A seeded random walk: extend the tip, reorganise onto a longer branch
    forking up to three blocks back, or disconnect the tip; after every step
    the stored commitment equals a full scan.  Then a chainstate that
    connected the final main chain directly has the same commitments."""
    rng = random.Random(SEED)
    gen = new_generator()
    state = open_state(tmp_path / "walk", gen)
    history = [gen.fork()]  # generator state after each main-chain block
    reorgs = disconnects = 0
    for step in range(STEPS):
        height = state.height
        move = rng.random()
        if height >= 2 and move < 0.35:
            fork_height = rng.randrange(max(0, height - 3), height)
            branch = history[fork_height].fork()
            branch.fee += rng.randrange(1, 1_000)  # other txs than the old branch
            history = history[: fork_height + 1]
            for _ in range(height - fork_height + 1):
                block = branch.next_block(rng.randrange(0, 5))
                state.add_block(block)
                history.append(branch.fork())
            assert state.tip.hash == block.hash
            reorgs += 1
        elif height >= 1 and move < 0.5:
            state.disconnect_tip()
            history.pop()
            disconnects += 1
        else:
            branch = history[-1].fork()
            state.add_block(branch.next_block(rng.randrange(0, 6)))
            history.append(branch)
        assert_matches_scan(state, f"step {step}")
    assert reorgs and state.height >= 2, f"seed {SEED} made no reorg; raise O2O_COMMIT_STEPS"

    direct = open_state(tmp_path / "direct", gen)
    for block in main_chain(state):
        direct.add_block(block)
    assert direct.utxo_stats() == state.utxo_stats(), f"seed {SEED}"
    for h in range(state.height + 1):
        block_hash = state.get_block_hash(h)
        assert direct.utxo_stats(block_hash) == state.utxo_stats(block_hash), f"seed {SEED}"


def test_a_reorg_and_a_direct_sync_reach_the_same_commitment(tmp_path):
    gen = new_generator()
    other = gen.fork()
    other.fee += 7
    a = [gen.next_block(3) for _ in range(2)]
    b = [other.next_block(3) for _ in range(3)]
    reorged = open_state(tmp_path / "reorged", gen)
    for block in a + b:
        reorged.add_block(block)
    assert reorged.tip.hash == b[-1].hash
    direct = open_state(tmp_path / "direct", gen)
    for block in b:
        direct.add_block(block)
    assert reorged.utxo_stats() == direct.utxo_stats()
    assert reorged.utxo_stats().hash == reorged.scan_utxo_stats().hash
    # The abandoned branch's records went with its blocks.
    for block in a:
        assert reorged.db.get(schema.commit_key(block.hash)) is None
        with pytest.raises(KeyError):
            reorged.utxo_stats(block.hash)


def test_the_stored_record_holds_state_count_and_totals(tmp_path):
    gen = new_generator()
    state = open_state(tmp_path / "db", gen)
    genesis = state.utxo_stats()
    assert genesis.count == 24 and genesis.totals == {bytes(32): 24 * 1_000_000_000}
    block = gen.next_block(4)
    state.add_block(block)
    record = UtxoCommitment.from_bytes(state.db.get(schema.commit_key(block.hash)))
    assert record.to_bytes() == state.db.get(schema.commit_key(block.hash))
    stats = state.utxo_stats()
    assert (record.hash, record.count, record.totals) == (stats.hash, stats.count, stats.totals)
    # Fees move between coins: the native total is unchanged.
    assert stats.totals == genesis.totals and stats.count > genesis.count
    state.disconnect_tip()
    assert state.utxo_stats() == genesis


def test_verify_detects_a_coin_changed_on_disk(tmp_path):
    gen = new_generator()
    state = open_state(tmp_path / "db", gen)
    state.add_block(gen.next_block(3))
    assert verify_utxo_set(state.db).ok
    key, value = next(iter(state.db.iterate(schema.UTXO)))
    with state.db.write_batch() as batch:
        batch.put(key, value[:-1] + bytes([value[-1] ^ 0x80]))
    result = verify_utxo_set(state.db)
    assert not result.ok and "full-scan hash" in result.error
    assert result.stored.hash == state.utxo_stats().hash != result.scanned.hash
    # A coin that does not decode at all is named.
    with state.db.write_batch() as batch:
        batch.put(key, b"\x01")
    result = verify_utxo_set(state.db)
    assert not result.ok and key[1:33].hex() in result.error


# The coin element vectors of docs/protocol.rst, "UTXO set commitment".
COIN_A = bytes.fromhex(
    "11" * 32 + "00000001"
    "0700000000014859c79ddba0d750e5d62ad4d00764bafed270b89443fa09f672"
    "ffce481d12d840420f0000000000017294ab255fac669c530970040b9ea4387d207ced")
COIN_B = bytes.fromhex(
    "22" * 32 + "00000000"
    "0100000001003075000000000000012a16013073c0ba1106350df65cf032082c60e58a")
DOC_VECTORS = {
    "{}": "c85525462fdcf30a2c18d6f4b92923000974355c2477f59594d2c205a1d25add",
    "{A}": "d6414f2b33f026b94dc84e7c830921b7437addc84dfe867a53d1324cf914f642",
    "{A, B}": "fef76d2b9d75bf54dec6592239f3ee6a2e4ed56c325ebdec57c52c71788d6022",
    "{B}": "d4ee86386f0e3fd788633e1693d7c2419b62c7275df284459d46e7f84aec5718",
}


def test_the_documented_coin_vectors():
    from pathlib import Path

    from o2ocli.core.tx import Coin, Outpoint
    from o2ocli.storage.utxocommit import coin_element, scan_commitment

    a = (Outpoint(b"\x11" * 32, 1), Coin.from_bytes(COIN_A[36:]))
    b = (Outpoint(b"\x22" * 32, 0), Coin.from_bytes(COIN_B[36:]))
    assert coin_element(*a) == COIN_A and coin_element(*b) == COIN_B
    empty = UtxoCommitment.empty()
    got = {
        "{}": empty.hash,
        "{A}": empty.apply([], [a]).hash,
        "{A, B}": scan_commitment(iter([(COIN_A[:36], COIN_A[36:]),
                                        (COIN_B[:36], COIN_B[36:])])).hash,
        "{B}": empty.apply([], [a, b]).apply([a], []).hash,
    }
    assert {name: digest.hex() for name, digest in got.items()} == DOC_VECTORS
    doc = (Path(__file__).resolve().parents[3] / "docs" / "protocol.rst").read_text()
    assert all(digest in doc for digest in DOC_VECTORS.values())


def test_coin_encoding_and_element_match_the_field_by_field_form():
    """The struct-built coin encoding equals the Writer (field by field) form,
    decodes back to the same coin (fast path and general path), and the
    element is ``Outpoint.to_bytes() + Coin.to_bytes()``, for every lock type,
    native and issued assets, and both coin flags."""
    from o2ocli.core.encoding import Writer
    from o2ocli.core.locks import Escrow, Multisig, PayToAddress
    from o2ocli.core.tx import NATIVE_ASSET, Coin, Outpoint, TxOut
    from o2ocli.storage.utxocommit import coin_element

    def writer_form(coin: Coin) -> bytes:
        w = Writer()
        w.u32(coin.height)
        w.u8(1 if coin.coinbase else 0)
        coin.output.encode(w)
        return w.getvalue()

    h = [bytes([i]) * 20 for i in range(1, 5)]
    locks = [PayToAddress(h[0]), Multisig.of(2, [h[1], h[0], h[2]]),
             Escrow(h[0], ((h[1], 6000), (h[2], 4000)), h[3], 1234),
             Escrow(h[0], ((h[1], 10_000),), None, 7)]
    for lock in locks:
        for asset in (NATIVE_ASSET, b"\xab" * 32):
            for height, coinbase in ((0, False), (2**32 - 1, True)):
                for amount in (1, 2**64 - 1):
                    outpoint = Outpoint(bytes(range(32)), 2**32 - 1 if coinbase else 3)
                    coin = Coin(TxOut(asset, amount, lock), height, coinbase)
                    data = coin.to_bytes()
                    assert data == writer_form(coin)
                    assert Coin.from_bytes(data) == coin
                    assert coin_element(outpoint, coin) == outpoint.to_bytes() + data


def test_a_damaged_record_is_reported_not_used(tmp_path):
    from o2ocli.storage import ChainStateError

    gen = new_generator()
    state = open_state(tmp_path / "db", gen)
    block = gen.next_block(2)
    state.add_block(block)
    with state.db.write_batch() as batch:
        batch.put(schema.commit_key(block.hash), b"\x00" * 10)
    with pytest.raises(KeyError, match="is unreadable"):
        state.utxo_stats()
    state.db.close()
    state = open_state(tmp_path / "db", gen)  # no cached record: read from disk
    with pytest.raises(ChainStateError, match="unreadable.*run: o2ocli node reindex"):
        state.add_block(gen.next_block(2))
    assert state.tip.hash == block.hash
