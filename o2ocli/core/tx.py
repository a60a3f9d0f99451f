"""Transactions: outpoints, inputs, outputs, witnesses, and their encoding.

Byte layout (all integers little-endian, see :mod:`o2ocli.core.encoding`)::

    Tx     := version:u32
              n_in:varint  { prev_txid:32  prev_index:u32 } * n_in
              n_out:varint { asset  amount:u64  lock } * n_out
              lock_height:u32
              payload
              -- end of the *stripped* encoding (hashed into the txid) --
              { n_pairs:varint { pubkey:33  signature:64 } * n_pairs } * n_in
    asset  := 0x00                     (the native coin)
            | 0x01 asset_id:32         (a token; id never all zero)

* ``txid = SHA-256d(stripped encoding)``: witnesses are excluded, so a txid
  cannot be changed by re-encoding or re-signing.
* ``sighash = SHA-256d(var_bytes("o2o/sighash/v1") ‖ var_bytes(chain_id) ‖
  stripped encoding)``.  Every signature of every input signs this one
  digest; it commits to the chain id (no replay across networks) and to all
  inputs, outputs, the lock height and the payload.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from o2ocli.crypto.hashes import sha256d

from .encoding import MAX_U32, MAX_U64, DecodeError, Reader, Writer, domain_preimage
from .limits import MAX_TX_BYTES, MAX_TX_INPUTS, MAX_TX_OUTPUTS, MAX_WITNESS_PAIRS
from .locks import Lock, PayToAddress, decode_lock, encode_lock, lock_bytes
from .payloads import NO_PAYLOAD, Coinbase, Payload, decode_payload, encode_payload

__all__ = [
    "NATIVE_ASSET",
    "Outpoint",
    "SigPair",
    "TxIn",
    "TxOut",
    "Tx",
    "Coin",
    "SIGHASH_TAG",
    "TX_VERSION",
]

NATIVE_ASSET = bytes(32)
"""Asset id of the native coin (encoded as the single byte 0x00)."""

TX_VERSION = 1
SIGHASH_TAG = b"o2o/sighash/v1"
PUBKEY_SIZE = 33
SIGNATURE_SIZE = 64


_new = object.__new__
_set = object.__setattr__
_U32_FROM = struct.Struct("<I").unpack_from
_U64_FROM = struct.Struct("<Q").unpack_from


def _check_hash(value: bytes, what: str) -> None:
    if not isinstance(value, bytes) or len(value) != 32:
        raise ValueError(f"{what} must be 32 bytes")


@dataclass(frozen=True, slots=True)
class Outpoint:
    """A reference to output ``index`` of transaction ``txid``."""

    txid: bytes
    """32-byte id of the transaction that created the output."""
    index: int
    """Position of the output in that transaction (u32)."""

    def __post_init__(self) -> None:
        _check_hash(self.txid, "outpoint txid")
        if not 0 <= self.index <= MAX_U32:
            raise ValueError("outpoint index out of range")

    def __hash__(self) -> int:
        # The txid's hash is kept by the bytes object; no tuple is built.
        return hash(self.txid) ^ self.index

    def to_bytes(self) -> bytes:
        """36 bytes: txid ‖ index (u32 big-endian, so keys sort by index)."""
        return self.txid + self.index.to_bytes(4, "big")

    @classmethod
    def unchecked(cls, txid: bytes, index: int) -> Outpoint:
        """The outpoint of output ``index`` of a transaction whose ``txid`` was
        computed (32 bytes) and that has more than ``index`` outputs, built
        without the frozen ``__init__`` and its checks (0.26 instead of
        0.49 µs; block connect makes one per output).  Equal to
        ``Outpoint(txid, index)`` (tested)."""
        outpoint = _new(cls)
        _set_outpoint_txid(outpoint, txid)
        _set_outpoint_index(outpoint, index)
        return outpoint

    @classmethod
    def from_bytes(cls, data: bytes) -> Outpoint:
        """Inverse of :meth:`to_bytes`."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise DecodeError(f"expected bytes, got {type(data).__name__}")
        data = bytes(data)
        if len(data) != 36:
            raise DecodeError("outpoint key must be 36 bytes")
        return cls(data[:32], int.from_bytes(data[32:], "big"))

    def __str__(self) -> str:
        return f"{self.txid.hex()}:{self.index}"


@dataclass(frozen=True, slots=True)
class SigPair:
    """One (public key, signature) pair in an input's witness."""

    pubkey: bytes
    """33-byte compressed secp256k1 public key."""
    signature: bytes
    """64-byte ``r‖s`` ECDSA signature over the tx's sighash (low-S)."""

    def __post_init__(self) -> None:
        if not isinstance(self.pubkey, bytes) or len(self.pubkey) != PUBKEY_SIZE:
            raise ValueError("witness pubkey must be 33 bytes")
        if not isinstance(self.signature, bytes) or len(self.signature) != SIGNATURE_SIZE:
            raise ValueError("witness signature must be 64 bytes")


@dataclass(frozen=True, slots=True)
class TxIn:
    """An input: the outpoint it spends and the witness that unlocks it."""

    prevout: Outpoint
    """The output being spent."""
    witness: tuple[SigPair, ...] = ()
    """Pairs satisfying the spent output's lock (empty while unsigned)."""


@dataclass(frozen=True, slots=True)
class TxOut:
    """An output: ``amount`` base units of ``asset`` under ``lock``."""

    asset: bytes
    """32-byte asset id; :data:`NATIVE_ASSET` for the native coin."""
    amount: int
    """Amount in base units (u64; consensus requires ≥ 1)."""
    lock: Lock
    """Who may spend it."""

    def __post_init__(self) -> None:
        _check_hash(self.asset, "asset id")
        if not 0 <= self.amount <= MAX_U64:
            raise ValueError("amount out of u64 range")

    def encode(self, w: Writer) -> None:
        """Append asset, amount and lock."""
        if self.asset == NATIVE_ASSET:
            w.u8(0)
        else:
            w.u8(1)
            w.raw(self.asset)
        w.u64(self.amount)
        encode_lock(self.lock, w)

    @classmethod
    def decode(cls, r: Reader) -> TxOut:
        """Read one output."""
        flag = r.u8("asset flag")
        if flag == 0:
            asset = NATIVE_ASSET
        elif flag == 1:
            asset = r.raw(32, "asset id")
            if asset == NATIVE_ASSET:
                raise DecodeError("native asset must be encoded as flag 0x00")
        else:
            raise DecodeError(f"unknown asset flag 0x{flag:02x}")
        amount = r.u64("amount")
        return cls(asset, amount, decode_lock(r))


@dataclass(frozen=True, slots=True)
class Tx:
    """An immutable transaction.  Build a new one with :func:`dataclasses.replace`."""

    inputs: tuple[TxIn, ...]
    """Spent outputs with their witnesses."""
    outputs: tuple[TxOut, ...]
    """Created outputs."""
    lock_height: int = 0
    """The tx is valid only in blocks at this height or above (u32)."""
    payload: Payload = NO_PAYLOAD
    """O2O data (tagged union)."""
    version: int = TX_VERSION
    """Format version (u32); consensus accepts only :data:`TX_VERSION`."""
    _stripped: bytes | None = field(default=None, init=False, repr=False, compare=False)
    _txid: bytes | None = field(default=None, init=False, repr=False, compare=False)
    _size: int | None = field(default=None, init=False, repr=False, compare=False)
    _wtxid: bytes | None = field(default=None, init=False, repr=False, compare=False)
    _full: bytes | None = field(default=None, init=False, repr=False, compare=False)
    _sighash: tuple[str, bytes] | None = field(default=None, init=False, repr=False,
                                                compare=False)

    def __post_init__(self) -> None:
        if not 0 <= self.lock_height <= MAX_U32:
            raise ValueError("lock_height out of range")
        if not 0 <= self.version <= MAX_U32:
            raise ValueError("version out of range")

    # -- encoding ---------------------------------------------------------
    def stripped_bytes(self) -> bytes:
        """The encoding without witnesses (the txid and sighash preimage)."""
        cached = self._stripped
        if cached is None:
            w = Writer()
            w.u32(self.version)
            w.varint(len(self.inputs))
            for txin in self.inputs:
                w.raw(txin.prevout.txid)
                w.u32(txin.prevout.index)
            w.varint(len(self.outputs))
            for out in self.outputs:
                out.encode(w)
            w.u32(self.lock_height)
            encode_payload(self.payload, w)
            cached = w.getvalue()
            object.__setattr__(self, "_stripped", cached)
        return cached

    def encode(self, w: Writer) -> None:
        """Append the full encoding (stripped part, then witnesses)."""
        w.raw(self.stripped_bytes())
        for txin in self.inputs:
            w.varint(len(txin.witness))
            for pair in txin.witness:
                w.raw(pair.pubkey)
                w.raw(pair.signature)

    def to_bytes(self) -> bytes:
        """Full canonical encoding (cached)."""
        cached = self._full
        if cached is None:
            w = Writer()
            self.encode(w)
            cached = w.getvalue()
            object.__setattr__(self, "_full", cached)
        return cached

    @classmethod
    def decode(cls, r: Reader) -> Tx:
        """Read one transaction from ``r`` (leaves the reader after it).

        This is the hot path of block download, so the common shapes (native
        or token outputs under pay-to-address locks, one-key witnesses) are read
        inline; the values are bounds- and range-checked here, so the objects
        are assembled without re-running their constructors' checks.  Anything
        else goes through the generic decoders.
        """
        start = r.pos
        version = r.u32("tx version")
        n_in = r.count("input", MAX_TX_INPUTS)
        data = r._data
        end = r._end
        pos = r._pos
        if pos + 36 * n_in > end:  # the generic reads name the exact truncated field
            for _ in range(n_in):
                r.raw(32, "input txid")
                r.u32("input index")
        prevouts = []
        for _ in range(n_in):
            op = _new(Outpoint)
            _set(op, "txid", data[pos : pos + 32])
            _set(op, "index", _U32_FROM(data, pos + 32)[0])
            prevouts.append(op)
            pos += 36
        r._pos = pos
        n_out = r.count("output", MAX_TX_OUTPUTS)
        outputs = []
        for _ in range(n_out):
            pos = r._pos
            if pos + 30 <= end and data[pos] == 0 and data[pos + 9] == PayToAddress.TAG:
                lock = _new(PayToAddress)
                _set(lock, "pubkey_hash", data[pos + 10 : pos + 30])
                out = _new(TxOut)
                _set(out, "asset", NATIVE_ASSET)
                _set(out, "amount", _U64_FROM(data, pos + 1)[0])
                _set(out, "lock", lock)
                r._pos = pos + 30
                outputs.append(out)
            else:
                outputs.append(TxOut.decode(r))
        lock_height = r.u32("lock_height")
        payload = decode_payload(r)
        stripped_end = r.pos
        inputs = []
        for prevout in prevouts:
            n_pairs = r.count("witness pair", MAX_WITNESS_PAIRS)
            pos = r._pos
            if pos + (PUBKEY_SIZE + SIGNATURE_SIZE) * n_pairs > end:
                for _ in range(n_pairs):  # names the exact truncated field
                    r.raw(PUBKEY_SIZE, "witness pubkey")
                    r.raw(SIGNATURE_SIZE, "signature")
            pairs = []
            for _ in range(n_pairs):
                pair = _new(SigPair)
                sig_at = pos + PUBKEY_SIZE
                _set(pair, "pubkey", data[pos:sig_at])
                _set(pair, "signature", data[sig_at : sig_at + SIGNATURE_SIZE])
                pairs.append(pair)
                pos = sig_at + SIGNATURE_SIZE
            r._pos = pos
            txin = _new(TxIn)
            _set(txin, "prevout", prevout)
            _set(txin, "witness", tuple(pairs))
            inputs.append(txin)
        tx = _new(cls)
        _set(tx, "inputs", tuple(inputs))
        _set(tx, "outputs", tuple(outputs))
        _set(tx, "lock_height", lock_height)
        _set(tx, "payload", payload)
        _set(tx, "version", version)
        _set(tx, "_stripped", r.slice(start, stripped_end))
        _set(tx, "_txid", None)
        _set(tx, "_size", r.pos - start)
        _set(tx, "_wtxid", None)
        _set(tx, "_full", r.slice(start, r.pos))
        _set(tx, "_sighash", None)
        return tx

    @classmethod
    def from_bytes(cls, data: bytes) -> Tx:
        """Decode exactly one transaction; trailing bytes are an error."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise DecodeError(f"expected bytes, got {type(data).__name__}")
        if len(data) > MAX_TX_BYTES:
            raise DecodeError(f"transaction too large: {len(data)} bytes")
        r = Reader(data)
        tx = cls.decode(r)
        r.finish("transaction")
        return tx

    # -- identity ----------------------------------------------------------
    @property
    def txid(self) -> bytes:
        """SHA-256d of the stripped encoding (32 bytes, internal byte order)."""
        cached = self._txid
        if cached is None:
            cached = sha256d(self.stripped_bytes())
            object.__setattr__(self, "_txid", cached)
        return cached

    def adopt_ids(self, txid: bytes, wtxid: bytes) -> None:
        """Take this tx's txid and wtxid as hashed elsewhere from
        :meth:`stripped_bytes` and :meth:`to_bytes` (a worker process, see
        :meth:`o2ocli.core.block.Block.adopt_ids`); ids already known stay,
        and ids that are not 32 bytes are ignored."""
        if len(txid) != 32 or len(wtxid) != 32:
            return
        if self._txid is None:
            object.__setattr__(self, "_txid", txid)
        if self._wtxid is None:
            object.__setattr__(self, "_wtxid", wtxid)

    @property
    def wtxid(self) -> bytes:
        """SHA-256d of the full encoding, witnesses included: what a block's
        merkle root commits to, so a block hash fixes every signature too."""
        cached = self._wtxid
        if cached is None:
            cached = sha256d(self.to_bytes())
            object.__setattr__(self, "_wtxid", cached)
        return cached

    @property
    def size(self) -> int:
        """Length of the full encoding in bytes."""
        cached = self._size
        if cached is None:
            cached = len(self.to_bytes())
            object.__setattr__(self, "_size", cached)
        return cached

    def sighash(self, chain_id: str) -> bytes:
        """The digest every witness signature of this tx signs (kept for the
        last chain id asked)."""
        cached = self._sighash
        if cached is not None and cached[0] == chain_id:
            return cached[1]
        digest = sha256d(domain_preimage(SIGHASH_TAG, chain_id, self.stripped_bytes()))
        object.__setattr__(self, "_sighash", (chain_id, digest))
        return digest

    @property
    def is_coinbase(self) -> bool:
        """True for a block's fee claim: no inputs and a :class:`Coinbase` payload."""
        return not self.inputs and isinstance(self.payload, Coinbase)

    def wire_outpoints(self) -> list[bytes]:
        """Each input's outpoint in wire form (``txid ‖ index`` u32 little-endian):
        what payload signatures that bind their carrying tx commit to."""
        return [t.prevout.txid + t.prevout.index.to_bytes(4, "little") for t in self.inputs]

    def with_witnesses(self, witnesses: list[tuple[SigPair, ...]]) -> Tx:
        """A copy with the given witness for each input (same txid)."""
        if len(witnesses) != len(self.inputs):
            raise ValueError("one witness per input is required")
        pairs = zip(self.inputs, witnesses, strict=True)
        inputs = tuple(TxIn(txin.prevout, tuple(w)) for txin, w in pairs)
        tx = Tx(inputs, self.outputs, self.lock_height, self.payload, self.version)
        object.__setattr__(tx, "_stripped", self.stripped_bytes())
        object.__setattr__(tx, "_txid", self.txid)
        return tx


@dataclass(frozen=True, slots=True)
class Coin:
    """An unspent output as the chainstate stores it.

    Encoding: ``height:u32 ‖ flags:u8 (bit 0 = coinbase) ‖ TxOut``.
    """

    output: TxOut
    """The unspent output."""
    height: int
    """Height of the block that created it."""
    coinbase: bool = False
    """True if it was created by a block's fee claim."""
    _bytes: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def to_bytes(self) -> bytes:
        """Canonical encoding for the UTXO set (kept once made, or as read).

        Written with ``struct`` rather than a :class:`Writer`: it runs for
        every coin a block creates or spends (the UTXO write, the undo data
        and the set commitment).  A test checks it against the Writer form
        for every lock type."""
        cached = self._bytes
        if cached is not None:
            return cached
        out = self.output
        lock = out.lock
        asset = out.asset
        cached = b"".join((
            _COIN_HEAD.pack(self.height, 1 if self.coinbase else 0),
            b"\x00" if asset == NATIVE_ASSET else b"\x01" + asset,
            _AMOUNT.pack(out.amount),
            _P2A_TAG + lock.pubkey_hash if type(lock) is PayToAddress else lock_bytes(lock),
        ))
        object.__setattr__(self, "_bytes", cached)
        return cached

    @classmethod
    def unchecked(cls, output: TxOut, height: int, coinbase: bool,
                  encoded: bytes | None = None) -> Coin:
        """``Coin(output, height, coinbase)`` (with its encoding ``encoded``
        when known) without the frozen ``__init__`` (0.33 instead of 0.84 µs;
        block connect makes one per output).  Equal to the checked form
        (tested)."""
        coin = _new(cls)
        _set_coin_output(coin, output)
        _set_coin_height(coin, height)
        _set_coin_coinbase(coin, coinbase)
        _set_coin_bytes(coin, encoded)
        return coin

    @classmethod
    def from_bytes(cls, data: bytes) -> Coin:
        """Inverse of :meth:`to_bytes`."""
        if (type(data) is bytes and len(data) == _P2A_NATIVE_SIZE and data[5] == 0
                and data[14] == PayToAddress.TAG and data[4] <= 1):
            # The common coin (native asset, pay-to-address), read in one go;
            # its one encoding is kept.
            height, flags, _, amount, _ = _P2A_NATIVE.unpack_from(data)
            return Coin.unchecked(TxOut(NATIVE_ASSET, amount, PayToAddress(data[15:])),
                                  height, flags == 1, data)
        r = Reader(data)
        height = r.u32("coin height")
        flags = r.u8("coin flags")
        if flags > 1:
            raise DecodeError(f"unknown coin flags 0x{flags:02x}")
        out = TxOut.decode(r)
        r.finish("coin")
        return cls(out, height, bool(flags))


# Slot setters of the frozen dataclasses (for the unchecked constructors).
_new = object.__new__
_set_outpoint_txid = Outpoint.__dict__["txid"].__set__
_set_outpoint_index = Outpoint.__dict__["index"].__set__
_set_coin_output = Coin.__dict__["output"].__set__
_set_coin_height = Coin.__dict__["height"].__set__
_set_coin_coinbase = Coin.__dict__["coinbase"].__set__
_set_coin_bytes = Coin.__dict__["_bytes"].__set__
_COIN_HEAD = struct.Struct("<IB")  # height u32 LE ‖ flags u8
_AMOUNT = struct.Struct("<Q")
_P2A_TAG = bytes([PayToAddress.TAG])
_P2A_NATIVE = struct.Struct("<IBBQB")  # head ‖ native flag ‖ amount ‖ lock tag (‖ 20-byte hash)
_P2A_NATIVE_SIZE = _P2A_NATIVE.size + 20
