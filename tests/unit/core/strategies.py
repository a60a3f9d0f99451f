"""Hypothesis strategies for every :mod:`o2ocli.core` data type.

The values are structurally valid (they satisfy the dataclass invariants) but
not necessarily consensus-valid: public keys and signatures are random bytes
of the right length, merkle roots are arbitrary, and so on.  That is exactly
what encoding tests need.
"""

from __future__ import annotations

from hypothesis import strategies as st

from o2ocli.core.block import VOTE_ADD, VOTE_NONE, VOTE_REMOVE, Block, BlockHeader
from o2ocli.core.encoding import MAX_U32, MAX_U64
from o2ocli.core.limits import MAX_MULTISIG_KEYS
from o2ocli.core.locks import Multisig, PayToAddress
from o2ocli.core.payloads import MAX_GENESIS_NOTE, NO_PAYLOAD, Coinbase, GenesisAlloc
from o2ocli.core.tx import NATIVE_ASSET, Coin, Outpoint, SigPair, Tx, TxIn, TxOut

__all__ = [
    "u32s",
    "u64s",
    "hashes32",
    "hashes20",
    "outpoints",
    "sigpairs",
    "witnesses",
    "txins",
    "assets",
    "amounts",
    "pay_to_address_locks",
    "multisig_locks",
    "locks",
    "payloads",
    "txouts",
    "txs",
    "votes",
    "checkpoints",
    "headers",
    "blocks",
    "coins",
]

u32s = st.integers(min_value=0, max_value=MAX_U32)
u64s = st.integers(min_value=0, max_value=MAX_U64)
hashes32 = st.binary(min_size=32, max_size=32)
hashes20 = st.binary(min_size=20, max_size=20)

outpoints = st.builds(Outpoint, hashes32, u32s)
sigpairs = st.builds(
    SigPair, st.binary(min_size=33, max_size=33), st.binary(min_size=64, max_size=64)
)
witnesses = st.lists(sigpairs, max_size=3).map(tuple)
txins = st.builds(TxIn, outpoints, witnesses)

token_ids = hashes32.filter(lambda b: b != NATIVE_ASSET)
assets = st.one_of(st.just(NATIVE_ASSET), token_ids)

# The whole u64 range, with the interesting edges drawn often.
amounts = st.one_of(
    u64s,
    st.sampled_from([0, 1, 0xFC, 0xFD, 0xFFFF, 0x1_0000, MAX_U32, MAX_U32 + 1, MAX_U64]),
)

pay_to_address_locks = st.builds(PayToAddress, hashes20)


@st.composite
def multisig_locks(draw: st.DrawFn) -> Multisig:
    """An m-of-n multisig with 1 ≤ m ≤ n ≤ 15 distinct, sorted hashes."""
    hashes = draw(st.lists(hashes20, min_size=1, max_size=MAX_MULTISIG_KEYS, unique=True))
    m = draw(st.integers(min_value=1, max_value=len(hashes)))
    return Multisig.of(m, hashes)


locks = st.one_of(pay_to_address_locks, multisig_locks())

payloads = st.one_of(
    st.just(NO_PAYLOAD),
    st.builds(Coinbase, u32s),
    st.builds(GenesisAlloc, st.binary(max_size=MAX_GENESIS_NOTE)),
)

txouts = st.builds(TxOut, assets, amounts, locks)


def txs(max_inputs: int = 3, max_outputs: int = 3) -> st.SearchStrategy[Tx]:
    """Transactions with up to ``max_inputs`` inputs and ``max_outputs`` outputs."""
    return st.builds(
        Tx,
        st.lists(txins, max_size=max_inputs).map(tuple),
        st.lists(txouts, max_size=max_outputs).map(tuple),
        u32s,
        payloads,
        u32s,
    )


votes = st.one_of(
    st.just((VOTE_NONE, bytes(20))),
    st.tuples(st.sampled_from([VOTE_ADD, VOTE_REMOVE]), hashes20),
)

checkpoints = st.lists(hashes20, max_size=5, unique=True).map(lambda xs: tuple(sorted(xs)))


@st.composite
def headers(draw: st.DrawFn) -> BlockHeader:
    """Block headers with any vote, a short checkpoint and a random seal."""
    vote_kind, vote_address = draw(votes)
    return BlockHeader(
        height=draw(u32s),
        prev_hash=draw(hashes32),
        merkle_root=draw(hashes32),
        time=draw(u64s),
        difficulty=draw(u32s),
        vote_kind=vote_kind,
        vote_address=vote_address,
        checkpoint=draw(checkpoints),
        seal_pubkey=draw(st.binary(min_size=33, max_size=33)),
        seal_signature=draw(st.binary(min_size=64, max_size=64)),
        version=draw(u32s),
    )


def blocks(max_txs: int = 3) -> st.SearchStrategy[Block]:
    """Blocks of up to ``max_txs`` small transactions (merkle root not checked)."""
    return st.builds(Block, headers(), st.lists(txs(2, 2), max_size=max_txs).map(tuple))


coins = st.builds(Coin, txouts, u32s, st.booleans())
