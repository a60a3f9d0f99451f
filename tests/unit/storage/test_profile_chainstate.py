"""Profile commitments in the chainstate (real LevelDB): a newer commitment
replaces the current one, the history keeps both, a grant naming a
commitment is stored with it, and disconnecting (or a reorg) puts everything
back exactly, the previous current commitment included."""

from __future__ import annotations

from dataclasses import replace

from o2ocli.consensus.params import ConsensusParams
from o2ocli.consensus.profile import current_commitment, read_commitment
from o2ocli.core.payloads import (
    ConsentGrantProfile,
    ProfileCommit,
    consent_profile_sig_digest,
    profile_sig_digest,
)
from o2ocli.core.tx import NATIVE_ASSET, Outpoint, Tx, TxIn, TxOut
from o2ocli.crypto.hashes import sha256
from o2ocli.storage import ChainState, Database, schema
from o2ocli.testing.chaingen import deterministic_key, make_block, make_genesis, p2a, sign_tx

CHAIN_ID = "o2o-test"
KEYS = [deterministic_key(b"profile-chainstate-tests", i) for i in range(2)]
USER, SHOP = 0, 1
PARAMS = ConsensusParams(CHAIN_ID)
GENESIS = make_genesis(CHAIN_ID, [TxOut(NATIVE_ASSET, 1_000_000, p2a(KEYS[USER]))
                                  for _ in range(8)])


def signed(i: int, unsigned, digest_of) -> Tx:
    """Genesis coin ``i`` (the user's) spent with ``unsigned`` signed over it."""
    op = Outpoint(GENESIS.txs[0].txid, i)
    digest = digest_of(unsigned, CHAIN_ID, [op.txid + op.index.to_bytes(4, "little")])
    payload = replace(unsigned, signature=KEYS[USER].sign(digest))
    tx = Tx((TxIn(op),), (TxOut(NATIVE_ASSET, 999_900, p2a(KEYS[USER])),), payload=payload)
    return sign_tx(tx, [[KEYS[USER]]], CHAIN_ID)


def commit(i: int, label: bytes) -> Tx:
    pub = KEYS[USER].public_key.to_bytes()
    return signed(i, ProfileCommit(sha256(label), 2, pub, bytes(64)), profile_sig_digest)


def grant(i: int, commitment: bytes) -> Tx:
    pub = KEYS[USER].public_key.to_bytes()
    unsigned = ConsentGrantProfile(KEYS[SHOP].public_key.hash160(), b"phone", 1_000, commitment,
                                   pub, bytes(64))
    return signed(i, unsigned, consent_profile_sig_digest)


def profile_dump(state: ChainState) -> dict[bytes, dict[bytes, bytes]]:
    prefixes = (schema.PROFILE_COMMIT, schema.PROFILE_CURRENT, schema.PROFILE_HISTORY,
                schema.CONSENT, schema.BY_USER, schema.BY_GRANTEE)
    return {p: dict(state.db.iterate(p)) for p in prefixes}


def test_newer_commitments_replace_and_disconnects_restore(tmp_path):
    state = ChainState(Database(tmp_path / "db"), PARAMS, GENESIS)
    user = KEYS[USER].public_key.hash160()
    a = commit(0, b"a")
    b1 = make_block(GENESIS.header, [a])
    assert state.add_block(b1)
    after_a = profile_dump(state)
    b, c = commit(1, b"b"), commit(2, b"c")  # two in one block: the later one is current
    named = grant(3, c.txid)
    b2 = make_block(b1.header, [b, c, named])
    assert state.add_block(b2)
    assert current_commitment(state, user) == c.txid
    assert state.profile_history(user) == [(1, a.txid), *sorted([(2, b.txid), (2, c.txid)])]
    assert read_commitment(state, a.txid).root == sha256(b"a")
    assert state.consent(named.txid).profile == c.txid

    assert state.disconnect_tip().hash == b2.hash
    assert profile_dump(state) == after_a
    assert current_commitment(state, user) == a.txid
    assert state.consent(named.txid) is None

    # A competing branch (heavier) without b2: a reorg leaves a current, then d.
    d = commit(4, b"d")
    side = make_block(b1.header, [d], difficulty=3)
    assert state.add_block(b2)
    assert state.add_block(side)
    assert state.tip.hash == side.hash
    assert current_commitment(state, user) == d.txid
    assert {t for _, t in state.profile_history(user)} == {a.txid, d.txid}
    assert read_commitment(state, c.txid) is None
