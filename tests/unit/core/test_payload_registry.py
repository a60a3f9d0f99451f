"""The payload registry and its declarative field spec (:mod:`o2ocli.core.payloads`).

* every registered type keeps its bytes (``payload_vectors.py``) and
  round-trips, for any value its spec allows;
* a payload family registered by a test travels inside a real :class:`Tx`
  and is gone again after the test;
* a tag is registered once; an unknown tag is a :class:`DecodeError`;
* each codec enforces its limits both ways: a constructor refuses one over
  the limit (``ValueError``), a decoder refuses its encoding (``DecodeError``),
  and exactly the limit is accepted by both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from o2ocli.core.encoding import DecodeError, Reader, Writer
from o2ocli.core.locks import PayToAddress
from o2ocli.core.payloads import (
    PAYLOAD_TYPES,
    ConsentGrant,
    ConsentGrantProfile,
    ConsentRevoke,
    GovVote,
    KeySig,
    PayloadType,
    ProfileCommit,
    Review,
    ReviewReply,
    TokenReward,
    TraceRegister,
    consent_profile_sig_digest,
    consent_sig_digest,
    decode_payload,
    encode_payload,
    item_sig_digest,
    profile_sig_digest,
    register,
    registered,
    reply_sig_digest,
    review_sig_digest,
    revoke_sig_digest,
    reward_sig_digest,
    vote_sig_digest,
)
from o2ocli.core.payloads.base import KeySigs
from o2ocli.core.payloads.spec import (
    U8,
    U32,
    U64,
    Bytes,
    Codec,
    Fixed,
    Flag,
    List,
    Optional,
    Pair,
    Record,
    Signature,
    compile_record,
    wire,
)
from o2ocli.core.tx import NATIVE_ASSET, Outpoint, SigPair, Tx, TxIn, TxOut

from .payload_vectors import CHAIN_ID, OUTPOINTS, VECTORS

FAST = settings(max_examples=60, deadline=None)
DUMMY_TAG = 0x7E
"""A tag no family uses (a test family borrows it)."""


def encode(payload: Any) -> bytes:
    w = Writer()
    encode_payload(payload, w)
    return w.getvalue()


def decode(data: bytes) -> Any:
    """Decode one payload that must use all of ``data``."""
    r = Reader(data)
    payload = decode_payload(r)
    r.finish("payload")
    return payload


# ------------------------------------------------------------------ vectors

SIGNED = {
    Review: lambda p: review_sig_digest(p, CHAIN_ID),
    ReviewReply: lambda p: reply_sig_digest(p, CHAIN_ID),
    ConsentRevoke: lambda p: revoke_sig_digest(p, CHAIN_ID),
    TokenReward: lambda p: reward_sig_digest(p, CHAIN_ID, OUTPOINTS),
    TraceRegister: lambda p: item_sig_digest(p, CHAIN_ID, OUTPOINTS),
    ConsentGrant: lambda p: consent_sig_digest(p, CHAIN_ID, OUTPOINTS),
    GovVote: lambda p: vote_sig_digest(p, CHAIN_ID, OUTPOINTS),
    ConsentGrantProfile: lambda p: consent_profile_sig_digest(p, CHAIN_ID, OUTPOINTS),
    ProfileCommit: lambda p: profile_sig_digest(p, CHAIN_ID, OUTPOINTS),
}


def test_vectors_cover_every_registered_tag():
    assert {payload.TAG for payload, _, _ in VECTORS} == set(PAYLOAD_TYPES)


@pytest.mark.parametrize(
    "payload, encoding, digest", VECTORS, ids=[type(v[0]).__name__ for v in VECTORS]
)
def test_payload_bytes_are_unchanged(payload, encoding, digest):
    assert encode(payload).hex() == encoding
    assert decode(bytes.fromhex(encoding)) == payload
    signer = SIGNED.get(type(payload))
    assert (signer(payload).hex() if signer else "") == digest


def test_signed_body_is_the_body_without_its_signatures():
    review = next(p for p, _, _ in VECTORS if isinstance(p, Review))
    assert review.signed_body() == encode(review)[1:-64]
    reward = next(p for p, _, _ in VECTORS if isinstance(p, TokenReward))
    assert reward.signed_body() == encode(reward)[1 : -64 * len(reward.keys)]


# ------------------------------------------------- any value, every type

def strategy(codec: Codec) -> st.SearchStrategy[Any]:
    """Values ``codec`` accepts (lists kept short)."""
    if isinstance(codec, Fixed):
        return st.binary(min_size=codec.size, max_size=codec.size)
    if isinstance(codec, U8 | U32 | U64):
        return st.integers(0, codec.MAXIMUM)
    if isinstance(codec, Bytes):
        return st.binary(max_size=codec.limit)
    if isinstance(codec, Flag):
        return st.booleans()
    if isinstance(codec, Optional):
        return st.none() | strategy(codec.inner)
    if isinstance(codec, Pair):
        return st.tuples(strategy(codec.first), strategy(codec.second))
    if isinstance(codec, List):
        return st.lists(strategy(codec.item), max_size=min(codec.limit, 4)).map(tuple)
    if isinstance(codec, KeySigs):
        pair = st.builds(KeySig, st.binary(min_size=33, max_size=33),
                         st.binary(min_size=64, max_size=64))
        return st.lists(pair, max_size=min(codec.limit, 3)).map(tuple)
    raise AssertionError(f"no strategy for {codec!r}")


def payloads_of(cls: type) -> st.SearchStrategy[Any]:
    if not cls._SPEC:
        return st.just(cls())
    return st.builds(cls, *(strategy(codec) for _, codec in cls._SPEC))


any_payload = st.one_of([payloads_of(cls) for _, cls in sorted(PAYLOAD_TYPES.items())])


@FAST
@given(any_payload)
def test_every_registered_payload_round_trips(payload):
    data = encode(payload)
    assert data[0] == payload.TAG
    assert decode(data) == payload
    assert encode(decode(data)) == data


@FAST
@given(any_payload, st.data())
def test_every_truncation_is_a_decode_error(payload, data):
    encoding = encode(payload)
    cut = data.draw(st.integers(0, len(encoding) - 1))
    with pytest.raises(DecodeError):
        decode(encoding[:cut])


# --------------------------------------------------- a family of a test's own

@compile_record  # usable before it is registered (register compiles it too)
@dataclass(frozen=True, slots=True)
class Dummy(PayloadType):
    """One field of every codec, as a later payload family could have."""

    key: bytes = wire(Fixed(4, "dummy key"))
    small: int = wire(U8("dummy small"))
    medium: int = wire(U32("dummy medium"))
    large: int = wire(U64("dummy large"))
    text: bytes = wire(Bytes(5, "dummy text"))
    flag: bool = wire(Flag("dummy flag"))
    extra: bytes | None = wire(Optional(Fixed(2, "dummy extra"), "dummy extra flag"))
    entries: tuple[tuple[bytes, bytes], ...] = wire(
        List(Pair(Bytes(3, "dummy entry key"), Fixed(1, "dummy entry value")), 2, "dummy entries")
    )
    signature: bytes = wire(Signature("dummy signature"))


DUMMY = Dummy(b"KEY!", 255, 2**32 - 1, 2**64 - 1, b"12345", True, b"ex",
              ((b"abc", b"1"), (b"", b"2")), bytes(range(64)))
DUMMY_BODY = (
    b"KEY!" + b"\xff" + b"\xff" * 4 + b"\xff" * 8 + b"\x0512345" + b"\x01" + b"\x01ex"
    + b"\x02" + b"\x03abc1" + b"\x002"
)


@pytest.fixture
def dummy_family():
    with registered(DUMMY_TAG, Dummy) as cls:
        yield cls
    assert DUMMY_TAG not in PAYLOAD_TYPES


def test_dummy_family_encodes_as_its_spec_says(dummy_family):
    assert encode(DUMMY) == bytes([DUMMY_TAG]) + DUMMY_BODY + bytes(range(64))
    assert DUMMY.signed_body() == DUMMY_BODY
    assert PAYLOAD_TYPES[DUMMY_TAG] is Dummy and Dummy.TAG == DUMMY_TAG


def test_dummy_family_round_trips_through_a_transaction(dummy_family):
    lock = PayToAddress(bytes(20))
    tx = Tx(
        (TxIn(Outpoint(bytes(range(32)), 1), (SigPair(b"\x02" + bytes(32), bytes(64)),)),),
        (TxOut(NATIVE_ASSET, 5_000, lock),),
        payload=DUMMY,
    )
    data = tx.to_bytes()
    again = Tx.from_bytes(data)
    assert again.payload == DUMMY and type(again.payload) is Dummy
    assert again.txid == tx.txid and again.to_bytes() == data
    fresh = Tx(again.inputs, again.outputs, again.lock_height, again.payload, again.version)
    assert fresh.to_bytes() == data


@FAST
@given(payloads_of(Dummy))
def test_dummy_family_round_trips_for_any_value(payload):
    with registered(DUMMY_TAG, Dummy):
        assert decode(encode(payload)) == payload


def test_dummy_tag_is_unknown_outside_the_registration():
    data = encode(DUMMY)
    with registered(DUMMY_TAG, Dummy):
        assert decode(data) == DUMMY
    with pytest.raises(DecodeError, match=r"^unknown payload type 0x7e$"):
        decode(data)


# ------------------------------------------------------- registration rules

def test_a_tag_is_registered_once():
    @dataclass(frozen=True, slots=True)
    class Impostor(PayloadType):
        text: bytes = wire(Bytes(10, "impostor text"))

    with pytest.raises(ValueError, match=r"^payload tag 0x20 is already registered to Review$"):
        register(0x20)(Impostor)
    assert PAYLOAD_TYPES[0x20] is Review
    with registered(DUMMY_TAG, Dummy):
        with pytest.raises(ValueError, match="already registered to Dummy"):
            register(DUMMY_TAG)(Impostor)
        with pytest.raises(ValueError, match="already registered to Dummy"):
            with registered(DUMMY_TAG, Impostor):
                pass  # pragma: no cover - the registration above fails
        assert PAYLOAD_TYPES[DUMMY_TAG] is Dummy
    assert DUMMY_TAG not in PAYLOAD_TYPES


def test_the_registry_cannot_be_edited_directly():
    with pytest.raises(TypeError):
        PAYLOAD_TYPES[DUMMY_TAG] = Dummy  # type: ignore[index]


def test_registration_refuses_malformed_types():
    @dataclass(frozen=True, slots=True)
    class NoCodec(PayloadType):
        text: bytes

    with pytest.raises(TypeError, match=r"NoCodec\.text has no codec"):
        register(DUMMY_TAG)(NoCodec)

    @dataclass(frozen=True)
    class NotAPayload:
        text: bytes = wire(Bytes(10, "text"))

    with pytest.raises(TypeError, match="must subclass PayloadType"):
        register(DUMMY_TAG)(NotAPayload)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="payload tag must be a byte"):
        register(0x100)(Dummy)
    assert DUMMY_TAG not in PAYLOAD_TYPES


def test_a_record_must_be_compiled_before_use():
    @dataclass(frozen=True, slots=True)
    class Loose(Record):
        value: int = wire(U8("loose value"))

    with pytest.raises(TypeError, match="Loose is not compiled"):
        Loose(1)
    assert compile_record(Loose)(7).value == 7


def test_every_unregistered_tag_is_a_decode_error():
    unknown = [tag for tag in range(256) if tag not in PAYLOAD_TYPES]
    assert len(unknown) == 256 - 19
    for tag in unknown:
        with pytest.raises(DecodeError, match=rf"^unknown payload type 0x{tag:02x}$"):
            decode(bytes([tag]))


# ------------------------------------------------------ limits, both ways

def body(payload: Dummy) -> bytes:
    return encode(payload)[1:]


def decode_body(data: bytes) -> Dummy:
    r = Reader(data)
    payload = Dummy._decode_body(r)
    r.finish("dummy")
    return payload


def with_(**changes: Any) -> Dummy:
    values = {name: getattr(DUMMY, name) for name, _ in Dummy._SPEC}
    values.update(changes)
    return Dummy(**values)


def test_bytes_limit_both_ways(dummy_family):
    assert decode_body(body(DUMMY)).text == b"12345"  # exactly the limit
    with pytest.raises(ValueError, match=r"^dummy text too long: 6 > 5 bytes$"):
        with_(text=b"123456")
    over = body(DUMMY).replace(b"\x0512345", b"\x06123456")
    with pytest.raises(DecodeError, match=r"^dummy text length too large: 6 > 5$"):
        decode_body(over)
    with pytest.raises(ValueError, match=r"^dummy text must be bytes$"):
        with_(text="12345")


def test_list_limit_both_ways(dummy_family):
    assert len(decode_body(body(DUMMY)).entries) == 2  # exactly the limit
    with pytest.raises(ValueError, match=r"^too many dummy entries: 3 > 2$"):
        with_(entries=DUMMY.entries + ((b"", b"3"),))
    over = body(DUMMY).replace(b"\x02\x03abc1\x002", b"\x03\x03abc1\x002\x003")
    with pytest.raises(DecodeError, match=r"^dummy entries count too large: 3 > 2$"):
        decode_body(over)
    with pytest.raises(ValueError, match=r"^dummy entry key too long: 4 > 3 bytes$"):
        with_(entries=((b"abcd", b"1"),))
    with pytest.raises(ValueError, match=r"^dummy entry value must be 1 bytes$"):
        with_(entries=((b"abc", b"12"),))


@pytest.mark.parametrize("field, maximum", [("small", 0xFF), ("medium", 2**32 - 1),
                                            ("large", 2**64 - 1)])
def test_integer_limits(dummy_family, field, maximum):
    assert getattr(decode_body(body(with_(**{field: maximum}))), field) == maximum
    assert getattr(decode_body(body(with_(**{field: 0}))), field) == 0
    for bad in (maximum + 1, -1):
        with pytest.raises(ValueError, match=rf"^dummy {field} out of range$"):
            with_(**{field: bad})


def test_fixed_size_both_ways(dummy_family):
    for bad in (b"KEY", b"KEY!!", "KEY!"):
        with pytest.raises(ValueError, match=r"^dummy key must be 4 bytes$"):
            with_(key=bad)
    with pytest.raises(ValueError, match=r"^dummy signature must be 64 bytes$"):
        with_(signature=bytes(63))
    with pytest.raises(DecodeError, match=r"^truncated dummy signature: need 64 bytes, 63 left$"):
        decode_body(body(DUMMY)[:-1])


def test_flags_are_zero_or_one_both_ways(dummy_family):
    data = body(DUMMY)
    flag_at = len(b"KEY!") + 1 + 4 + 8 + 6
    assert data[flag_at] == 1 and data[flag_at + 1] == 1
    assert decode_body(body(with_(flag=False, extra=None))).extra is None
    for bad in (2, 0xFF):
        mutated = data[:flag_at] + bytes([bad]) + data[flag_at + 1 :]
        with pytest.raises(DecodeError, match=r"^dummy flag must be 0 or 1$"):
            decode_body(mutated)
        mutated = data[: flag_at + 1] + bytes([bad]) + data[flag_at + 2 :]
        with pytest.raises(DecodeError, match=r"^dummy extra flag must be 0 or 1$"):
            decode_body(mutated)
    with pytest.raises(ValueError, match=r"^dummy flag must be True or False$"):
        with_(flag=2)
    with pytest.raises(ValueError, match=r"^dummy extra must be 2 bytes$"):
        with_(extra=b"e")


def test_key_signature_list_limit_both_ways():
    pair = KeySig(b"\x02" * 33, b"\x01" * 64)
    at_limit = TokenReward(bytes(32), 0, (), (pair,) * 100)
    assert decode(encode(at_limit)) == at_limit
    with pytest.raises(ValueError, match=r"^reward keys must be a tuple of at most 100$"):
        TokenReward(bytes(32), 0, (), (pair,) * 101)
    with pytest.raises(ValueError, match=r"^reward keys must be KeySig pairs$"):
        TokenReward(bytes(32), 0, (), ((pair.pubkey, pair.signature),))
    over = encode(at_limit).replace(b"\x64" + pair.pubkey, b"\x65" + pair.pubkey, 1)
    with pytest.raises(DecodeError, match=r"^reward keys count too large: 101 > 100$"):
        decode(over)
