"""Build the protocol test vectors and write ``tests/data/golden/core_vectors.json``.

Run once from the repository root (only when the encoding deliberately changes)::

    python tests/unit/core/make_golden.py          # rewrite the golden JSON
    python tests/unit/core/make_golden.py --rst    # print the key and vector listings that
                                                   # docs/protocol.rst must contain verbatim

Importing this module has no side effects: ``test_golden.py`` imports
:func:`build_vectors` to rebuild the very same objects and compare.  The file
name does not match ``test_*.py``, so pytest never collects it.

Everything is deterministic: keys come from
``deterministic_key(b"protocol-vectors", i)`` and signatures are RFC 6979.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[3]
GOLDEN_PATH = REPO_ROOT / "tests" / "data" / "golden" / "core_vectors.json"
DOC_PATH = REPO_ROOT / "docs" / "protocol.rst"

if __name__ == "__main__" and str(REPO_ROOT) not in sys.path:  # pragma: no cover
    sys.path.insert(0, str(REPO_ROOT))

from o2ocli.core.block import VOTE_ADD, Block, BlockHeader, merkle_root  # noqa: E402
from o2ocli.core.encoding import Writer  # noqa: E402
from o2ocli.core.locks import Multisig, PayToAddress  # noqa: E402
from o2ocli.core.payloads import Coinbase, GenesisAlloc, NoPayload  # noqa: E402
from o2ocli.core.tx import NATIVE_ASSET, SIGHASH_TAG, Coin, Outpoint, Tx, TxIn, TxOut  # noqa: E402
from o2ocli.crypto.hashes import sha256, sha256d  # noqa: E402
from o2ocli.testing.chaingen import (  # noqa: E402
    deterministic_key,
    make_block,
    make_genesis,
    p2a,
    sign_tx,
)

CHAIN_ID = "o2o-test"
KEY_SEED = b"protocol-vectors"
N_KEYS = 10
TOKEN_ID = sha256(b"o2o/vector-token")
WRAP = 64  # hex characters per line in the docs (a field of up to 33 bytes stays on one line)
COLUMN = 68  # where the comments of a field-by-field breakdown start


@dataclasses.dataclass(frozen=True)
class Vectors:
    """The objects behind the golden file."""

    keys: list
    genesis: Block
    payment_p2a: Tx
    payment_multisig: Tx
    fee_claim: Tx
    block1: Block
    header_vote: BlockHeader
    header_checkpoint: BlockHeader
    coin_token: Coin
    coin_fee_claim: Coin


def _seal(header: BlockHeader, key: Any) -> BlockHeader:
    signature = key.sign(header.seal_hash(CHAIN_ID))
    return dataclasses.replace(
        header, seal_pubkey=key.public_key.to_bytes(), seal_signature=signature
    )


def build_vectors() -> Vectors:
    """Rebuild every vector object from scratch (deterministically)."""
    k = [deterministic_key(KEY_SEED, i) for i in range(N_KEYS)]
    h = [key.public_key.hash160() for key in k]
    multisig = Multisig.of(2, [h[2], h[3], h[4]])
    genesis = make_genesis(
        CHAIN_ID,
        [
            TxOut(NATIVE_ASSET, 5_000_000_000, p2a(k[0])),
            TxOut(NATIVE_ASSET, 3_000_000_000, p2a(k[1])),
            TxOut(NATIVE_ASSET, 2_000_000_000, multisig),
        ],
    )
    gtxid = genesis.txs[0].txid

    # (a) 1-in/2-out payment from key 0: 1.5e9 to key 5, change to key 0, fee 10_000.
    payment_p2a = sign_tx(
        Tx(
            (TxIn(Outpoint(gtxid, 0)),),
            (
                TxOut(NATIVE_ASSET, 1_500_000_000, p2a(k[5])),
                TxOut(NATIVE_ASSET, 3_499_990_000, p2a(k[0])),
            ),
        ),
        [[k[0]]],
        CHAIN_ID,
    )

    # (b) 2-in/1-out: key 1's coin and the 2-of-3 coin (signed by keys 2 and 4,
    # in the lock's hash order), fee 20_000, lock_height 1.
    ms_signers = sorted([k[2], k[4]], key=lambda key: key.public_key.hash160())
    payment_multisig = sign_tx(
        Tx(
            (TxIn(Outpoint(gtxid, 1)), TxIn(Outpoint(gtxid, 2))),
            (TxOut(NATIVE_ASSET, 4_999_980_000, p2a(k[6])),),
            lock_height=1,
        ),
        [[k[1]], ms_signers],
        CHAIN_ID,
    )

    # (d) block 1: fee claim (c) of 30_000 to key 7, then (a) and (b); sealed by key 8.
    unsealed = make_block(
        genesis.header, [payment_p2a, payment_multisig], fees=30_000, fee_lock=p2a(k[7])
    )
    block1 = Block(_seal(unsealed.header, k[8]), unsealed.txs)
    fee_claim = block1.txs[0]

    # Header-only vectors: a vote, and an epoch checkpoint.
    header_vote = _seal(
        BlockHeader(
            2,
            block1.hash,
            merkle_root([]),
            block1.header.time + 1,
            difficulty=2,
            vote_kind=VOTE_ADD,
            vote_address=h[9],
        ),
        k[8],
    )
    header_checkpoint = _seal(
        BlockHeader(
            3,
            header_vote.hash,
            merkle_root([]),
            header_vote.time + 1,
            difficulty=1,
            checkpoint=tuple(sorted([h[8], h[9]])),
        ),
        k[9],
    )

    return Vectors(
        keys=k,
        genesis=genesis,
        payment_p2a=payment_p2a,
        payment_multisig=payment_multisig,
        fee_claim=fee_claim,
        block1=block1,
        header_vote=header_vote,
        header_checkpoint=header_checkpoint,
        coin_token=Coin(TxOut(TOKEN_ID, 1_000_000, p2a(k[5])), 7),
        coin_fee_claim=Coin(fee_claim.outputs[0], 1, coinbase=True),
    )


def named_objects(v: Vectors) -> list[tuple[str, str, Any]]:
    """(name, kind, object) for every vector, in golden-file order."""
    return [
        ("payment-p2a-1in-2out", "tx", v.payment_p2a),
        ("payment-2in-1out-multisig", "tx", v.payment_multisig),
        ("fee-claim", "tx", v.fee_claim),
        ("block-1", "block", v.block1),
        ("genesis-alloc", "tx", v.genesis.txs[0]),
        ("genesis-block", "block", v.genesis),
        ("header-vote", "header", v.header_vote),
        ("header-checkpoint", "header", v.header_checkpoint),
        ("coin-token", "coin", v.coin_token),
        ("coin-fee-claim", "coin", v.coin_fee_claim),
    ]


DESCRIPTIONS = {
    "payment-p2a-1in-2out": (
        "(a) A signed 1-input/2-output pay-to-address payment.  It spends output 0 of "
        "``genesis-alloc`` (5 000 000 000, key 0) and pays 1 500 000 000 to key 5 and "
        "3 499 990 000 back to key 0 (fee 10 000).  The witness is one pair by key 0."
    ),
    "payment-2in-1out-multisig": (
        "(b) A signed 2-input/1-output payment with ``lock_height = 1``.  Input 0 spends "
        "output 1 of ``genesis-alloc`` (3 000 000 000, key 1); input 1 spends output 2 "
        "(2 000 000 000 under a 2-of-3 multisig of keys 2, 3 and 4).  It pays "
        "4 999 980 000 to key 6 (fee 20 000).  Input 1's witness has two pairs, by "
        "keys 4 and 2, in the lock's ascending hash order (key 3, key 4, key 2)."
    ),
    "fee-claim": (
        "(c) The fee claim (coinbase) of block 1: no inputs, one output of 30 000 "
        "(the fees of (a) and (b)) to key 7, payload ``Coinbase(1)``.  With no inputs "
        "there are no witnesses: the encoding ends after the payload.  The sighash is "
        "shown for completeness (nothing signs it)."
    ),
    "block-1": (
        "(d) Block 1, built with ``make_block(genesis.header, [(a), (b)], fees=30_000, "
        "fee_lock=PayToAddress(key 7))`` and then sealed by key 8 (``seal_signature`` "
        "= key 8's signature over the seal hash).  Its transactions are (c), (a), (b); "
        "its merkle root is the worked example above."
    ),
    "genesis-alloc": (
        "The genesis allocation spent by (a) and (b): no inputs, three outputs "
        "(5 000 000 000 to key 0, 3 000 000 000 to key 1, 2 000 000 000 to the "
        '2-of-3 multisig of keys 2, 3, 4), payload ``GenesisAlloc("o2o-test/0")``.'
    ),
    "genesis-block": (
        'The genesis block, ``make_genesis("o2o-test", <the three outputs>)``: '
        "height 0, zero ``prev_hash``, time 1 700 000 000, difficulty 0, all-zero seal, "
        "one transaction (``genesis-alloc``, so the merkle root is ``leaf(wtxid)``, the "
        "leaf hash of its txid, not the txid itself)."
    ),
    "header-vote": (
        "A header (of an empty block 2, so the merkle root is 32 zero bytes) carrying "
        "a vote to add key 9 as a validator, sealed by key 8."
    ),
    "header-checkpoint": (
        "An epoch header (empty block 3, difficulty 1) whose checkpoint lists the "
        "validator set {key 8, key 9} in ascending order, sealed by key 9."
    ),
    "coin-token": (
        "A UTXO entry for a token output: height 7, not from a fee claim, "
        '1 000 000 units of the token whose id is SHA-256("o2o/vector-token") '
        "(shown below), locked to key 5."
    ),
    "coin-fee-claim": ("The UTXO entry of the fee claim's output: height 1, coinbase flag set."),
}


def _var_bytes(data: bytes) -> bytes:
    w = Writer()
    w.var_bytes(data)
    return w.getvalue()


def vector_entry(name: str, kind: str, obj: Any) -> dict[str, Any]:
    """The golden-file record of one object."""
    entry: dict[str, Any] = {"name": name, "kind": kind, "hex": obj.to_bytes().hex()}
    if kind == "tx":
        entry["txid"] = obj.txid.hex()
        entry["sighash"] = obj.sighash(CHAIN_ID).hex()
    elif kind in ("block", "header"):
        header = obj.header if kind == "block" else obj
        entry["hash"] = header.hash.hex()
        entry["seal_hash"] = header.seal_hash(CHAIN_ID).hex()
        if kind == "block":
            entry["merkle_root"] = header.merkle_root.hex()
            entry["txids"] = [tx.txid.hex() for tx in obj.txs]
    return entry


def golden_document(v: Vectors) -> dict[str, Any]:
    """The complete golden JSON document."""
    wtxids = [tx.wtxid for tx in v.block1.txs]  # SHA-256d of each full encoding
    leaves = [sha256d(b"\x00" + w) for w in wtxids]  # leaf(wtxid) = SHA-256d(00 ‖ wtxid)
    inner = sha256d(b"\x01" + leaves[0] + leaves[1])  # node(l, r) = SHA-256d(01 ‖ l ‖ r)
    return {
        "about": "o2ocli.core encoding test vectors; see docs/protocol.rst. "
        "Hashes are raw 32 bytes in hex (internal byte order, not reversed). "
        "Regenerate with: python tests/unit/core/make_golden.py",
        "chain_id": CHAIN_ID,
        "key_seed": KEY_SEED.decode(),
        "keys": [
            {
                "index": i,
                "secret": key.secret.hex(),
                "pubkey": key.public_key.to_bytes().hex(),
                "hash160": key.public_key.hash160().hex(),
            }
            for i, key in enumerate(v.keys)
        ],
        "constants": {
            "sighash_prefix": (_var_bytes(SIGHASH_TAG) + _var_bytes(CHAIN_ID.encode())).hex(),
            "seal_prefix": (_var_bytes(b"o2o/seal/v1") + _var_bytes(CHAIN_ID.encode())).hex(),
            "token_id": TOKEN_ID.hex(),
        },
        "vectors": [vector_entry(*item) for item in named_objects(v)],
        "merkle_example": {
            "wtxids": [w.hex() for w in wtxids],
            "leaves": [leaf.hex() for leaf in leaves],
            "inner": inner.hex(),
            "root": sha256d(b"\x01" + inner + leaves[2]).hex(),
        },
        "finality_vote": finality_vote_vector(),
        "utxo_commitment": utxo_commitment_vector(v),
    }


def utxo_commitment_vector(v: Vectors) -> dict[str, Any]:
    """MuHash3072 and the UTXO set commitment (docs/protocol.rst, *UTXO set
    commitment*): Core's two MuHash digests (checked against Core's own values
    in tests/unit/crypto/test_muhash.py) and the set hashes of coins A
    (``coin-token`` at 11 × 32 : 1) and B (``coin-fee-claim`` at 22 × 32 : 0)."""
    from o2ocli.crypto.muhash import MuHash3072

    def from_int(i: int) -> bytes:
        return bytes([i]) + bytes(31)

    a = bytes([0x11]) * 32 + (1).to_bytes(4, "big") + v.coin_token.to_bytes()
    b = bytes([0x22]) * 32 + (0).to_bytes(4, "big") + v.coin_fee_claim.to_bytes()
    core = MuHash3072().insert(from_int(0)).insert(from_int(1)).remove(from_int(2))
    overflow = MuHash3072.from_bytes(b"\xff" * 384 + b"\x01" + bytes(383))
    return {
        "core_insert_remove_uint256": core.digest()[::-1].hex(),
        "core_overflow": overflow.digest().hex(),
        "empty": MuHash3072().digest().hex(),
        "A": MuHash3072().insert(a).digest().hex(),
        "A+B": MuHash3072().insert(a).insert(b).digest().hex(),
        "B": MuHash3072().insert(b).digest().hex(),
        "A+B-A": MuHash3072().insert(a).insert(b).remove(a).digest().hex(),
    }


def finality_vote_vector() -> dict[str, Any]:
    """A finality vote (docs/protocol.rst, *Finality*): key 01 × 32 on chain
    ``o2o-devnet`` votes for the link 7 (aa × 32) → 8 (bb × 32)."""
    from o2ocli.core.finality import FinalityVote, vote_digest
    from o2ocli.crypto.keys import PrivateKey

    key = PrivateKey(bytes([1]) * 32)
    source, target = bytes([0xAA]) * 32, bytes([0xBB]) * 32
    digest = vote_digest("o2o-devnet", 7, source, 8, target)
    vote = FinalityVote(key.public_key.to_bytes(), 7, source, 8, target, key.sign(digest))
    raw = vote.to_bytes()
    return {
        "digest": digest.hex(),
        "hex": raw.hex(),
        "pubkey": raw[:33].hex(),
        "signature_r": raw[105:137].hex(),
        "signature_s": raw[137:].hex(),
        "id": vote.id.hex(),
    }


# -- annotated byte breakdowns for the docs ----------------------------------------------


def _varint_hex(n: int) -> str:
    w = Writer()
    w.varint(n)
    return w.getvalue().hex()


def _le(n: int, size: int) -> str:
    return n.to_bytes(size, "little").hex()


def _lock_rows(lock: Any) -> list[tuple[str, str]]:
    if isinstance(lock, PayToAddress):
        return [("01", "lock tag: PayToAddress"), (lock.pubkey_hash.hex(), "  pubkey_hash")]
    rows = [
        ("02", "lock tag: Multisig"),
        (f"{lock.m:02x}", f"  m = {lock.m}"),
        (f"{len(lock.pubkey_hashes):02x}", f"  n = {len(lock.pubkey_hashes)}"),
    ]
    rows += [(x.hex(), f"  pubkey_hash[{i}]") for i, x in enumerate(lock.pubkey_hashes)]
    return rows


def _payload_rows(payload: Any) -> list[tuple[str, str]]:
    if isinstance(payload, NoPayload):
        return [("00", "payload tag: NoPayload")]
    if isinstance(payload, Coinbase):
        return [
            ("01", "payload tag: Coinbase"),
            (_le(payload.height, 4), f"  height = {payload.height}"),
        ]
    assert isinstance(payload, GenesisAlloc)
    return [
        ("02", "payload tag: GenesisAlloc"),
        (_varint_hex(len(payload.note)), f"  note length = {len(payload.note)}"),
        (payload.note.hex(), f'  note = "{payload.note.decode()}"'),
    ]


def _txout_rows(out: TxOut, label: str) -> list[tuple[str, str]]:
    if out.asset == NATIVE_ASSET:
        rows = [("00", f"{label} asset: native")]
    else:
        rows = [("01", f"{label} asset: token"), (out.asset.hex(), "  asset id")]
    rows.append((_le(out.amount, 8), f"  amount = {out.amount:_}"))
    return rows + _lock_rows(out.lock)


def tx_rows(tx: Tx) -> list[tuple[str, str]]:
    """(hex, comment) rows whose hex concatenates to ``tx.to_bytes().hex()``."""
    rows = [(_le(tx.version, 4), f"version = {tx.version}")]
    rows.append((_varint_hex(len(tx.inputs)), f"input count = {len(tx.inputs)}"))
    for i, txin in enumerate(tx.inputs):
        rows.append((txin.prevout.txid.hex(), f"input[{i}] prev_txid"))
        rows.append((_le(txin.prevout.index, 4), f"  prev_index = {txin.prevout.index}"))
    rows.append((_varint_hex(len(tx.outputs)), f"output count = {len(tx.outputs)}"))
    for i, out in enumerate(tx.outputs):
        rows += _txout_rows(out, f"output[{i}]")
    rows.append((_le(tx.lock_height, 4), f"lock_height = {tx.lock_height}"))
    rows += _payload_rows(tx.payload)
    rows.append(("", "-- end of stripped encoding (txid / sighash preimage) --"))
    for i, txin in enumerate(tx.inputs):
        rows.append(
            (_varint_hex(len(txin.witness)), f"witness[{i}] pair count = {len(txin.witness)}")
        )
        for j, pair in enumerate(txin.witness):
            rows.append((pair.pubkey.hex(), f"  pair[{j}] pubkey"))
            rows.append((pair.signature.hex(), f"  pair[{j}] signature (r ‖ s)"))
    return rows


def header_rows(hd: BlockHeader) -> list[tuple[str, str]]:
    """(hex, comment) rows whose hex concatenates to ``hd.to_bytes().hex()``."""
    rows = [
        (_le(hd.version, 4), f"version = {hd.version}"),
        (_le(hd.height, 4), f"height = {hd.height}"),
        (hd.prev_hash.hex(), "prev_hash"),
        (hd.merkle_root.hex(), "merkle_root"),
        (_le(hd.time, 8), f"time = {hd.time}"),
        (_le(hd.difficulty, 4), f"difficulty = {hd.difficulty}"),
        (f"{hd.vote_kind:02x}", f"vote_kind = {hd.vote_kind}"),
    ]
    if hd.vote_kind:
        rows.append((hd.vote_address.hex(), "  vote_address"))
    rows.append((_varint_hex(len(hd.checkpoint)), f"checkpoint count = {len(hd.checkpoint)}"))
    rows += [(a.hex(), f"  checkpoint[{i}]") for i, a in enumerate(hd.checkpoint)]
    rows.append(("", "-- end of unsealed encoding (seal hash preimage) --"))
    rows.append((hd.seal_pubkey.hex(), "seal_pubkey"))
    rows.append((hd.seal_signature.hex(), "seal_signature (r ‖ s)"))
    return rows


def block_rows(block: Block, tx_names: dict[bytes, str]) -> list[tuple[str, str]]:
    rows = header_rows(block.header)
    rows.append((_varint_hex(len(block.txs)), f"tx count = {len(block.txs)}"))
    for i, tx in enumerate(block.txs):
        rows.append((tx.to_bytes().hex(), f"tx[{i}] = vector {tx_names[tx.txid]}"))
    return rows


def coin_rows(coin: Coin) -> list[tuple[str, str]]:
    rows = [
        (_le(coin.height, 4), f"height = {coin.height}"),
        ("01" if coin.coinbase else "00", f"flags (bit 0 = coinbase) = {int(coin.coinbase)}"),
    ]
    return rows + _txout_rows(coin.output, "output")


def format_rows(rows: list[tuple[str, str]]) -> list[str]:
    """Literal-block lines: hex (wrapped at 64 chars) then the comment."""
    lines = []
    for hexstr, comment in rows:
        if not hexstr:
            lines.append(" " * COLUMN + comment)
            continue
        chunks = [hexstr] if len(hexstr) <= COLUMN - 2 else wrap_hex(hexstr)
        lines.append(f"{chunks[0]:<{COLUMN}}{comment}")
        lines.extend(chunks[1:])
    return lines


def wrap_hex(hexstr: str) -> list[str]:
    return [hexstr[i : i + WRAP] for i in range(0, len(hexstr), WRAP)]


def rst_section(v: Vectors) -> str:
    """The reStructuredText of the docs' vector listings (pasted into protocol.rst)."""
    doc = golden_document(v)
    by_name = {e["name"]: e for e in doc["vectors"]}
    out: list[str] = []

    def literal(marker: str, lines: list[str]) -> None:
        out.extend([f".. {marker}", "", ".. code-block:: text", ""])
        out.extend("   " + line if line else "" for line in lines)
        out.append("")

    tx_names = {
        v.fee_claim.txid: "fee-claim",
        v.payment_p2a.txid: "payment-p2a-1in-2out",
        v.payment_multisig.txid: "payment-2in-1out-multisig",
        v.genesis.txs[0].txid: "genesis-alloc",
    }
    key_lines = []
    for key in doc["keys"]:
        key_lines += [
            f"key {key['index']}  secret   {key['secret']}",
            f"       pubkey   {key['pubkey']}",
            f"       hash160  {key['hash160']}",
            "",
        ]
    out += [".. code-block:: text", ""]
    out += ["   " + line if line else "" for line in key_lines]
    out += ["Vectors", "-------", ""]
    for name, kind, obj in named_objects(v):
        e = by_name[name]
        out += [f"``{name}``", "~" * (len(name) + 4), ""]
        out += [textwrap.fill(DESCRIPTIONS[name], width=79), ""]
        if name == "coin-token":
            out += [f":token id: ``{doc['constants']['token_id']}``", ""]
        fields = [
            (k, e[k]) for k in ("txid", "sighash", "hash", "seal_hash", "merkle_root") if k in e
        ]
        for key, value in fields:
            label = (
                "sighash (o2o-test)"
                if key == "sighash"
                else ("seal hash (o2o-test)" if key == "seal_hash" else key.replace("_", " "))
            )
            out.append(f":{label}: ``{value}``")
        if fields:
            out.append("")
        out += ["Full encoding:", ""]
        literal(f"golden-hex: {name}", wrap_hex(e["hex"]))
        if kind == "tx":
            rows = tx_rows(obj)
        elif kind == "header":
            rows = header_rows(obj)
        elif kind == "block":
            rows = block_rows(obj, tx_names)
        else:
            rows = coin_rows(obj)
        out += ["Field by field:", ""]
        literal(f"golden-breakdown: {name}", format_rows(rows))
    return "\n".join(out)


def main(argv: list[str]) -> int:
    vectors = build_vectors()
    if "--rst" in argv:
        print(rst_section(vectors))
        return 0
    GOLDEN_PATH.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(golden_document(vectors), indent=2) + "\n"
    GOLDEN_PATH.write_text(text, encoding="utf-8")
    print(f"wrote {GOLDEN_PATH.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
