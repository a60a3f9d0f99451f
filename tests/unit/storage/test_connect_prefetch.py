"""The pipelined connect (the next block's signatures verified ahead into
the signature cache, on a worker process) against the serial path."""

from __future__ import annotations

import pytest
from test_coincache import dump, with_bad_signature

from o2ocli.crypto.batch import CachingVerifier, ProcessVerifier


def test_a_block_connected_with_prefetch_gives_the_same_chainstate(tmp_path):
    """The pipelined path (next block's signatures verified ahead) against the
    serial one: identical UTXO set hashes and databases, and a block with a
    bad signature refused with the same reason even though it was prefetched."""
    from o2ocli.consensus.block import witness_checks
    from o2ocli.consensus.errors import BlockInvalid
    from o2ocli.consensus.params import ConsensusParams
    from o2ocli.storage import ChainState, Database
    from o2ocli.testing.chaingen import ChainGenerator

    gen = ChainGenerator("o2o-test", n_keys=30, coins_per_key=10, fee=1)
    blocks = [gen.next_block(150, claim_fees=False) for _ in range(4)]
    bad_block = with_bad_signature(gen.next_block(150, claim_fees=False))
    params = ConsensusParams(gen.chain_id)
    verifier = CachingVerifier(ProcessVerifier(1))
    try:
        serial = ChainState(Database(tmp_path / "serial"), params, gen.genesis)
        piped = ChainState(Database(tmp_path / "piped"), params, gen.genesis,
                           verifier=verifier, dbcache=1 << 24)
        for block in blocks:
            serial.add_block(block)
        for i, block in enumerate(blocks):
            ahead = blocks[i + 1] if i + 1 < len(blocks) else bad_block
            verifier.prefetch(witness_checks(ahead, gen.chain_id))
            piped.add_block(block)
        assert verifier.prefetched > 0
        for state in (serial, piped):
            with pytest.raises(BlockInvalid) as err:
                state.add_block(bad_block)
            assert err.value.reason == "bad-txns-signature"
        piped.flush()
        assert piped.utxo_set_hash() == serial.utxo_set_hash()
        assert dump(piped.cache.db) == dump(serial.db)
    finally:
        verifier.close()
        serial.db.close()
        piped.cache.close()
