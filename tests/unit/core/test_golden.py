"""Golden test vectors: the code, ``tests/data/golden/core_vectors.json`` and
``docs/protocol.rst`` must all agree byte for byte.

Regenerate the JSON with ``python tests/unit/core/make_golden.py`` (and the
docs' listings with ``--rst``) only when the encoding deliberately changes.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from o2ocli.core.block import Block, BlockHeader, merkle_root
from o2ocli.core.locks import Multisig, PayToAddress
from o2ocli.core.payloads import Coinbase, GenesisAlloc
from o2ocli.core.tx import Coin, Tx
from o2ocli.crypto.hashes import hash160, sha256d
from o2ocli.crypto.keys import PublicKey

from .make_golden import (
    CHAIN_ID,
    DOC_PATH,
    GOLDEN_PATH,
    build_vectors,
    golden_document,
    named_objects,
    rst_section,
)

DECODE = {
    "tx": Tx.from_bytes,
    "block": Block.from_bytes,
    "header": BlockHeader.from_bytes,
    "coin": Coin.from_bytes,
}


@pytest.fixture(scope="module")
def golden() -> dict[str, Any]:
    return json.loads(GOLDEN_PATH.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def by_name(golden) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in golden["vectors"]}


@pytest.fixture(scope="module")
def vectors():
    return build_vectors()


def test_golden_file_lists_the_required_vectors(golden):
    kinds = [(v["name"], v["kind"]) for v in golden["vectors"]]
    assert ("payment-p2a-1in-2out", "tx") in kinds
    assert ("payment-2in-1out-multisig", "tx") in kinds
    assert ("fee-claim", "tx") in kinds
    assert ("block-1", "block") in kinds
    assert golden["chain_id"] == CHAIN_ID == "o2o-test"


# -- (i) rebuilt objects encode to the golden bytes -------------------------------------


def test_rebuilt_document_equals_golden_file(golden, vectors):
    assert golden_document(vectors) == golden


@pytest.mark.parametrize("index", range(10))
def test_rebuilt_objects_encode_to_golden_hex(index, by_name, vectors):
    name, kind, obj = named_objects(vectors)[index]
    entry = by_name[name]
    assert entry["kind"] == kind
    assert obj.to_bytes().hex() == entry["hex"]


# -- (ii) decoding the golden bytes gives the documented ids and digests ----------------------


@pytest.mark.parametrize("index", range(10))
def test_decode_golden_hex(index, golden):
    entry = golden["vectors"][index]
    data = bytes.fromhex(entry["hex"])
    obj = DECODE[entry["kind"]](data)
    assert obj.to_bytes() == data
    if entry["kind"] == "tx":
        assert obj.txid.hex() == entry["txid"]
        assert obj.txid == sha256d(obj.stripped_bytes())
        assert obj.sighash(CHAIN_ID).hex() == entry["sighash"]
    elif entry["kind"] in ("block", "header"):
        header = obj.header if entry["kind"] == "block" else obj
        assert header.hash.hex() == entry["hash"]
        assert header.hash == sha256d(header.to_bytes())
        assert header.seal_hash(CHAIN_ID).hex() == entry["seal_hash"]
        if entry["kind"] == "block":
            assert header.merkle_root.hex() == entry["merkle_root"]
            assert [t.txid.hex() for t in obj.txs] == entry["txids"]
            assert obj.compute_merkle_root() == header.merkle_root


def test_vectors_are_signed_correctly(golden, by_name):
    """Every witness and seal in the vectors verifies, so they are usable end to end."""
    keys = {k["hash160"]: k for k in golden["keys"]}
    genesis = Block.from_bytes(bytes.fromhex(by_name["genesis-block"]["hex"]))
    utxo = {(tx.txid, i): out for tx in genesis.txs for i, out in enumerate(tx.outputs)}
    for name in ("payment-p2a-1in-2out", "payment-2in-1out-multisig"):
        tx = Tx.from_bytes(bytes.fromhex(by_name[name]["hex"]))
        digest = tx.sighash(CHAIN_ID)
        spent = 0
        for txin in tx.inputs:
            lock = utxo[(txin.prevout.txid, txin.prevout.index)].lock
            spent += utxo[(txin.prevout.txid, txin.prevout.index)].amount
            signer_hashes = [hash160(p.pubkey) for p in txin.witness]
            if isinstance(lock, PayToAddress):
                assert signer_hashes == [lock.pubkey_hash]
            else:
                assert isinstance(lock, Multisig) and len(signer_hashes) == lock.m
                positions = [lock.pubkey_hashes.index(h) for h in signer_hashes]
                assert positions == sorted(set(positions))
            for pair in txin.witness:
                assert hash160(pair.pubkey).hex() in keys
                assert PublicKey(pair.pubkey).verify(pair.signature, digest)
        assert spent > sum(out.amount for out in tx.outputs)
    block = Block.from_bytes(bytes.fromhex(by_name["block-1"]["hex"]))
    assert block.header.prev_hash == genesis.hash
    assert block.txs[0].is_coinbase and block.txs[0].payload == Coinbase(1)
    assert isinstance(genesis.txs[0].payload, GenesisAlloc)
    for name in ("block-1", "header-vote", "header-checkpoint"):
        raw = bytes.fromhex(by_name[name]["hex"])
        header = (Block if name == "block-1" else BlockHeader).from_bytes(raw)
        header = header.header if isinstance(header, Block) else header
        assert PublicKey(header.seal_pubkey).verify(
            header.seal_signature, header.seal_hash(CHAIN_ID)
        )
    assert genesis.header.seal_pubkey == bytes(33)


def test_merkle_example(golden, by_name):
    ex = golden["merkle_example"]
    block = Block.from_bytes(bytes.fromhex(by_name["block-1"]["hex"]))
    assert ex["wtxids"] == [sha256d(tx.to_bytes()).hex() for tx in block.txs]
    txids = [bytes.fromhex(x) for x in ex["wtxids"]]
    leaves = [sha256d(b"\x00" + w) for w in txids]  # leaf(wtxid) = SHA-256d(00 ‖ wtxid)
    assert [leaf.hex() for leaf in leaves] == ex["leaves"]
    inner = sha256d(b"\x01" + leaves[0] + leaves[1])  # node(l, r) = SHA-256d(01 ‖ l ‖ r)
    assert inner.hex() == ex["inner"]
    assert sha256d(b"\x01" + inner + leaves[2]).hex() == ex["root"]
    assert merkle_root(txids).hex() == ex["root"] == by_name["block-1"]["merkle_root"]


def test_constants(golden):
    c = golden["constants"]
    assert bytes.fromhex(c["sighash_prefix"]) == b"\x0eo2o/sighash/v1\x08o2o-test"
    assert bytes.fromhex(c["seal_prefix"]) == b"\x0bo2o/seal/v1\x08o2o-test"


# -- (iii) docs/protocol.rst shows exactly the golden bytes --------------------------------

_MARKER = re.compile(r"^\.\. golden-(hex|breakdown): (\S+)\s*$")
_HEX = re.compile(r"^[0-9a-f]+$")
_LOOSE_HEX = re.compile(r"(?<![0-9A-Za-z])[0-9a-f]{40,}(?![0-9A-Za-z])")


def _parse_doc(text: str) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """(golden-hex blocks, golden-breakdown blocks, other long hex strings) of the docs."""
    lines = text.splitlines()
    dumps: dict[str, str] = {}
    breakdowns: dict[str, str] = {}
    loose: list[str] = []
    i = 0
    while i < len(lines):
        match = _MARKER.match(lines[i])
        if not match:
            loose += _LOOSE_HEX.findall(lines[i])
            i += 1
            continue
        kind, name = match.groups()
        i += 1
        while not lines[i].strip():
            i += 1
        assert lines[i].startswith(".. code-block::"), f"no literal block after {name}"
        i += 1
        body = []
        while i < len(lines) and (not lines[i].strip() or lines[i].startswith(" ")):
            if lines[i].strip():
                body.append(lines[i].split())
            i += 1
        if kind == "hex":
            assert all(len(tokens) == 1 and _HEX.match(tokens[0]) for tokens in body), name
            dumps[name] = "".join(tokens[0] for tokens in body)
        else:
            breakdowns[name] = "".join(t[0] for t in body if _HEX.match(t[0]))
    return dumps, breakdowns, loose


@pytest.fixture(scope="module")
def doc() -> tuple[dict[str, str], dict[str, str], list[str]]:
    return _parse_doc(DOC_PATH.read_text(encoding="utf-8"))


def _strings(value: Any) -> set[str]:
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return set().union(*(_strings(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_strings(v) for v in value))
    return set()


def test_doc_hex_dumps_match_golden(doc, by_name):
    dumps, _, _ = doc
    assert set(dumps) == set(by_name)
    for name, hexstr in dumps.items():
        assert hexstr == by_name[name]["hex"], name


def test_doc_breakdowns_match_golden(doc, by_name):
    _, breakdowns, _ = doc
    assert set(breakdowns) == set(by_name)
    for name, hexstr in breakdowns.items():
        assert hexstr == by_name[name]["hex"], name


def test_every_hex_string_in_doc_is_golden(doc, golden):
    _, _, loose = doc
    known = _strings(golden)
    unknown = [h for h in loose if h not in known]
    assert not unknown, f"hex in docs/protocol.rst not in the golden file: {unknown}"


def test_every_golden_id_is_in_doc(doc, golden):
    _, _, loose = doc
    shown = set(loose)
    for entry in golden["vectors"]:
        for key in ("txid", "sighash", "hash", "seal_hash", "merkle_root"):
            if key in entry:
                assert entry[key] in shown, f"{entry['name']} {key} missing from the docs"
    ex = golden["merkle_example"]
    for value in [*ex["leaves"], ex["inner"], ex["root"]]:
        assert value in shown
    for key in golden["keys"]:
        assert {key["secret"], key["pubkey"], key["hash160"]} <= shown
    assert set(golden["constants"].values()) <= shown


def test_doc_vector_listings_are_generated(vectors):
    """The listings (descriptions, ids, dumps, breakdowns) are exactly the
    generator's output: regenerate with ``make_golden.py --rst`` after a change."""
    assert rst_section(vectors) in DOC_PATH.read_text(encoding="utf-8")
