"""The chain database is byte-for-byte what schema 2 wrote before the O2O state
became generic (key → value writes of the consensus families, mapped to
prefixes by the schema): every key and value, the O2O undo data (``o``)
included, for a chain that uses all five families — except what schema 3
added, the token-burns index (``B``), and what schema 4 added, the UTXO set
commitment per block (``c``).

The digests below were computed with the code before that change (commit
153d8d0), for schema 2, and are kept as they were.  :func:`schema2_view`
takes out exactly schema 3's additions before hashing: the ``B`` keys are
left out, their entries are removed from each block's O2O undo data (which
is then re-encoded with the same encoder; schema 3 appends them in a group
of their own, after the others), and the schema version reads 3 and is
hashed as the 2 it was.  The ``B`` keys and undo entries are checked
separately (:func:`test_the_burn_index_is_the_only_addition_of_schema_3`).
Schema 4's ``c`` keys are left out too (one per main-chain block; their
value is checked against a full scan in ``tests/unit/storage/test_utxo_commitment.py``),
and the version reads 4.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

from test_o2o_chainstate import (
    BUYER,
    CHAIN_ID,
    COIN,
    FEE,
    GENESIS,
    KEYS,
    LOY,
    MERCHANT,
    PARAMS,
    g,
    h160,
    native,
    spend,
    story,
)

from o2ocli.core.locks import Escrow
from o2ocli.core.payloads import (
    ConsentGrant,
    ConsentRevoke,
    TokenBurn,
    TraceEvent,
    TraceRegister,
    consent_sig_digest,
    item_sig_digest,
    revoke_sig_digest,
)
from o2ocli.core.tx import NATIVE_ASSET, Outpoint, Tx, TxIn, TxOut
from o2ocli.storage import ChainState, Database, schema
from o2ocli.storage.blockwrites import decode_o2o_undo, encode_o2o_undo
from o2ocli.testing.chaingen import deterministic_key, make_block, p2a, sign_tx

CONNECTED = (172, "a475cd4c00ed4eede7e6c8c5ffb7e653f8ac03428c969fe7b00c5bb59e718257")
DISCONNECTED = (58, "02d972d476d52f8b5f41c1fc1bad3ceecf24d82adcc6b75e09c537370d23d9b0")


def signed(inputs, outputs, payload_for=None):
    """A tx spending ``inputs`` ((outpoint, owner) pairs) whose payload, if any,
    is made by ``payload_for(unsigned tx)`` (it signs over the tx's inputs)."""
    tx = Tx(tuple(TxIn(op) for op, _ in inputs), tuple(outputs))
    if payload_for is not None:
        tx = replace(tx, payload=payload_for(tx))
    return sign_tx(tx, [[KEYS[owner]] for _, owner in inputs], CHAIN_ID)


def all_families_chain():
    """The token/review story (heights 1-5), then an escrow, an item and a
    consent grant (6), then the escrow settled by dispute, a trace event and
    the grant revoked (7)."""
    blocks = list(story().blocks)
    merchant, buyer = KEYS[MERCHANT], KEYS[BUYER]
    arbiter = deterministic_key(b"arb", 0)
    lock = Escrow(h160(BUYER), ((h160(MERCHANT), 10_000),), arbiter.public_key.hash160(), 1_000)
    opened = spend([g(10)], [TxOut(NATIVE_ASSET, COIN - FEE, lock)])

    def register(tx):
        unsigned = TraceRegister(h160(MERCHANT), b"LOT-1", b"Beans", ((b"origin", b"Peru"),),
                                 merchant.public_key.to_bytes(), bytes(64))
        digest = item_sig_digest(unsigned, CHAIN_ID, tx.wire_outpoints())
        return replace(unsigned, signature=merchant.sign(digest))

    item = register(Tx((), ())).asset
    reg = signed([g(5)], [TxOut(item, 1, p2a(buyer)), native(COIN - FEE, MERCHANT)], register)

    def grant_payload(tx):
        unsigned = ConsentGrant(h160(MERCHANT), b"history", 500, buyer.public_key.to_bytes(),
                                bytes(64))
        digest = consent_sig_digest(unsigned, CHAIN_ID, tx.wire_outpoints())
        return replace(unsigned, signature=buyer.sign(digest))

    grant = signed([g(14)], [native(COIN - FEE, BUYER)], grant_payload)
    blocks.append(make_block(blocks[-1].header, [opened, reg, grant]))

    settle = Tx((TxIn(Outpoint(opened.txid, 0)),), (native(COIN - 2 * FEE, MERCHANT),))
    settle = sign_tx(settle, [[arbiter, merchant]], CHAIN_ID)
    event = signed([(Outpoint(reg.txid, 0), BUYER), g(9)],
                   [TxOut(item, 1, p2a(merchant)), native(COIN - FEE, MERCHANT)],
                   lambda tx: TraceEvent(item, 2, b"Lima", b"shipped", None))

    def revoke_payload(tx):
        unsigned = ConsentRevoke(grant.txid, buyer.public_key.to_bytes(), bytes(64))
        return replace(unsigned, signature=buyer.sign(revoke_sig_digest(unsigned, CHAIN_ID)))

    revoke = signed([(Outpoint(grant.txid, 0), BUYER)], [native(COIN - 2 * FEE, BUYER)],
                    revoke_payload)
    blocks.append(make_block(blocks[-1].header, [settle, event, revoke]))
    return blocks, item, Outpoint(opened.txid, 0), grant.txid


def schema2_view(state: ChainState):
    """Every (key, value) in key order, with schema 3's additions taken out
    (see the module docstring)."""
    for key, value in state.db.iterate(b""):
        if key.startswith((schema.BURNS, schema.SPENT_AT, schema.UTXO_COMMIT)):
            continue  # schema 3 and 4 additions to this chain: burns, spent-at, commitments
        if key == schema.META_SCHEMA:
            assert value == (4).to_bytes(4, "big")
            value = (2).to_bytes(4, "big")
        elif key.startswith(schema.O2O_UNDO):
            entries = decode_o2o_undo(value)
            kept = [e for e in entries if not e[0].startswith(schema.BURNS)]
            # the burn entries come last, as schema 3's group order says
            assert entries[:len(kept)] == kept
            value = encode_o2o_undo(kept)
        yield key, value


def digest(state: ChainState) -> tuple[int, str]:
    """(number of keys, SHA-256 over every length-prefixed key and value in key
    order) of :func:`schema2_view`."""
    h = hashlib.sha256()
    n = 0
    for key, value in schema2_view(state):
        n += 1
        h.update(len(key).to_bytes(4, "big") + key + len(value).to_bytes(4, "big") + value)
    return n, h.hexdigest()


def test_the_database_of_a_chain_using_every_family_is_unchanged(tmp_path):
    state = ChainState(Database(tmp_path / "db"), PARAMS, GENESIS)
    blocks, item, escrow, grant = all_families_chain()
    for block in blocks:
        assert state.add_block(block)
    assert state.height == 7
    assert len(state.item_moves(item)) == 2
    assert state.escrow_settlement(escrow) is not None
    assert state.revoked_by(grant) is not None
    assert digest(state) == CONNECTED
    while state.height > 0:
        state.disconnect_tip()
    assert digest(state) == DISCONNECTED


def test_the_burn_index_is_the_only_addition_of_schema_3(tmp_path):
    state = ChainState(Database(tmp_path / "db"), PARAMS, GENESIS)
    blocks, *_ = all_families_chain()
    for block in blocks:
        assert state.add_block(block)
    burn = next(tx for tx in blocks[4].txs if isinstance(tx.payload, TokenBurn))
    key = schema.BURNS + LOY + (5).to_bytes(4, "big") + burn.txid
    assert dict(state.db.iterate(schema.BURNS)) == {key: (1_000).to_bytes(8, "big")}
    burn_entries = [(block.height, entry) for block in blocks
                    if (data := state.db.get(schema.o2o_undo_key(block.hash))) is not None
                    for entry in decode_o2o_undo(data) if entry[0].startswith(schema.BURNS)]
    assert burn_entries == [(5, (key, None))]  # written by block 5, nothing there before
    while state.height > 0:
        state.disconnect_tip()
    assert list(state.db.iterate(schema.BURNS)) == []
