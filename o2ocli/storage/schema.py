"""Key layout of the chain database (``DATADIR/chaindata``).

One LevelDB, key spaces separated by a one-byte prefix.  Big-endian integers
make LevelDB's byte order numeric order.

Keys (integers inside keys are big-endian):

* ``b`` ‖ block hash → full block encoding
* ``i`` ‖ block hash → block index entry (see :mod:`.chainstate`)
* ``h`` ‖ height u32 → main-chain block hash at that height
* ``u`` ‖ txid ‖ output index u32 → :class:`~o2ocli.core.tx.Coin` encoding (the UTXO set)
* ``d`` ‖ block hash → undo data: the coins the block spent
* ``t`` ‖ txid → block hash ‖ position in the block ‖ byte offset of the tx in
  the block encoding ‖ its length (three u32 little-endian): a tx is read
  without decoding its whole block
* ``a`` ‖ pubkey hash (20) ‖ txid ‖ index u32 → empty: an unspent output touching the address
* ``r`` ‖ pubkey hash (20) ‖ height u32 ‖ txid → empty: a main-chain tx touching the address
* ``c`` ‖ block hash → the UTXO set commitment after that main-chain
  block: MuHash3072 state, coin count, per-asset totals (:mod:`.utxocommit`;
  schema 4)
* ``m`` ‖ name → metadata: ``tip``, ``genesis``, ``best`` (best known block), ``schema``
* ``!reindex`` → present only while ``node reindex`` rebuilds the chainstate
  (written, in its own synced batch, before anything is deleted; removed when
  the rebuild is complete): version u8 ‖ genesis hash ‖ phase u8 (0 =
  deleting the derived key spaces, 1 = replaying the blocks) ‖ the tip hash
  before the reindex (empty if unknown).  While it is present the chainstate
  is incomplete: the node refuses to start and ``node reindex`` resumes.

O2O state and indexes.  The consensus families (:mod:`o2ocli.consensus.o2o`)
name their keys abstractly, as (namespace, id) pairs (:mod:`o2ocli.consensus.state`);
:data:`O2O_NAMESPACES` below is the one place that gives each namespace its
prefix byte, so a key on disk is ``prefix ‖ id``:

* ``T`` token ‖ asset → token registry record (:class:`~o2ocli.consensus.tokens.TokenRecord`)
* ``Z`` token-authority ‖ authority asset id → the token asset id it controls
* ``W`` token-rewarded ‖ asset ‖ rewarded txid → txid of the reward that paid it
* ``V`` review-of-purchase ‖ purchase txid → txid of its review
* ``R`` review ‖ review txid → :class:`~o2ocli.consensus.reviews.ReviewRecord`
* ``M`` review-by-merchant ‖ merchant pubkey hash ‖ height u32 ‖ review txid → empty
* ``E`` review-by-reviewer ‖ reviewer pubkey hash ‖ height u32 ‖ review txid → empty
* ``Y`` review-reply ‖ review txid → txid of the merchant's reply
* ``K`` escrow-settled ‖ escrow outpoint → spending txid ‖ path u8 (how an escrow was settled)
* ``I`` trace-item ‖ item asset → :class:`~o2ocli.consensus.trace.ItemRecord` (traceability)
* ``G`` consent-grant ‖ grant txid → :class:`~o2ocli.consensus.consent.ConsentRecord`
* ``U`` consent-by-user ‖ user pubkey hash ‖ height u32 ‖ grant txid → empty (grants by user)
* ``D`` consent-by-grantee ‖ grantee pubkey hash ‖ height u32 ‖ grant txid → empty
* ``L`` consent-revoked ‖ grant txid → txid of its revocation
* ``Q`` trace-item-moves ‖ item asset ‖ height u32 ‖ txid → empty: every tx that moved the item
* ``B`` token-burns ‖ asset ‖ height u32 ‖ burn txid → amount u64: a token's burns
  (schema 3)
* ``N`` gov-proposal ‖ proposal txid → :class:`~o2ocli.consensus.gov.ProposalRecord` (schema 4)
* ``J`` gov-ballot ‖ proposal txid ‖ voter pubkey hash →
  :class:`~o2ocli.consensus.gov.BallotRecord`: each voter's current ballot (the
  indexed votes a tally is computed from; schema 4)
* ``X`` gov-outpoint ‖ proposal txid ‖ outpoint (wire form, index little-endian) → voter
  pubkey hash: the ballot that counts the coin (schema 4)
* ``S`` coin-spent-at ‖ txid ‖ index u32 → height u32 of the main-chain block that spent
  the coin (schema 4).  Unlike the others it is written by the chainstate itself, for
  every spent coin (one put per input; a disconnect deletes the block's entries), so
  "was this outpoint unspent at height H" is answered by the tx index (creation height,
  ``t``) and one read here: created at or before H and not spent at or before H.  The
  governance vote rule reads it through the O2O state like any namespace.
* ``j`` profile-commit ‖ commitment txid → :class:`~o2ocli.consensus.profile.ProfileRecord`
* ``k`` profile-current ‖ user pubkey hash → txid of the user's newest profile commitment
* ``w`` profile-history ‖ user pubkey hash ‖ height u32 ‖ commitment txid → empty
  (new payload types only, so no schema change: no older database holds them)

Also derived from the O2O payloads, kept by the chainstate itself:

* ``A`` ‖ asset ‖ txid ‖ index u32 → empty: an unspent output of a non-native asset
* ``o`` ‖ block hash → O2O undo data: each O2O key the block wrote, with its
  previous value (or none)

A block's O2O writes are applied (and listed in its undo data) grouped in
the order of :data:`O2O_WRITE_ORDER`, then in the order the block's
transactions wrote them.

Every block connect or disconnect updates all of these (and ``m tip``) in one
write batch; with the UTXO cache on (:mod:`.coincache`) the changes of
several blocks wait in memory and are written, with the ``m tip`` they
belong to, in one batch.

Finality (:mod:`o2ocli.node.finality`):

* ``f`` ‖ block hash → :class:`~o2ocli.consensus.finality.FinalityState` after
  that block (derived from the votes blocks carry; written with the block)
* ``m final`` → height u32 ‖ hash: the highest block this node saw finalized
  (by votes in blocks or gossiped); never lowered
* ``v`` ‖ validator address → this node's last own vote: source height u32 ‖
  target height u32 ‖ the vote encoding ‖ the gossiped votes (encodings) that
  justified its source beyond the chain, if any; written (fsync'd) *before*
  the vote is sent, kept by a reindex, and put back in the vote pool at start
* ``e`` ‖ accused address ‖ evidence id → :class:`~o2ocli.core.finality.Evidence`
  (from blocks or gossip; kept by a reindex)

Validator set snapshots: ``p`` ‖ block hash → the snapshot after that block
(:mod:`o2ocli.node.chain`).  P2P records: see :data:`PEER_ADDR` and :data:`PEER_BAN`.
"""

from __future__ import annotations

BLOCK = b"b"
INDEX = b"i"
HEIGHT = b"h"
UTXO = b"u"
UNDO = b"d"
TXINDEX = b"t"
ADDR_UTXO = b"a"
ADDR_HISTORY = b"r"
META = b"m"
UTXO_COMMIT = b"c"
TOKEN = b"T"
REWARDED = b"W"
REVIEWED = b"V"
REVIEW = b"R"
REPLY = b"Y"
BY_MERCHANT = b"M"
BY_REVIEWER = b"E"
ASSET_UTXO = b"A"
AUTHORITY = b"Z"
ESCROW_SETTLED = b"K"
ITEM = b"I"
ITEM_MOVES = b"Q"
BURNS = b"B"
PROFILE_COMMIT = b"j"
PROFILE_CURRENT = b"k"
PROFILE_HISTORY = b"w"
CONSENT = b"G"
REVOKED = b"L"
BY_USER = b"U"
BY_GRANTEE = b"D"
O2O_UNDO = b"o"
GOV_PROPOSAL = b"N"
GOV_BALLOT = b"J"
GOV_OUTPOINT = b"X"
SPENT_AT = b"S"

O2O_NAMESPACES: dict[str, bytes] = {
    "token": TOKEN,
    "token-authority": AUTHORITY,
    "token-rewarded": REWARDED,
    "review-of-purchase": REVIEWED,
    "review": REVIEW,
    "review-by-merchant": BY_MERCHANT,
    "review-by-reviewer": BY_REVIEWER,
    "review-reply": REPLY,
    "escrow-settled": ESCROW_SETTLED,
    "trace-item": ITEM,
    "consent-grant": CONSENT,
    "consent-by-user": BY_USER,
    "consent-by-grantee": BY_GRANTEE,
    "consent-revoked": REVOKED,
    "trace-item-moves": ITEM_MOVES,
    "token-burns": BURNS,
    "gov-proposal": GOV_PROPOSAL,
    "gov-ballot": GOV_BALLOT,
    "gov-outpoint": GOV_OUTPOINT,
    "coin-spent-at": SPENT_AT,
    "profile-commit": PROFILE_COMMIT,
    "profile-current": PROFILE_CURRENT,
    "profile-history": PROFILE_HISTORY,
}
"""O2O namespace name (declared by its consensus family) → key prefix."""

O2O_WRITE_ORDER: dict[str, int] = {
    "token": 0, "token-authority": 0,
    "token-rewarded": 1,
    "review-of-purchase": 2, "review": 2, "review-by-merchant": 2, "review-by-reviewer": 2,
    "review-reply": 3,
    "escrow-settled": 4,
    "trace-item": 5,
    "consent-grant": 6, "consent-by-user": 6, "consent-by-grantee": 6,
    "consent-revoked": 7,
    "trace-item-moves": 8,
    "token-burns": 9,
    "gov-proposal": 10, "gov-ballot": 10, "gov-outpoint": 10, "coin-spent-at": 10,
    "profile-commit": 20, "profile-current": 20, "profile-history": 20,
}
"""Group of each namespace in a block's O2O writes (the order of the undo
data; writes of one group keep the order the block made them in).  Groups
0-8 are schema 2's order; a namespace added later gets a new group after
them (``token-burns``, schema 3), so the entries of the older namespaces keep
their order.  A namespace missing here goes last."""

O2O_PREFIXES = (*O2O_NAMESPACES.values(), ASSET_UTXO, O2O_UNDO)
"""Every key space derived from the O2O payloads (a reindex rebuilds them)."""

SNAPSHOT = b"p"

REINDEX_MARKER = b"!reindex"

META_TIP = META + b"tip"
META_GENESIS = META + b"genesis"
META_BEST = META + b"best"
META_SCHEMA = META + b"schema"
META_FINAL = META + b"final"

FINALITY = b"f"
OWN_VOTE = b"v"
EVIDENCE = b"e"

SCHEMA_VERSION = 4
"""Version of this key layout, stored under ``m schema`` when a database is
created.  A database of another version is refused when it opens (run
``node reindex``, which rebuilds it in this layout).  History: 2 = the tx index
holds each tx's offset and length; 3 = the ``B`` token-burns index; 4 = the
governance key spaces, the ``S`` spent-at index and the ``c`` UTXO set
commitment per block."""


def block_key(block_hash: bytes) -> bytes:
    """Key of a stored block."""
    return BLOCK + block_hash


def index_key(block_hash: bytes) -> bytes:
    """Key of a block index entry."""
    return INDEX + block_hash


def height_key(height: int) -> bytes:
    """Key of the main-chain hash at ``height``."""
    return HEIGHT + height.to_bytes(4, "big")


def utxo_key(outpoint_bytes: bytes) -> bytes:
    """Key of an unspent output (``outpoint_bytes`` = txid ‖ index BE)."""
    return UTXO + outpoint_bytes


def undo_key(block_hash: bytes) -> bytes:
    """Key of a block's undo data."""
    return UNDO + block_hash


def commit_key(block_hash: bytes) -> bytes:
    """Key of the UTXO set commitment after a block."""
    return UTXO_COMMIT + block_hash


def tx_key(txid: bytes) -> bytes:
    """Key of a tx index entry."""
    return TXINDEX + txid


def addr_utxo_key(pubkey_hash: bytes, outpoint_bytes: bytes) -> bytes:
    """Key of an address → unspent output index entry."""
    return ADDR_UTXO + pubkey_hash + outpoint_bytes


def addr_history_key(pubkey_hash: bytes, height: int, txid: bytes) -> bytes:
    """Key of an address → transaction history entry."""
    return ADDR_HISTORY + pubkey_hash + height.to_bytes(4, "big") + txid


def o2o_key(key: tuple[str, bytes]) -> bytes:
    """The database key of an O2O state key (namespace, id)."""
    return O2O_NAMESPACES[key[0]] + key[1]


def o2o_undo_key(block_hash: bytes) -> bytes:
    """Key of a block's O2O undo data."""
    return O2O_UNDO + block_hash


# P2P records (:mod:`o2ocli.p2p`; kept by a reindex, which rebuilds only the chainstate):
#
# * ``n`` ‖ "host:port" → JSON address book entry; ``n`` ‖ 00 ‖ "key" → the
#   32-byte bucket secret (see :class:`o2ocli.p2p.addrman.AddrStore`)
# * ``x`` ‖ host → operator ban: until (unix time, u64)
PEER_ADDR = b"n"
PEER_BAN = b"x"
