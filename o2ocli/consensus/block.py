"""Block validity rules (structure and transactions; the PoA seal rules are separate).

:func:`check_block_structure` is context free.  :func:`apply_block` checks a
block's transactions against a UTXO view of its parent, in order, and returns
the block's effects (coins spent, coins created, fees) without changing
anything: the caller (the chainstate) writes them atomically.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from o2ocli.core.block import BLOCK_VERSION, BLOCK_VERSION_VOTES, Block, BlockHeader
from o2ocli.core.payloads import Coinbase, GenesisAlloc
from o2ocli.core.tx import Coin, Outpoint, Tx

from .errors import BlockInvalid, TxInvalid
from .locks import SigCheck
from .o2o import EMPTY_STATE, O2OBlockView, O2OEffect, O2OState
from .params import MAX_AMOUNT, ConsensusParams
from .tx import Verifier, check_transaction, check_tx_contextual, serial_verifier

__all__ = [
    "BlockEffects",
    "check_header_version",
    "check_block_size",
    "check_merkle_root",
    "check_fee_claim_placement",
    "check_no_duplicate_txids",
    "check_block_structure",
    "check_block_links",
    "check_fee_claim",
    "apply_block",
    "check_genesis_block",
    "genesis_effects",
    "witness_checks",
]


@dataclass(frozen=True, slots=True)
class BlockEffects:
    """What connecting a block does to the UTXO set."""

    spent: tuple[tuple[Outpoint, Coin], ...]
    """Coins of the parent's UTXO set spent, in block order (the block's undo
    data; coins both created and spent inside the block are not in it)."""
    created: tuple[tuple[Outpoint, Coin], ...]
    """Coins created and still unspent at the end of the block."""
    fees: int
    """Sum of the native-coin fees of the block's ordinary transactions."""
    o2o: O2OEffect = field(default_factory=O2OEffect)
    """Changes to the O2O state (token registry, rewards, reviews, replies)."""


def _fail(tx_index: int, tx: Tx, exc: TxInvalid) -> BlockInvalid:
    return BlockInvalid(exc.reason, f"tx {tx_index} ({tx.txid.hex()[:16]}…): {exc.message}",
                        tx.txid)


def check_header_version(header: BlockHeader) -> None:
    """Rule: the header format version is :data:`~o2ocli.core.block.BLOCK_VERSION`
    (1, no finality votes) or :data:`~o2ocli.core.block.BLOCK_VERSION_VOTES` (2,
    votes and evidence after the transactions); a later format must be
    introduced deliberately, not slipped in."""
    if header.version not in (BLOCK_VERSION, BLOCK_VERSION_VOTES):
        raise BlockInvalid("bad-blk-version", f"unsupported block version {header.version}")


def check_block_size(block: Block, params: ConsensusParams) -> None:
    """Rule: the encoded block is at most ``max_block_size`` bytes and holds at
    most ``max_block_txs`` transactions."""
    if len(block.txs) > params.max_block_txs:
        raise BlockInvalid("bad-blk-length", f"{len(block.txs)} txs, limit {params.max_block_txs}")
    if block.size > params.max_block_size:
        raise BlockInvalid(
            "bad-blk-length", f"block is {block.size} bytes, limit {params.max_block_size}"
        )


def check_merkle_root(block: Block) -> None:
    """Rule: the header's merkle root is the root of the block's wtxids (full
    encodings, witnesses included; see :func:`o2ocli.core.block.tx_merkle_root`),
    combined with the roots of its votes and evidence in a version 2 block
    (:func:`o2ocli.core.block.block_commitment`)."""
    if block.compute_merkle_root() != block.header.merkle_root:
        raise BlockInvalid("bad-txnmrklroot", "merkle root does not match the transactions")


def check_fee_claim_placement(block: Block) -> None:
    """Rule: only the first transaction may be a fee claim, and its
    :class:`~o2ocli.core.payloads.Coinbase` payload names this block's height."""
    for i, tx in enumerate(block.txs):
        if isinstance(tx.payload, Coinbase):
            if i != 0:
                raise BlockInvalid("bad-cb-multiple", f"tx {i} is a fee claim but not the first")
            if tx.payload.height != block.header.height:
                raise BlockInvalid(
                    "bad-cb-height",
                    f"fee claim is for height {tx.payload.height}, block is {block.header.height}",
                )


def check_no_duplicate_txids(block: Block) -> None:
    """Rule: no transaction appears twice in a block."""
    seen: set[bytes] = set()
    for i, tx in enumerate(block.txs):
        if tx.txid in seen:
            raise BlockInvalid("bad-blk-duplicate-tx", f"tx {i} repeats an earlier transaction")
        seen.add(tx.txid)


def check_block_structure(block: Block, params: ConsensusParams) -> None:
    """All context-free block rules, then every transaction's context-free rules."""
    check_header_version(block.header)
    check_block_size(block, params)
    check_merkle_root(block)
    check_no_duplicate_txids(block)
    check_fee_claim_placement(block)
    for i, tx in enumerate(block.txs):
        try:
            check_transaction(tx, params)
        except TxInvalid as exc:
            raise _fail(i, tx, exc) from None


def check_block_links(header: BlockHeader, parent: BlockHeader) -> None:
    """Rule: a block extends its parent: ``prev_hash`` is the parent's hash and
    the height is the parent's plus one."""
    if header.prev_hash != parent.hash:
        raise BlockInvalid("bad-prevblk", "prev_hash is not the parent's hash")
    if header.height != parent.height + 1:
        raise BlockInvalid(
            "bad-blk-height", f"height {header.height} does not follow parent {parent.height}"
        )


def check_fee_claim(tx: Tx, fees: int) -> None:
    """Rule: a fee claim creates exactly the block's fees in native coin, no more
    and no less (so no native coin is ever created after genesis)."""
    claimed = sum(out.amount for out in tx.outputs)
    if claimed != fees:
        raise BlockInvalid(
            "bad-cb-amount", f"fee claim pays {claimed}, the block's fees are {fees}"
        )


class _BlockView:
    """The parent's UTXO view plus the coins created and spent so far in the block."""

    __slots__ = ("base", "created", "spent")

    def __init__(self, base: object) -> None:
        self.base = base
        self.created: dict[Outpoint, Coin] = {}
        self.spent: set[Outpoint] = set()


def apply_block(
    block: Block,
    view: object,
    params: ConsensusParams,
    verifier: Verifier = serial_verifier,
    state: O2OState = EMPTY_STATE,
) -> BlockEffects:
    """Check every transaction of ``block`` in order against ``view`` (the UTXO
    set at the parent, anything with ``get(outpoint) -> Coin | None``) and
    ``state`` (the O2O state at the parent).

    Rules applied on top of each transaction's own:

    * a transaction may spend outputs of *earlier* transactions of the same
      block, never of later ones (``bad-blk-spend-order``);
    * no outpoint is spent twice in the block (``bad-blk-duplicate-input``);
    * the fee claim, if any, claims exactly the fees (:func:`check_fee_claim`);
    * all signatures verify (checked in one batch after the cheaper rules, so
      when a block breaks several rules the reason reported is the cheapest).

    A ``verifier`` with a ``stream()`` method (returning a session with
    ``add(checks)``, ``finish() -> failing index | None`` and ``cancel()``,
    e.g. :class:`~o2ocli.crypto.batch.ProcessVerifier`) is handed each
    transaction's checks as they are found, so it can verify them while the
    later transactions are checked; the outcome, and the reason reported,
    are the same as with one batch at the end.

    The structure is assumed checked (:func:`check_block_structure`).
    """
    stream = getattr(verifier, "stream", None)
    session = stream() if stream is not None else None
    if session is None:
        return _apply_block(block, view, params, verifier, state, None)
    try:
        return _apply_block(block, view, params, verifier, state, session)
    except BaseException:
        session.cancel()
        raise


def _apply_block(
    block: Block,
    view: object,
    params: ConsensusParams,
    verifier: Verifier,
    state: O2OState,
    session: Any,
) -> BlockEffects:
    """:func:`apply_block`; ``session`` streams the checks (or None)."""
    height = block.header.height
    position = {tx.txid: i for i, tx in enumerate(block.txs)}
    get_base = view.get  # type: ignore[attr-defined]
    created: dict[Outpoint, Coin] = {}
    spent_set: set[Outpoint] = set()
    spent: list[tuple[Outpoint, Coin]] = []
    all_checks: list[SigCheck] = []
    check_owner: list[int] = []
    fees = 0
    o2o = O2OBlockView(state)
    new_outpoint, new_coin = Outpoint.unchecked, Coin.unchecked  # txids are computed
    for i, tx in enumerate(block.txs):
        txid = tx.txid
        if not tx.is_coinbase:
            coins = []
            for txin in tx.inputs:
                prevout = txin.prevout
                if prevout in spent_set:
                    reason, why = "bad-blk-duplicate-input", f"{prevout} is spent twice in a block"
                    raise _fail(i, tx, TxInvalid(reason, why))
                coin = created.pop(prevout, None)
                from_parent = coin is None
                if from_parent:
                    coin = get_base(prevout)
                if coin is None:
                    if position.get(prevout.txid, -1) >= i:
                        reason, why = "bad-blk-spend-order", f"{prevout} is created by a later tx"
                    else:
                        reason, why = "bad-txns-inputs-missingorspent", f"{prevout} is missing"
                    raise _fail(i, tx, TxInvalid(reason, why))
                spent_set.add(prevout)
                if from_parent:
                    spent.append((prevout, coin))
                coins.append(coin)
            try:
                fee, checks, effect = check_tx_contextual(tx, coins, height, params, o2o)
            except TxInvalid as exc:
                raise _fail(i, tx, exc) from None
            o2o.apply(effect)
            fees += fee
            if fees > MAX_AMOUNT:
                raise BlockInvalid("bad-blk-fees", "block fees overflow")
            all_checks.extend(checks)
            check_owner.extend([i] * len(checks))
            if session is not None and checks:
                session.add(checks)
        is_cb = tx.is_coinbase
        for index, out in enumerate(tx.outputs):
            created[new_outpoint(txid, index)] = new_coin(out, height, is_cb)
    if block.txs and block.txs[0].is_coinbase:
        check_fee_claim(block.txs[0], fees)
    failed = verifier(all_checks) if session is None else session.finish()
    if failed is not None:
        i = check_owner[failed]
        raise _fail(
            i, block.txs[i], TxInvalid("bad-txns-signature", "a witness signature does not verify")
        )
    return BlockEffects(tuple(spent), tuple(created.items()), fees, o2o.changes)


def witness_checks(block: Block, chain_id: str) -> list[SigCheck]:
    """The (pubkey, signature, sighash) of every witness pair in ``block``,
    known before the coins its inputs spend are: what the lock rules ask to
    verify for pay-to-address, multisig and escrow inputs.  For verifying
    ahead (:meth:`~o2ocli.crypto.batch.CachingVerifier.prefetch`) only: a
    check listed here proves nothing by itself."""
    checks: list[SigCheck] = []
    append = checks.append
    for tx in block.txs:
        if not tx.inputs:
            continue
        digest = tx.sighash(chain_id)
        for txin in tx.inputs:
            for pair in txin.witness:
                append((pair.pubkey, pair.signature, digest))
    return checks


def check_genesis_block(block: Block) -> None:
    """Rule: the genesis block is height 0 with a zero parent, its merkle root
    matches, and every transaction is a genesis allocation without inputs."""
    header = block.header
    if header.height != 0 or header.prev_hash != bytes(32):
        raise BlockInvalid("bad-genesis", "genesis must be height 0 with a zero prev_hash")
    check_merkle_root(block)
    check_no_duplicate_txids(block)
    for i, tx in enumerate(block.txs):
        if tx.inputs or not isinstance(tx.payload, GenesisAlloc):
            raise BlockInvalid("bad-genesis", f"genesis tx {i} is not an allocation")
        for out in tx.outputs:
            if not 1 <= out.amount <= MAX_AMOUNT:
                raise BlockInvalid("bad-genesis", f"genesis tx {i} has an amount out of range")


def genesis_effects(block: Block) -> BlockEffects:
    """The coins the genesis block creates (it spends none and pays no fees)."""
    check_genesis_block(block)
    created = tuple(
        (Outpoint(tx.txid, index), Coin(out, 0, False))
        for tx in block.txs
        for index, out in enumerate(tx.outputs)
    )
    return BlockEffects((), created, 0)
