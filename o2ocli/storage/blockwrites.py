"""What connecting or disconnecting one block writes to the chain database.

:func:`write_connect` and :func:`write_disconnect` fill one write batch (the
caller commits it, with the tip pointer, atomically): the UTXO set and its
address and asset indexes, the spent-at index, the tx index, the address
history, the height index, and the O2O state.  The O2O writes are generic (namespace, id) → value
pairs (:mod:`o2ocli.consensus.state`), mapped to prefixes by :mod:`.schema`;
their previous values are kept as the block's O2O undo data (key ``o``), and
disconnecting puts them back.

Undo data encodings::

    undo (key d):      count:varint ‖ (outpoint (36) ‖ var_bytes(coin)) per spent coin
    O2O undo (key o):  count:varint ‖ (var_bytes(key) ‖ u8 has-old ‖ [var_bytes(old)]) per write
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from o2ocli.consensus.block import BlockEffects
from o2ocli.consensus.o2o import block_writes
from o2ocli.consensus.state import O2OEffect, O2OState, StateKey
from o2ocli.core.block import Block
from o2ocli.core.encoding import Reader, Writer, varint_size
from o2ocli.core.tx import NATIVE_ASSET, Coin, Outpoint, Tx

from . import schema as k
from .db import Database

__all__ = [
    "encode_undo",
    "decode_undo",
    "encode_o2o_undo",
    "decode_o2o_undo",
    "o2o_writes",
    "write_connect",
    "write_disconnect",
]


def encode_undo(spent: tuple[tuple[Outpoint, Coin], ...]) -> bytes:
    w = Writer()
    w.varint(len(spent))
    parts = [w.getvalue()]
    append = parts.append
    for outpoint, coin in spent:
        data = coin.to_bytes()
        append(outpoint.txid + outpoint.index.to_bytes(4, "big"))
        if len(data) < 0xFD:  # the varint length is one byte
            append(bytes((len(data),)) + data)
        else:
            w = Writer()
            w.var_bytes(data)
            append(w.getvalue())
    return b"".join(parts)


def decode_undo(data: bytes) -> list[tuple[Outpoint, Coin]]:
    r = Reader(data)
    n = r.count("undo entry", 10_000_000)
    out = []
    for _ in range(n):
        outpoint = Outpoint.from_bytes(r.raw(36, "undo outpoint"))
        out.append((outpoint, Coin.from_bytes(r.var_bytes("undo coin", 1 << 20))))
    r.finish("undo data")
    return out


def encode_o2o_undo(entries: list[tuple[bytes, bytes | None]]) -> bytes:
    w = Writer()
    w.varint(len(entries))
    for key, old in entries:
        w.var_bytes(key)
        w.u8(0 if old is None else 1)
        if old is not None:
            w.var_bytes(old)
    return w.getvalue()


def decode_o2o_undo(data: bytes) -> list[tuple[bytes, bytes | None]]:
    r = Reader(data)
    n = r.count("o2o undo entry", 10_000_000)
    out: list[tuple[bytes, bytes | None]] = []
    for _ in range(n):
        key = r.var_bytes("o2o undo key", 1024)
        old = r.var_bytes("o2o undo value", 1 << 20) if r.u8("o2o undo flag") else None
        out.append((key, old))
    r.finish("o2o undo data")
    return out


def o2o_writes(block: Block, changes: O2OEffect, state: object) -> list[tuple[StateKey,
                                                                                 bytes | None]]:
    """A block's O2O writes (:func:`~o2ocli.consensus.o2o.block_writes`) in
    write order (:data:`~o2ocli.storage.schema.O2O_WRITE_ORDER`)."""
    items = block_writes(block.txs, block.height, changes, state)  # type: ignore[arg-type]
    if len(items) > 1:
        order = k.O2O_WRITE_ORDER
        last = len(order)
        items.sort(key=lambda item: order.get(item[0][0], last))
    return items


def write_connect(
    db: Database, batch: object, block: Block, effects: BlockEffects, state: O2OState
) -> None:
    """Add to ``batch`` everything connecting ``block`` (with ``effects``, as
    found by :func:`~o2ocli.consensus.block.apply_block` against ``state``) writes.

    The keys of one kind (all new in the common case) are handed over together
    (``put_many`` when the batch has it: the UTXO cache applies such a group
    with dict operations instead of one Python step per key)."""
    put = batch.put  # type: ignore[attr-defined]
    delete = batch.delete  # type: ignore[attr-defined]
    put_many = getattr(batch, "put_many", None) or _put_each(put)
    height = block.height
    spent_coins = dict(effects.spent)
    spent_height = height.to_bytes(4, "big")
    utxo, addr_utxo, asset_utxo = k.UTXO, k.ADDR_UTXO, k.ASSET_UTXO
    for outpoint, coin in effects.spent:
        key = outpoint.txid + outpoint.index.to_bytes(4, "big")
        delete(utxo + key)
        for address in coin.output.lock.addresses():
            delete(addr_utxo + address + key)
        if coin.output.asset != NATIVE_ASSET:
            delete(asset_utxo + coin.output.asset + key)
    coins: dict[bytes, bytes] = {}
    coin_addresses: dict[bytes, bytes] = {}
    coin_assets: dict[bytes, bytes] = {}
    for outpoint, coin in effects.created:
        key = outpoint.txid + outpoint.index.to_bytes(4, "big")
        coins[utxo + key] = coin.to_bytes()
        for address in coin.output.lock.addresses():
            coin_addresses[addr_utxo + address + key] = b""
        if coin.output.asset != NATIVE_ASSET:
            coin_assets[asset_utxo + coin.output.asset + key] = b""
    put_many(coins)
    put_many(coin_addresses)
    if coin_assets:
        put_many(coin_assets)
    writes = o2o_writes(block, effects.o2o, state)
    if writes:
        # Generic: each (namespace, id) → value, with the previous value as undo.
        prefixes = k.O2O_NAMESPACES
        db_get = db.get
        undo: list[tuple[bytes, bytes | None]] = []
        for (namespace, ident), value in writes:
            key = prefixes[namespace] + ident
            undo.append((key, db_get(key)))
            if value is None:
                delete(key)
            else:
                put(key, value)
        put(k.o2o_undo_key(block.hash), encode_o2o_undo(undo))
    offset = len(block.header.to_bytes()) + varint_size(len(block.txs))
    block_hash = block.hash
    tx_index: dict[bytes, bytes] = {}
    spent_at: dict[bytes, bytes] = {}
    history: dict[bytes, bytes] = {}
    tx_key, history_key, spent_prefix = k.tx_key, k.addr_history_key, k.SPENT_AT
    for position, tx in enumerate(block.txs):
        txid = tx.txid
        size = tx.size
        tx_index[tx_key(txid)] = (block_hash + position.to_bytes(4, "little")
                                  + offset.to_bytes(4, "little") + size.to_bytes(4, "little"))
        offset += size
        for txin in tx.inputs:  # every spend, also of a coin created in this block
            prevout = txin.prevout
            spent_at[spent_prefix + prevout.txid + prevout.index.to_bytes(4, "big")] = spent_height
        for address in _tx_addresses(tx, block, spent_coins):
            history[history_key(address, height, txid)] = b""
    put_many(tx_index)
    put_many(spent_at)
    put_many(history)
    put(k.height_key(height), block.hash)
    put(k.META_TIP, block.hash)


def _put_each(put: Callable[[bytes, bytes], None]) -> Callable[[dict[bytes, bytes]], None]:
    def put_many(items: dict[bytes, bytes]) -> None:
        for key, value in items.items():
            put(key, value)

    return put_many


def write_disconnect(
    batch: object,
    block: Block,
    spent: Sequence[tuple[Outpoint, Coin]],
    o2o_undo: Sequence[tuple[bytes, bytes | None]],
) -> None:
    """Add to ``batch`` what undoes ``block`` (the tip): its O2O writes
    (``o2o_undo``, decoded O2O undo data), its outputs and indexes, and the
    coins it spent (``spent``, its decoded undo data) back in the UTXO set."""
    put = batch.put  # type: ignore[attr-defined]
    delete = batch.delete  # type: ignore[attr-defined]
    block_hash = block.hash
    height = block.height
    spent_coins = dict(spent)
    # Restore in reverse order, so a key written twice gets its oldest value.
    for key, old in reversed(o2o_undo):
        if old is None:
            delete(key)
        else:
            put(key, old)
    delete(k.o2o_undo_key(block_hash))
    for tx in block.txs:
        txid = tx.txid
        for index, out in enumerate(tx.outputs):
            key = txid + index.to_bytes(4, "big")
            delete(k.UTXO + key)
            for address in out.lock.addresses():
                delete(k.ADDR_UTXO + address + key)
            if out.asset != NATIVE_ASSET:
                delete(k.ASSET_UTXO + out.asset + key)
        delete(k.tx_key(txid))
        for txin in tx.inputs:
            delete(k.SPENT_AT + txin.prevout.to_bytes())
        for address in _tx_addresses(tx, block, spent_coins):
            delete(k.addr_history_key(address, height, txid))
    for outpoint, coin in spent:
        key = outpoint.to_bytes()
        put(k.UTXO + key, coin.to_bytes())
        for address in coin.output.lock.addresses():
            put(k.ADDR_UTXO + address + key, b"")
        if coin.output.asset != NATIVE_ASSET:
            put(k.ASSET_UTXO + coin.output.asset + key, b"")
    delete(k.undo_key(block_hash))
    delete(k.height_key(height))


def _tx_addresses(tx: Tx, block: Block, spent_coins: dict[Outpoint, Coin]) -> set[bytes]:
    """Addresses a tx touches: its outputs' and the spent coins' lock addresses."""
    addresses: set[bytes] = set()
    for out in tx.outputs:
        addresses.update(out.lock.addresses())
    block_txs: dict[bytes, Tx] | None = None
    for txin in tx.inputs:
        coin = spent_coins.get(txin.prevout)
        if coin is not None:
            addresses.update(coin.output.lock.addresses())
            continue
        # Spent an output created earlier in the same block.
        if block_txs is None:
            block_txs = {t.txid: t for t in block.txs}
        earlier = block_txs[txin.prevout.txid]
        addresses.update(earlier.outputs[txin.prevout.index].lock.addresses())
    return addresses
