"""Transaction payloads: O2O data carried by a transaction.

Like locks, a payload is a tagged union (one tag byte, then the body).  Tag
``0x00`` means "no payload" and has no body.  Later features (tokens,
reviews, escrow, traceability, consent) add new tags without touching these.

=====  ======================  =============================================
tag    type                    body
=====  ======================  =============================================
0x00   :class:`NoPayload`      (nothing)
0x01   :class:`Coinbase`       u32 block height (makes every fee claim unique)
0x02   :class:`GenesisAlloc`   var_bytes note (≤ 256 bytes), e.g. the chain id
0x10   :class:`TokenCommit`    32-byte commitment to a symbol (step 1 of issuing)
0x11   :class:`TokenIssue`     var_bytes symbol ‖ var_bytes name ‖ u8 decimals ‖
                               u8 mintable ‖ 32-byte salt (step 2: the reveal)
0x12   :class:`TokenMint`      32-byte asset ‖ u64 amount
0x13   :class:`TokenBurn`      32-byte asset ‖ u64 amount
0x14   :class:`TokenFreeze`    32-byte asset (destroys the mint authority)
0x15   :class:`TokenReward`    32-byte asset ‖ u8 kind ‖ count ‖ 32-byte txids ‖
                               count ‖ 33-byte pubkeys ‖ a 64-byte signature per key
0x20   :class:`Review`         20-byte merchant ‖ 32-byte purchase txid ‖ u8 rating ‖
                               var_bytes text ‖ 33-byte pubkey ‖ 64-byte signature
0x21   :class:`ReviewReply`    32-byte review txid ‖ var_bytes text ‖ 33-byte pubkey ‖
                               64-byte signature
0x30   :class:`TraceRegister`  20-byte merchant ‖ var_bytes item id ‖ var_bytes product ‖
                               count ‖ (var_bytes key ‖ var_bytes value) per datum ‖
                               33-byte merchant pubkey ‖ 64-byte signature
0x31   :class:`TraceEvent`     32-byte item asset ‖ u8 event ‖ var_bytes location ‖
                               var_bytes note ‖ u8 has-doc ‖ [32-byte document hash]
0x40   :class:`ConsentGrant`   20-byte grantee ‖ var_bytes scope ‖ u32 until height ‖
                               33-byte user pubkey ‖ 64-byte signature
0x41   :class:`ConsentRevoke`  32-byte grant txid ‖ 33-byte user pubkey ‖ 64-byte signature
=====  ======================  =============================================

The decoders only enforce the *shape* (field sizes and hard caps on variable
fields, so a decoder never allocates much).  Whether a symbol, a rating or a
review text is acceptable is a consensus rule (:mod:`o2ocli.consensus.o2o`), so
that a bad value is refused with a reason that says what is wrong.

Identifiers derived from payloads (pure functions, used by consensus, node and
wallet alike):

* :func:`token_asset_id` — ``SHA-256d("o2o/token" ‖ 0x00 ‖ SYMBOL)``: one
  symbol, one asset, on every chain;
* :func:`authority_asset_id` — ``SHA-256d("o2o/authority" ‖ 0x00 ‖ asset)``:
  the asset of the single mint-authority output of a mintable token;
* :func:`item_asset_id` — ``SHA-256d("o2o/item" ‖ 0x00 ‖ merchant ‖
  var_bytes(item id))``: an item or batch is an asset of amount 1 in its
  merchant's namespace;
* :func:`token_commitment` — ``SHA-256d("o2o/token-commit" ‖ 0x00 ‖
  var_bytes(SYMBOL) ‖ salt ‖ var_bytes(lock of the commit's output 0))``;
* :func:`review_sig_digest` / :func:`reply_sig_digest` /
  :func:`reward_sig_digest` — what a reviewer and a merchant sign (bound to
  the chain id like every signature).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from o2ocli.crypto.hashes import sha256d

from .encoding import MAX_U32, MAX_U64, DecodeError, Reader, Writer, domain_preimage

__all__ = [
    "Payload",
    "NoPayload",
    "Coinbase",
    "GenesisAlloc",
    "TokenCommit",
    "TokenIssue",
    "TokenMint",
    "TokenBurn",
    "TokenFreeze",
    "TokenReward",
    "KeySig",
    "Review",
    "ReviewReply",
    "TraceRegister",
    "TraceEvent",
    "ConsentGrant",
    "ConsentRevoke",
    "TRACE_EVENTS",
    "item_asset_id",
    "consent_sig_digest",
    "item_sig_digest",
    "revoke_sig_digest",
    "REWARD_PURCHASES",
    "REWARD_REVIEWS",
    "token_asset_id",
    "authority_asset_id",
    "token_commitment",
    "review_sig_digest",
    "reply_sig_digest",
    "reward_sig_digest",
    "NO_PAYLOAD",
    "encode_payload",
    "decode_payload",
    "PAYLOAD_TYPES",
]

MAX_GENESIS_NOTE = 256


@dataclass(frozen=True, slots=True)
class NoPayload:
    """An ordinary transaction: no O2O data."""

    TAG: ClassVar[int] = 0x00

    def _encode_body(self, w: Writer) -> None:
        pass

    @classmethod
    def _decode_body(cls, r: Reader) -> NoPayload:
        return NO_PAYLOAD


NO_PAYLOAD = NoPayload()


@dataclass(frozen=True, slots=True)
class Coinbase:
    """Marks the fee-claim transaction of block ``height`` (no inputs)."""

    TAG: ClassVar[int] = 0x01
    height: int
    """Height of the block that contains this transaction."""

    def __post_init__(self) -> None:
        if not 0 <= self.height <= MAX_U32:
            raise ValueError("coinbase height out of range")

    def _encode_body(self, w: Writer) -> None:
        w.u32(self.height)

    @classmethod
    def _decode_body(cls, r: Reader) -> Coinbase:
        return cls(r.u32("coinbase height"))


@dataclass(frozen=True, slots=True)
class GenesisAlloc:
    """Marks the genesis allocation transaction (valid only in block 0)."""

    TAG: ClassVar[int] = 0x02
    note: bytes
    """Free text committed to by the genesis block (the chain id, by convention)."""

    def __post_init__(self) -> None:
        if len(self.note) > MAX_GENESIS_NOTE:
            raise ValueError("genesis note too long")

    def _encode_body(self, w: Writer) -> None:
        w.var_bytes(self.note)

    @classmethod
    def _decode_body(cls, r: Reader) -> GenesisAlloc:
        return cls(r.var_bytes("genesis note", MAX_GENESIS_NOTE))


MAX_SYMBOL_FIELD = 64
"""Decoder cap on a symbol field (the consensus rule allows 3..12 characters)."""
MAX_NAME_FIELD = 256
"""Decoder cap on a token name field (the consensus rule allows 1..64 bytes)."""
MAX_TEXT_FIELD = 4096
"""Decoder cap on a review or reply text (the consensus rule allows 1..1000 bytes)."""
MAX_REWARD_REFS = 1000
"""Most txids one reward payload may list."""
MAX_REWARD_KEYS = 100
"""Most merchant keys one reward payload may carry."""
REWARD_PURCHASES = 0
"""Reward kind: the listed txids are purchases paid to the rewarding merchant."""
REWARD_REVIEWS = 1
"""Reward kind: the listed txids are reviews of the rewarding merchant."""

REVIEW_SIG_TAG = b"o2o/review"
REPLY_SIG_TAG = b"o2o/reply"
REWARD_SIG_TAG = b"o2o/reward"


def _fixed(value: bytes, size: int, what: str) -> None:
    if not isinstance(value, bytes) or len(value) != size:
        raise ValueError(f"{what} must be {size} bytes")


def _u64(value: int, what: str) -> None:
    if not isinstance(value, int) or not 0 <= value <= MAX_U64:
        raise ValueError(f"{what} out of range")


def token_asset_id(symbol: str) -> bytes:
    """The asset id of the token with ``symbol`` (case-insensitive)."""
    return sha256d(b"o2o/token\x00" + symbol.upper().encode())


def authority_asset_id(asset: bytes) -> bytes:
    """The asset id of the mint-authority output of token ``asset``."""
    return sha256d(b"o2o/authority\x00" + asset)


def token_commitment(symbol: str, salt: bytes, owner_lock: bytes) -> bytes:
    """The commitment a :class:`TokenCommit` publishes for ``symbol`` and ``salt``,
    bound to ``owner_lock`` (the encoded lock of the commit's output 0, which
    the reveal spends): a copier who republishes the 32 bytes in a commit of
    its own cannot reveal against it, since its output 0 has another lock."""
    w = Writer()
    w.raw(b"o2o/token-commit\x00")
    w.var_bytes(symbol.upper().encode())
    w.raw(salt)
    w.var_bytes(owner_lock)
    return sha256d(w.getvalue())


@dataclass(frozen=True, slots=True)
class TokenCommit:
    """Step 1 of issuing a token: commits to a salted hash of the symbol, so
    nobody watching the mempool learns the symbol before it is claimed.  Its
    output 0 is what the reveal must spend (so only the committer can reveal)."""

    TAG: ClassVar[int] = 0x10
    commitment: bytes
    """:func:`token_commitment` of the symbol and salt."""

    def __post_init__(self) -> None:
        _fixed(self.commitment, 32, "commitment")

    def _encode_body(self, w: Writer) -> None:
        w.raw(self.commitment)

    @classmethod
    def _decode_body(cls, r: Reader) -> TokenCommit:
        return cls(r.raw(32, "token commitment"))


@dataclass(frozen=True, slots=True)
class TokenIssue:
    """Step 2 of issuing: reveals the symbol and creates the token.

    The transaction spends output 0 of the matching :class:`TokenCommit` (mined
    in an earlier block) as its first input, creates the initial supply as
    outputs of :func:`token_asset_id` and, if ``mintable``, one output of
    :func:`authority_asset_id` with amount 1.  It burns the chain's issuance fee.
    """

    TAG: ClassVar[int] = 0x11
    symbol: bytes
    """ASCII symbol, upper case (checked by consensus)."""
    name: bytes
    """Display name, UTF-8."""
    decimals: int
    """Display decimals, 0..8."""
    mintable: bool
    """True: an authority output is created and more can be minted."""
    salt: bytes
    """The 32-byte salt of the commitment."""

    def __post_init__(self) -> None:
        if not isinstance(self.symbol, bytes) or len(self.symbol) > MAX_SYMBOL_FIELD:
            raise ValueError("symbol field too long")
        if not isinstance(self.name, bytes) or len(self.name) > MAX_NAME_FIELD:
            raise ValueError("name field too long")
        if not 0 <= self.decimals <= 255:
            raise ValueError("decimals out of range")
        _fixed(self.salt, 32, "salt")

    @property
    def asset(self) -> bytes:
        """The asset id this issue creates."""
        return sha256d(b"o2o/token\x00" + self.symbol.upper())

    def _encode_body(self, w: Writer) -> None:
        w.var_bytes(self.symbol)
        w.var_bytes(self.name)
        w.u8(self.decimals)
        w.u8(1 if self.mintable else 0)
        w.raw(self.salt)

    @classmethod
    def _decode_body(cls, r: Reader) -> TokenIssue:
        symbol = r.var_bytes("token symbol", MAX_SYMBOL_FIELD)
        name = r.var_bytes("token name", MAX_NAME_FIELD)
        decimals = r.u8("token decimals")
        flag = r.u8("token mintable flag")
        if flag > 1:
            raise DecodeError("token mintable flag must be 0 or 1")
        return cls(symbol, name, decimals, flag == 1, r.raw(32, "token salt"))


@dataclass(frozen=True, slots=True)
class TokenMint:
    """Creates ``amount`` more of ``asset``; the tx spends and recreates the
    token's authority output."""

    TAG: ClassVar[int] = 0x12
    asset: bytes
    """Token asset id."""
    amount: int
    """Base units created."""

    def __post_init__(self) -> None:
        _fixed(self.asset, 32, "asset")
        _u64(self.amount, "mint amount")

    def _encode_body(self, w: Writer) -> None:
        w.raw(self.asset)
        w.u64(self.amount)

    @classmethod
    def _decode_body(cls, r: Reader) -> TokenMint:
        return cls(r.raw(32, "mint asset"), r.u64("mint amount"))


@dataclass(frozen=True, slots=True)
class TokenBurn:
    """Destroys ``amount`` of ``asset`` from the tx's own inputs."""

    TAG: ClassVar[int] = 0x13
    asset: bytes
    """Token asset id."""
    amount: int
    """Base units destroyed."""

    def __post_init__(self) -> None:
        _fixed(self.asset, 32, "asset")
        _u64(self.amount, "burn amount")

    def _encode_body(self, w: Writer) -> None:
        w.raw(self.asset)
        w.u64(self.amount)

    @classmethod
    def _decode_body(cls, r: Reader) -> TokenBurn:
        return cls(r.raw(32, "burn asset"), r.u64("burn amount"))


@dataclass(frozen=True, slots=True)
class TokenFreeze:
    """Destroys the authority output of ``asset``: its supply is fixed forever."""

    TAG: ClassVar[int] = 0x14
    asset: bytes
    """Token asset id."""

    def __post_init__(self) -> None:
        _fixed(self.asset, 32, "asset")

    def _encode_body(self, w: Writer) -> None:
        w.raw(self.asset)

    @classmethod
    def _decode_body(cls, r: Reader) -> TokenFreeze:
        return cls(r.raw(32, "freeze asset"))


@dataclass(frozen=True, slots=True)
class KeySig:
    """A public key and its signature inside a payload."""

    pubkey: bytes
    """33-byte compressed public key."""
    signature: bytes
    """64-byte ``r‖s`` signature."""

    def __post_init__(self) -> None:
        _fixed(self.pubkey, 33, "pubkey")
        _fixed(self.signature, 64, "signature")


@dataclass(frozen=True, slots=True)
class TokenReward:
    """A payment of ``asset`` that rewards the listed purchases (or reviews);
    each can be rewarded once per token.  ``keys`` are the merchant's: each key
    signs :func:`reward_sig_digest`, and every listed purchase must have paid
    (every review must be about) one of their addresses."""

    TAG: ClassVar[int] = 0x15
    asset: bytes
    """Token asset id paid as the reward."""
    kind: int
    """:data:`REWARD_PURCHASES` or :data:`REWARD_REVIEWS`."""
    refs: tuple[bytes, ...]
    """Txids of the rewarded purchases or reviews."""
    keys: tuple[KeySig, ...]
    """(pubkey, signature) of each merchant address involved."""

    def __post_init__(self) -> None:
        _fixed(self.asset, 32, "asset")
        if not 0 <= self.kind <= 255:
            raise ValueError("reward kind out of range")
        if len(self.refs) > MAX_REWARD_REFS:
            raise ValueError("too many reward refs")
        for ref in self.refs:
            _fixed(ref, 32, "reward ref")
        if len(self.keys) > MAX_REWARD_KEYS:
            raise ValueError("too many reward keys")
        for pair in self.keys:
            if not isinstance(pair, KeySig):
                raise ValueError("reward keys must be KeySig pairs")

    def signed_body(self) -> bytes:
        """What each key signs: the asset, kind, refs and the list of pubkeys."""
        w = Writer()
        w.raw(self.asset)
        w.u8(self.kind)
        w.varint(len(self.refs))
        for ref in self.refs:
            w.raw(ref)
        w.varint(len(self.keys))
        for pair in self.keys:
            w.raw(pair.pubkey)
        return w.getvalue()

    def _encode_body(self, w: Writer) -> None:
        w.raw(self.signed_body())
        for pair in self.keys:
            w.raw(pair.signature)

    @classmethod
    def _decode_body(cls, r: Reader) -> TokenReward:
        asset = r.raw(32, "reward asset")
        kind = r.u8("reward kind")
        n = r.count("reward refs", MAX_REWARD_REFS)
        refs = tuple(r.raw(32, "reward ref") for _ in range(n))
        k = r.count("reward keys", MAX_REWARD_KEYS)
        pubkeys = [r.raw(33, "reward pubkey") for _ in range(k)]
        keys = tuple(KeySig(p, r.raw(64, "reward signature")) for p in pubkeys)
        return cls(asset, kind, refs, keys)


@dataclass(frozen=True, slots=True)
class Review:
    """A customer's review of a merchant, backed by a purchase.

    ``signature`` signs :func:`review_sig_digest` with ``pubkey``, the key of an
    address that funded the purchase.
    """

    TAG: ClassVar[int] = 0x20
    merchant: bytes
    """Pubkey hash of the merchant's address the purchase paid."""
    purchase: bytes
    """Txid of the purchase."""
    rating: int
    """1..5 stars (checked by consensus)."""
    text: bytes
    """UTF-8 text (checked by consensus)."""
    pubkey: bytes
    """The reviewer's compressed public key."""
    signature: bytes
    """64-byte ``r‖s`` signature over :func:`review_sig_digest`."""

    def __post_init__(self) -> None:
        _fixed(self.merchant, 20, "merchant")
        _fixed(self.purchase, 32, "purchase txid")
        if not 0 <= self.rating <= 255:
            raise ValueError("rating out of range")
        if not isinstance(self.text, bytes) or len(self.text) > MAX_TEXT_FIELD:
            raise ValueError("review text field too long")
        _fixed(self.pubkey, 33, "reviewer pubkey")
        _fixed(self.signature, 64, "review signature")

    def signed_body(self) -> bytes:
        """The fields the signature covers (everything but the signature)."""
        w = Writer()
        w.raw(self.merchant)
        w.raw(self.purchase)
        w.u8(self.rating)
        w.var_bytes(self.text)
        w.raw(self.pubkey)
        return w.getvalue()

    def _encode_body(self, w: Writer) -> None:
        w.raw(self.signed_body())
        w.raw(self.signature)

    @classmethod
    def _decode_body(cls, r: Reader) -> Review:
        merchant = r.raw(20, "review merchant")
        purchase = r.raw(32, "review purchase")
        rating = r.u8("review rating")
        text = r.var_bytes("review text", MAX_TEXT_FIELD)
        pubkey = r.raw(33, "reviewer pubkey")
        return cls(merchant, purchase, rating, text, pubkey, r.raw(64, "review signature"))


@dataclass(frozen=True, slots=True)
class ReviewReply:
    """The merchant's one reply to a review, signed by the merchant address's key."""

    TAG: ClassVar[int] = 0x21
    review: bytes
    """Txid of the review answered."""
    text: bytes
    """UTF-8 text (checked by consensus)."""
    pubkey: bytes
    """The merchant's compressed public key."""
    signature: bytes
    """64-byte signature over :func:`reply_sig_digest`."""

    def __post_init__(self) -> None:
        _fixed(self.review, 32, "review txid")
        if not isinstance(self.text, bytes) or len(self.text) > MAX_TEXT_FIELD:
            raise ValueError("reply text field too long")
        _fixed(self.pubkey, 33, "merchant pubkey")
        _fixed(self.signature, 64, "reply signature")

    def signed_body(self) -> bytes:
        """The fields the signature covers."""
        w = Writer()
        w.raw(self.review)
        w.var_bytes(self.text)
        w.raw(self.pubkey)
        return w.getvalue()

    def _encode_body(self, w: Writer) -> None:
        w.raw(self.signed_body())
        w.raw(self.signature)

    @classmethod
    def _decode_body(cls, r: Reader) -> ReviewReply:
        review = r.raw(32, "reply review txid")
        text = r.var_bytes("reply text", MAX_TEXT_FIELD)
        pubkey = r.raw(33, "reply pubkey")
        return cls(review, text, pubkey, r.raw(64, "reply signature"))


MAX_ITEM_ID_FIELD = 128
MAX_TRACE_FIELD = 1024
MAX_TRACE_DATA = 32
TRACE_EVENTS = ("produced", "processed", "shipped", "received", "inspected", "sold", "note")
"""Trace event types, by code (u8)."""
CONSENT_SIG_TAG = b"o2o/consent"
ITEM_SIG_TAG = b"o2o/item"
REVOKE_SIG_TAG = b"o2o/consent-revoke"


def item_asset_id(merchant: bytes, item_id: str | bytes) -> bytes:
    """The asset id of item ``item_id`` registered by ``merchant`` (pubkey hash)."""
    raw = item_id.encode() if isinstance(item_id, str) else item_id
    w = Writer()
    w.raw(b"o2o/item\x00")
    w.raw(merchant)
    w.var_bytes(raw)
    return sha256d(w.getvalue())


def _var_text(value: bytes, limit: int, what: str) -> None:
    if not isinstance(value, bytes) or len(value) > limit:
        raise ValueError(f"{what} field too long")


@dataclass(frozen=True, slots=True)
class TraceRegister:
    """Registers an item or batch: the tx creates the item asset (amount 1),
    whose holder is its first custodian.  The merchant's key signs
    :func:`item_sig_digest` (the fields and the tx's inputs)."""

    TAG: ClassVar[int] = 0x30
    merchant: bytes
    """Pubkey hash whose namespace the item id lives in."""
    item_id: bytes
    """The merchant's id for the item or batch (ASCII, checked by consensus)."""
    product: bytes
    """Product description (UTF-8)."""
    data: tuple[tuple[bytes, bytes], ...]
    """Key/value facts (e.g. ``origin=Yunnan``)."""
    pubkey: bytes
    """The merchant's compressed public key."""
    signature: bytes
    """64-byte signature over :func:`item_sig_digest`."""

    def __post_init__(self) -> None:
        _fixed(self.merchant, 20, "merchant")
        _var_text(self.item_id, MAX_ITEM_ID_FIELD, "item id")
        _var_text(self.product, MAX_TRACE_FIELD, "product")
        if len(self.data) > MAX_TRACE_DATA:
            raise ValueError("too many trace data entries")
        for key, value in self.data:
            _var_text(key, MAX_ITEM_ID_FIELD, "data key")
            _var_text(value, MAX_TRACE_FIELD, "data value")
        _fixed(self.pubkey, 33, "merchant pubkey")
        _fixed(self.signature, 64, "item signature")

    @property
    def asset(self) -> bytes:
        """The item's asset id."""
        return item_asset_id(self.merchant, self.item_id)

    def signed_body(self) -> bytes:
        """Every field but the signature."""
        w = Writer()
        w.raw(self.merchant)
        w.var_bytes(self.item_id)
        w.var_bytes(self.product)
        w.varint(len(self.data))
        for key, value in self.data:
            w.var_bytes(key)
            w.var_bytes(value)
        w.raw(self.pubkey)
        return w.getvalue()

    def _encode_body(self, w: Writer) -> None:
        w.raw(self.signed_body())
        w.raw(self.signature)

    @classmethod
    def _decode_body(cls, r: Reader) -> TraceRegister:
        merchant = r.raw(20, "trace merchant")
        item_id = r.var_bytes("trace item id", MAX_ITEM_ID_FIELD)
        product = r.var_bytes("trace product", MAX_TRACE_FIELD)
        n = r.count("trace data", MAX_TRACE_DATA)
        data = tuple((r.var_bytes("trace data key", MAX_ITEM_ID_FIELD),
                      r.var_bytes("trace data value", MAX_TRACE_FIELD)) for _ in range(n))
        pubkey = r.raw(33, "trace merchant pubkey")
        return cls(merchant, item_id, product, data, pubkey, r.raw(64, "trace signature"))


@dataclass(frozen=True, slots=True)
class TraceEvent:
    """A custody change or processing step: the tx spends the item (so the
    current custodian signs) and re-creates it for the next custodian."""

    TAG: ClassVar[int] = 0x31
    asset: bytes
    """The item's asset id."""
    event: int
    """Index into :data:`TRACE_EVENTS`."""
    location: bytes
    """Where (UTF-8)."""
    note: bytes
    """Free text (UTF-8)."""
    document: bytes | None
    """SHA-256 of a document (certificate, invoice, photo), or None."""

    def __post_init__(self) -> None:
        _fixed(self.asset, 32, "item asset")
        if not 0 <= self.event <= 255:
            raise ValueError("event out of range")
        _var_text(self.location, MAX_TRACE_FIELD, "location")
        _var_text(self.note, MAX_TRACE_FIELD, "note")
        if self.document is not None:
            _fixed(self.document, 32, "document hash")

    def _encode_body(self, w: Writer) -> None:
        w.raw(self.asset)
        w.u8(self.event)
        w.var_bytes(self.location)
        w.var_bytes(self.note)
        if self.document is None:
            w.u8(0)
        else:
            w.u8(1)
            w.raw(self.document)

    @classmethod
    def _decode_body(cls, r: Reader) -> TraceEvent:
        asset = r.raw(32, "trace asset")
        event = r.u8("trace event")
        location = r.var_bytes("trace location", MAX_TRACE_FIELD)
        note = r.var_bytes("trace note", MAX_TRACE_FIELD)
        flag = r.u8("trace document flag")
        if flag > 1:
            raise DecodeError("trace document flag must be 0 or 1")
        document = r.raw(32, "trace document hash") if flag else None
        return cls(asset, event, location, note, document)


@dataclass(frozen=True, slots=True)
class ConsentGrant:
    """A customer lets ``grantee`` use a named data scope until a height."""

    TAG: ClassVar[int] = 0x40
    grantee: bytes
    """Pubkey hash of the merchant granted access."""
    scope: bytes
    """Data scope name (e.g. ``purchase-history``; checked by consensus)."""
    until: int
    """The grant holds up to and including this height."""
    pubkey: bytes
    """The user's compressed public key."""
    signature: bytes
    """Signature over :func:`consent_sig_digest`."""

    def __post_init__(self) -> None:
        _fixed(self.grantee, 20, "grantee")
        _var_text(self.scope, MAX_ITEM_ID_FIELD, "scope")
        if not 0 <= self.until <= MAX_U32:
            raise ValueError("until out of range")
        _fixed(self.pubkey, 33, "user pubkey")
        _fixed(self.signature, 64, "consent signature")

    def signed_body(self) -> bytes:
        """The fields the signature covers."""
        w = Writer()
        w.raw(self.grantee)
        w.var_bytes(self.scope)
        w.u32(self.until)
        w.raw(self.pubkey)
        return w.getvalue()

    def _encode_body(self, w: Writer) -> None:
        w.raw(self.signed_body())
        w.raw(self.signature)

    @classmethod
    def _decode_body(cls, r: Reader) -> ConsentGrant:
        grantee = r.raw(20, "consent grantee")
        scope = r.var_bytes("consent scope", MAX_ITEM_ID_FIELD)
        until = r.u32("consent until")
        pubkey = r.raw(33, "consent pubkey")
        return cls(grantee, scope, until, pubkey, r.raw(64, "consent signature"))


@dataclass(frozen=True, slots=True)
class ConsentRevoke:
    """The user withdraws a grant."""

    TAG: ClassVar[int] = 0x41
    grant: bytes
    """Txid of the grant."""
    pubkey: bytes
    """The user's compressed public key."""
    signature: bytes
    """Signature over :func:`revoke_sig_digest`."""

    def __post_init__(self) -> None:
        _fixed(self.grant, 32, "grant txid")
        _fixed(self.pubkey, 33, "user pubkey")
        _fixed(self.signature, 64, "revoke signature")

    def signed_body(self) -> bytes:
        """The fields the signature covers."""
        return self.grant + self.pubkey

    def _encode_body(self, w: Writer) -> None:
        w.raw(self.signed_body())
        w.raw(self.signature)

    @classmethod
    def _decode_body(cls, r: Reader) -> ConsentRevoke:
        grant = r.raw(32, "revoke grant")
        pubkey = r.raw(33, "revoke pubkey")
        return cls(grant, pubkey, r.raw(64, "revoke signature"))


def item_sig_digest(
    register: TraceRegister, chain_id: str, outpoints: Sequence[bytes] = ()
) -> bytes:
    """The digest a merchant signs to register an item: the fields and the
    wire-form outpoints of the carrying tx's inputs (so nobody can copy a
    pending registration into a tx of their own and hold the item)."""
    w = Writer()
    w.raw(register.signed_body())
    w.varint(len(outpoints))
    for outpoint in outpoints:
        w.raw(outpoint)
    return sha256d(domain_preimage(ITEM_SIG_TAG, chain_id, w.getvalue()))


def consent_sig_digest(
    grant: ConsentGrant, chain_id: str, outpoints: Sequence[bytes] = ()
) -> bytes:
    """The digest a user signs to grant consent: the fields and the wire-form
    outpoints of the carrying tx's inputs, so a grant cannot be replayed in
    another tx (which would revive it after the user revoked it)."""
    w = Writer()
    w.raw(grant.signed_body())
    w.varint(len(outpoints))
    for outpoint in outpoints:
        w.raw(outpoint)
    return sha256d(domain_preimage(CONSENT_SIG_TAG, chain_id, w.getvalue()))


def revoke_sig_digest(revoke: ConsentRevoke, chain_id: str) -> bytes:
    """The digest a user signs to revoke a grant."""
    return sha256d(domain_preimage(REVOKE_SIG_TAG, chain_id, revoke.signed_body()))


def review_sig_digest(review: Review, chain_id: str) -> bytes:
    """The digest a reviewer signs: bound to the review fields and the chain."""
    return sha256d(domain_preimage(REVIEW_SIG_TAG, chain_id, review.signed_body()))


def reward_sig_digest(
    reward: TokenReward, chain_id: str, outpoints: Sequence[bytes] = ()
) -> bytes:
    """The digest each merchant key of a reward signs: the payload's fields and
    the outpoint of every input of the carrying tx (``txid ‖ index`` as u32
    little-endian, the wire form), so the signed
    payload cannot be copied into another transaction (and used up by someone
    else)."""
    w = Writer()
    w.raw(reward.signed_body())
    w.varint(len(outpoints))
    for outpoint in outpoints:
        w.raw(outpoint)
    return sha256d(domain_preimage(REWARD_SIG_TAG, chain_id, w.getvalue()))


def reply_sig_digest(reply: ReviewReply, chain_id: str) -> bytes:
    """The digest a merchant signs for a reply."""
    return sha256d(domain_preimage(REPLY_SIG_TAG, chain_id, reply.signed_body()))


Payload = (
    NoPayload
    | Coinbase
    | GenesisAlloc
    | TokenCommit
    | TokenIssue
    | TokenMint
    | TokenBurn
    | TokenFreeze
    | TokenReward
    | Review
    | ReviewReply
    | TraceRegister
    | TraceEvent
    | ConsentGrant
    | ConsentRevoke
)
PAYLOAD_TYPES: dict[int, type] = {
    cls.TAG: cls
    for cls in (
        NoPayload,
        Coinbase,
        GenesisAlloc,
        TokenCommit,
        TokenIssue,
        TokenMint,
        TokenBurn,
        TokenFreeze,
        TokenReward,
        Review,
        ReviewReply,
        TraceRegister,
        TraceEvent,
        ConsentGrant,
        ConsentRevoke,
    )
}


def encode_payload(payload: Payload, w: Writer) -> None:
    """Append the tagged encoding of ``payload``."""
    w.u8(payload.TAG)
    payload._encode_body(w)


def decode_payload(r: Reader) -> Payload:
    """Read one tagged payload; unknown tags are a :class:`DecodeError`."""
    tag = r.u8("payload tag")
    cls = PAYLOAD_TYPES.get(tag)
    if cls is None:
        raise DecodeError(f"unknown payload type 0x{tag:02x}")
    return cls._decode_body(r)
