"""Byte vectors of every payload type of the registry (one or two per tag).

They were produced by the hand-written codecs that the field spec replaced
(``o2ocli/core/payloads.py`` before issue 15) and pin the wire format of the
O2O payloads the way ``tests/data/golden/core_vectors.json`` pins the base
chain's: an encoding here never changes.  Each row is (payload, its tagged
encoding, the digest its signer signs on chain ``CHAIN_ID`` with ``OUTPOINTS``
as the carrying transaction's inputs, or "" for unsigned payloads).
"""

from __future__ import annotations

from o2ocli.core.payloads import (
    NO_PAYLOAD,
    REWARD_REVIEWS,
    Coinbase,
    ConsentGrant,
    ConsentGrantProfile,
    ConsentRevoke,
    GenesisAlloc,
    GovProposal,
    GovVote,
    KeySig,
    ProfileCommit,
    Review,
    ReviewReply,
    TokenBurn,
    TokenCommit,
    TokenFreeze,
    TokenIssue,
    TokenMint,
    TokenReward,
    TraceEvent,
    TraceRegister,
)


def b(n: int, start: int = 1) -> bytes:
    """``n`` bytes counting up from ``start`` (mod 256)."""
    return bytes((start + i) % 256 for i in range(n))


CHAIN_ID = "o2o-golden"
OUTPOINTS = (b(36, 0xA0),)
KEYS = (KeySig(b(33, 0x40), b(64, 0x80)), KeySig(b(33, 0x41), b(64, 0x81)))

VECTORS = [
    (
        NO_PAYLOAD,
        "00",
        "",
    ),
    (
        Coinbase(0x01020304),
        "0104030201",
        "",
    ),
    (
        GenesisAlloc(b"o2o-golden"),
        "020a6f326f2d676f6c64656e",
        "",
    ),
    (
        TokenCommit(b(32)),
        (
            "100102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
            "20"
        ),
        "",
    ),
    (
        TokenIssue(b"LOY", b"Loyalty points", 2, True, b(32, 0x20)),
        (
            "11034c4f590e4c6f79616c747920706f696e7473020120212223242526272829"
            "2a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
        ),
        "",
    ),
    (
        TokenMint(b(32), 0x0102030405060708),
        (
            "120102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
            "200807060504030201"
        ),
        "",
    ),
    (
        TokenBurn(b(32, 0x30), 1_000),
        (
            "13303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e"
            "4fe803000000000000"
        ),
        "",
    ),
    (
        TokenFreeze(b(32, 0x50)),
        (
            "14505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e"
            "6f"
        ),
        "",
    ),
    (
        TokenReward(b(32), REWARD_REVIEWS, (b(32, 0x10), b(32, 0x11)), KEYS),
        (
            "150102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
            "200102101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c"
            "2d2e2f1112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d"
            "2e2f3002404142434445464748494a4b4c4d4e4f505152535455565758595a5b"
            "5c5d5e5f604142434445464748494a4b4c4d4e4f505152535455565758595a5b"
            "5c5d5e5f6061808182838485868788898a8b8c8d8e8f90919293949596979899"
            "9a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9"
            "babbbcbdbebf8182838485868788898a8b8c8d8e8f909192939495969798999a"
            "9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9ba"
            "bbbcbdbebfc0"
        ),
        "7de2127b158f2a5b390e9d14b03e33c736c7ff80f2afb0026586dfe0726bd017",
    ),
    (
        Review(b(20), b(32, 0x20), 5, "Très bien ☕".encode(), b(33, 0x40), b(64, 0x80)),
        (
            "200102030405060708090a0b0c0d0e0f1011121314202122232425262728292a"
            "2b2c2d2e2f303132333435363738393a3b3c3d3e3f050e5472c3a87320626965"
            "6e20e29895404142434445464748494a4b4c4d4e4f505152535455565758595a"
            "5b5c5d5e5f60808182838485868788898a8b8c8d8e8f90919293949596979899"
            "9a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9"
            "babbbcbdbebf"
        ),
        "d52f1d07d8c9dd262267e76858ed4c2e8303abff96c34b6502edb8c7dc2b31f1",
    ),
    (
        ReviewReply(b(32), b"Thanks!", b(33, 0x40), b(64, 0x80)),
        (
            "210102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
            "20075468616e6b7321404142434445464748494a4b4c4d4e4f50515253545556"
            "5758595a5b5c5d5e5f60808182838485868788898a8b8c8d8e8f909192939495"
            "969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5"
            "b6b7b8b9babbbcbdbebf"
        ),
        "45d7f9f2d3d8e5435881546c0b5d2ed587b26c54f92c3e850060b2953b420bde",
    ),
    (
        TraceRegister(
            b(20), b"LOT-7", b"green tea", ((b"origin", b"Yunnan"), (b"grade", b"A")),
            b(33, 0x40), b(64, 0x80),
        ),
        (
            "300102030405060708090a0b0c0d0e0f1011121314054c4f542d370967726565"
            "6e2074656102066f726967696e0659756e6e616e056772616465014140414243"
            "4445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f60808182"
            "838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2"
            "a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
        ),
        "d62c40c770677b16606a65ce67f706b6f7bd04f0ff8e3faa5259ce7cf97bda4f",
    ),
    (
        TraceEvent(b(32), 2, b"Kunming", b"", b(32, 0x90)),
        (
            "310102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
            "2002074b756e6d696e670001909192939495969798999a9b9c9d9e9fa0a1a2a3"
            "a4a5a6a7a8a9aaabacadaeaf"
        ),
        "",
    ),
    (
        TraceEvent(b(32), 6, b"", b"checked", None),
        (
            "310102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
            "20060007636865636b656400"
        ),
        "",
    ),
    (
        ConsentGrant(b(20), b"purchase-history", 1000, b(33, 0x40), b(64, 0x80)),
        (
            "400102030405060708090a0b0c0d0e0f10111213141070757263686173652d68"
            "6973746f7279e8030000404142434445464748494a4b4c4d4e4f505152535455"
            "565758595a5b5c5d5e5f60808182838485868788898a8b8c8d8e8f9091929394"
            "95969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4"
            "b5b6b7b8b9babbbcbdbebf"
        ),
        "478afc99cd959c06992a373f28ff38f9f95de6ef21c703b4ca4c5b623735eb76",
    ),
    (
        ConsentRevoke(b(32), b(33, 0x40), b(64, 0x80)),
        (
            "410102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
            "20404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e"
            "5f60808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d"
            "9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbd"
            "bebf"
        ),
        "c820ed9a11f2951b32222987717f16911a736ecd5c3d1fdae6b757fa1a3a1000",
    ),

    (
        GovProposal(b"Open on Sundays?", b"Shall the shop open on Sundays?", (b"yes", b"no"), 0,
                    b(32), None, 100, 100_000_000),
        (
            "50104f70656e206f6e2053756e646179733f1f5368616c6c207468652073686f"
            "70206f70656e206f6e2053756e646179733f0203796573026e6f000102030405"
            "060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f200064000000"
            "00e1f50500000000"
        ),
        "",
    ),
    (
        GovProposal(b"Menu", b"", (b"tea", b"coffee", b"juice"), 1, bytes(32), b(20, 0x30),
                    2000, 5),
        (
            "50044d656e7500030374656106636f66666565056a7569636501000000000000"
            "0000000000000000000000000000000000000000000000000000013031323334"
            "35363738393a3b3c3d3e3f40414243d00700000500000000000000"
        ),
        "",
    ),
    (
        GovVote(b(32), 2, (b(36, 0x50), b(36, 0x60)), None,
                (KeySig(b(33, 0x40), b(64, 0x80)), KeySig(b(33, 0x41), b(64, 0x81)))),
        (
            "510102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
            "200202505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c"
            "6d6e6f70717273606162636465666768696a6b6c6d6e6f707172737475767778"
            "797a7b7c7d7e7f808182830002404142434445464748494a4b4c4d4e4f505152"
            "535455565758595a5b5c5d5e5f604142434445464748494a4b4c4d4e4f505152"
            "535455565758595a5b5c5d5e5f6061808182838485868788898a8b8c8d8e8f90"
            "9192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0"
            "b1b2b3b4b5b6b7b8b9babbbcbdbebf8182838485868788898a8b8c8d8e8f9091"
            "92939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1"
            "b2b3b4b5b6b7b8b9babbbcbdbebfc0"
        ),
        "9ae9026e0c60cbba160b492fb228cb52105077f22999b71779f17a988b105547",
    ),
    (
        GovVote(b(32), 1, (), b(32, 0x70), (KeySig(b(33, 0x40), b(64, 0x80)),)),
        (
            "510102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
            "20010001707172737475767778797a7b7c7d7e7f808182838485868788898a8b"
            "8c8d8e8f01404142434445464748494a4b4c4d4e4f505152535455565758595a"
            "5b5c5d5e5f60808182838485868788898a8b8c8d8e8f90919293949596979899"
            "9a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9"
            "babbbcbdbebf"
        ),
        "c7914a536ccbad404a0e1e6e1fa4e962b18a696dfd6208dd7fc1b58f79398000",
    ),

    (
        ConsentGrantProfile(b(20), b"phone", 1000, b(32, 0x60), b(33, 0x40), b(64, 0x80)),
        (
            "420102030405060708090a0b0c0d0e0f10111213140570686f6e65e803000060"
            "6162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f40"
            "4142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f60"
            "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
            "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
        ),
        "f49138f79d8819c31ff5e0636f80ebbe44629fe02f1b33eac16898cf4fe19f54",
    ),
    (
        ProfileCommit(b(32, 0x20), 5, b(33, 0x40), b(64, 0x80)),
        (
            "60202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e"
            "3f05000000404142434445464748494a4b4c4d4e4f505152535455565758595a"
            "5b5c5d5e5f60808182838485868788898a8b8c8d8e8f90919293949596979899"
            "9a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9"
            "babbbcbdbebf"
        ),
        "5648b1567ad3383e90c63c47aeb3e8881e963c1393fe20d90f8c66b896cbfe3a",
    ),
]
