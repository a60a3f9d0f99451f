"""A new O2O family needs no edit of the chainstate: register its payload
type, its rules by payload tag and its state namespaces, and a block carrying
it connects through the real chainstate (real LevelDB), writes its keys, and
disconnecting the block puts the previous values back.

The dummy family (a "commit counter") has a payload type of its own,
:class:`Counted` (tag ``0x7D``, one 32-byte commitment).  Its contextual rule
reads a counter key, writes it + 1 and the commitment it saw, and its
namespace derives an index entry from each counter value; its context-free
rule refuses an all-zero commitment.  What the registrations are:

* ``core.payloads.registered(tag, Counted)`` — the payload type and its codec;
* ``o2o.RULES[tag]`` — the family's :class:`~o2ocli.consensus.state.FamilyRules`;
* ``o2o.NAMESPACES[name]`` — its :class:`~o2ocli.consensus.state.Namespace` s;
* ``schema.O2O_NAMESPACES[name]`` — the key prefix of each namespace on disk.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from o2ocli.consensus import o2o
from o2ocli.consensus.errors import BlockInvalid, TxInvalid
from o2ocli.consensus.params import ConsensusParams
from o2ocli.consensus.state import FamilyRules, Namespace, O2OEffect, StateKey
from o2ocli.core.payloads import PayloadType, registered
from o2ocli.core.payloads.spec import Fixed, compile_record, wire
from o2ocli.core.tx import NATIVE_ASSET, Outpoint, Tx, TxIn, TxOut
from o2ocli.crypto.hashes import sha256
from o2ocli.storage import ChainState, Database, schema
from o2ocli.testing.chaingen import deterministic_key, make_block, make_genesis, p2a, sign_tx

CHAIN_ID = "o2o-plugin-test"
PARAMS = ConsensusParams(CHAIN_ID)
KEY = deterministic_key(b"o2o-plugin", 0)
COIN = 1_000_000
FEE = 100
GENESIS = make_genesis(CHAIN_ID, [TxOut(NATIVE_ASSET, COIN, p2a(KEY)) for _ in range(4)])

DUMMY_TAG = 0x7D
COUNTER_ID = b"counter"
COUNTER_PREFIX = b"\xf0"
SEEN_PREFIX = b"\xf1"
INDEX_PREFIX = b"\xf2"


@compile_record
@dataclass(frozen=True, slots=True)
class Counted(PayloadType):
    """The dummy family's payload: a commitment to count."""

    commitment: bytes = wire(Fixed(32, "counted commitment"))


def _count_index(ident: bytes, value: bytes) -> dict[StateKey, bytes]:
    return {(COUNT_INDEX.name, value): ident}


COUNTER = Namespace("test-counter", "fixed id → number of commits (u32 BE)", derive=_count_index)
SEEN = Namespace("test-seen", "commitment → txid of the commit that showed it",
                 claim="commitment (shown once)")
COUNT_INDEX = Namespace("test-count-index", "counter value → counter id", index=True)


def check_commit_not_zero(tx: Tx) -> None:
    """Rule: the dummy family's commitment is not all zeros."""
    if tx.payload.commitment == bytes(32):  # type: ignore[attr-defined]
        raise TxInvalid("bad-dummy-zero", "the commitment is all zeros")


def count_commit(tx, coins, height, params, state) -> O2OEffect:
    """Rule: a commitment is shown once; each commit adds one to the counter."""
    commitment = tx.payload.commitment
    if state.read(SEEN.key(commitment)) is not None:
        raise TxInvalid("bad-dummy-seen", "this commitment was already shown")
    old = state.read(COUNTER.key(COUNTER_ID))
    count = 0 if old is None else int.from_bytes(old, "big")
    return O2OEffect(writes={COUNTER.key(COUNTER_ID): (count + 1).to_bytes(4, "big"),
                             SEEN.key(commitment): tx.txid})


def seen_claims(tx: Tx) -> list[StateKey]:
    return [SEEN.key(tx.payload.commitment)]  # type: ignore[attr-defined]


@pytest.fixture
def dummy_family(monkeypatch):
    """Register the dummy family (payload type, rules, namespaces, prefixes) for one test."""
    monkeypatch.setitem(o2o.RULES, DUMMY_TAG,
                        FamilyRules(check_commit_not_zero, count_commit, seen_claims))
    for ns, prefix in ((COUNTER, COUNTER_PREFIX), (SEEN, SEEN_PREFIX),
                       (COUNT_INDEX, INDEX_PREFIX)):
        monkeypatch.setitem(o2o.NAMESPACES, ns.name, ns)
        monkeypatch.setitem(schema.O2O_NAMESPACES, ns.name, prefix)
    with registered(DUMMY_TAG, Counted):
        yield


def commit_tx(genesis_index: int, commitment: bytes) -> Tx:
    op = Outpoint(GENESIS.txs[0].txid, genesis_index)
    tx = Tx((TxIn(op),), (TxOut(NATIVE_ASSET, COIN - FEE, p2a(KEY)),),
            payload=Counted(commitment))
    return sign_tx(tx, [[KEY]], CHAIN_ID)


def dump(state: ChainState) -> dict[bytes, bytes]:
    """Every key but the stored blocks and their index entries (which stay)."""
    return {key: value for key, value in state.db.iterate(b"")
            if key[:1] not in (schema.BLOCK, schema.INDEX) and key != schema.META_BEST}


def test_a_registered_family_connects_and_disconnects_through_the_chainstate(
    tmp_path, dummy_family
):
    state = ChainState(Database(tmp_path / "db"), PARAMS, GENESIS)
    before = dump(state)
    first = commit_tx(0, sha256(b"one"))
    block1 = make_block(GENESIS.header, [first])
    assert state.add_block(block1)
    counter_key = COUNTER_PREFIX + COUNTER_ID
    assert state.db.get(counter_key) == (1).to_bytes(4, "big")
    assert state.db.get(SEEN_PREFIX + sha256(b"one")) == first.txid
    assert state.db.get(INDEX_PREFIX + (1).to_bytes(4, "big")) == COUNTER_ID
    assert state.read(COUNTER.key(COUNTER_ID)) == (1).to_bytes(4, "big")
    after_block1 = dump(state)

    # Two commits in one block: the second sees the first's write (counter 3).
    second, third = commit_tx(1, sha256(b"two")), commit_tx(2, sha256(b"three"))
    block2 = make_block(block1.header, [second, third])
    assert state.add_block(block2)
    assert state.db.get(counter_key) == (3).to_bytes(4, "big")
    assert state.db.get(SEEN_PREFIX + sha256(b"three")) == third.txid
    assert state.db.get(INDEX_PREFIX + (3).to_bytes(4, "big")) == COUNTER_ID

    # Undo: the overwritten counter gets its previous value back, new keys go.
    state.disconnect_tip()
    assert state.db.get(counter_key) == (1).to_bytes(4, "big")
    assert state.db.get(SEEN_PREFIX + sha256(b"two")) is None
    assert state.db.get(INDEX_PREFIX + (3).to_bytes(4, "big")) is None
    assert dump(state) == after_block1
    state.disconnect_tip()
    assert state.db.get(counter_key) is None
    assert dump(state) == before


def test_a_registered_family_rules_refuse_a_block(tmp_path, dummy_family):
    state = ChainState(Database(tmp_path / "db"), PARAMS, GENESIS)
    before = dump(state)
    shown_twice = make_block(GENESIS.header, [commit_tx(0, sha256(b"same")),
                                              commit_tx(1, sha256(b"same"))])
    with pytest.raises(BlockInvalid) as e:
        state.add_block(shown_twice)
    assert e.value.reason == "bad-dummy-seen"
    zero = make_block(GENESIS.header, [commit_tx(2, bytes(32))])
    with pytest.raises(BlockInvalid) as e:
        state.add_block(zero)
    assert e.value.reason == "bad-dummy-zero"
    assert dump(state) == before  # a refused block leaves no trace
    assert o2o.o2o_claims(commit_tx(3, sha256(b"c"))) == [SEEN.key(sha256(b"c"))]
    assert o2o.claim_description(SEEN.key(sha256(b"c"))) == "commitment (shown once)"


def test_without_the_rules_the_payload_is_refused(tmp_path, monkeypatch):
    """Registered in core but with no consensus rules, the payload is not allowed."""
    state = ChainState(Database(tmp_path / "db"), PARAMS, GENESIS)
    before = dump(state)
    with registered(DUMMY_TAG, Counted):
        block = make_block(GENESIS.header, [commit_tx(0, sha256(b"one"))])
        with pytest.raises(BlockInvalid) as e:
            state.add_block(block)
    assert e.value.reason == "bad-txns-payload"
    assert dump(state) == before
