"""Clique (EIP-225) voting scenarios from the shared vectors, run against
:meth:`Snapshot.apply` and, with real sealed headers, :func:`validate_header`.

The vectors (``eip225_voting_cases.json``, README section 4) name accounts by
letter.  Each letter becomes a fresh deterministic key whose seed changes on
every run (set ``O2O_POA_VECTOR_SEED`` to replay one), and every case runs with
three letter-to-address orders: letters ascending with the addresses,
descending, and shuffled.  No scenario may depend on letter order, so all
three must give the expected result.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest
from poa_helpers import CHAIN_ID, PERIOD, address, child_header, genesis_header, sorted_keys

from o2ocli.consensus.errors import BlockInvalid
from o2ocli.consensus.poa import PoAParams, Snapshot, validate_header
from o2ocli.core.block import VOTE_ADD, VOTE_NONE, VOTE_REMOVE
from o2ocli.crypto.keys import PrivateKey

REPO_ROOT = Path(__file__).resolve().parents[3]
VECTORS = REPO_ROOT.parent / "shared" / "vectors" / "eip225_voting_cases.json"
CASES: list[dict] = json.loads(VECTORS.read_text(encoding="utf-8"))
RUN_SEED = os.environ.get("O2O_POA_VECTOR_SEED") or os.urandom(8).hex()
ORDERS = ("ascending", "descending", "shuffled")
DEFAULT_EPOCH = 30_000
FAILURES = {
    "unauthorized signer": "bad-poa-unauthorized",
    "recently signed": "bad-poa-recently-signed",
}
PARAMS = [
    pytest.param(case, order, id=f"case{case['id']:02d}-{order}")
    for case in CASES
    for order in ORDERS
]


def letters_of(case: dict) -> list[str]:
    """Every letter a case mentions, alphabetically."""
    found = set(case["signers"]) | set(case["results"] or ())
    for vote in case["votes"]:
        found.add(vote["signer"])
        if vote["voted"] is not None:
            found.add(vote["voted"])
        found.update(vote.get("checkpoint", ()))
    return sorted(found)


def letter_keys(case: dict, order: str) -> dict[str, PrivateKey]:
    """letter → key, with the letters' alphabetical order mapped onto the
    addresses' byte order as ``order`` says."""
    letters = letters_of(case)
    seed = f"{RUN_SEED}/{case['id']}/{order}".encode()
    keys = sorted_keys(seed, len(letters))
    if order == "descending":
        keys.reverse()
    elif order == "shuffled":
        random.Random(seed).shuffle(keys)
    return dict(zip(letters, keys, strict=True))


def vote_of(vote: dict, keys: dict[str, PrivateKey]) -> tuple[int, bytes]:
    """(vote_kind, vote_address) of a vector entry."""
    if vote["voted"] is None:
        # A Go literal without "voted" is a plain block (a drop vote on the zero
        # address, which is never a signer).  No vector combines it with auth.
        assert vote["auth"] is False
        return VOTE_NONE, bytes(20)
    return (VOTE_ADD if vote["auth"] else VOTE_REMOVE), address(keys[vote["voted"]])


def addresses(letters: list[str], keys: dict[str, PrivateKey]) -> set[bytes]:
    return {address(keys[letter]) for letter in letters}


def context(case: dict, order: str) -> str:
    return f"case {case['id']} ({order}, seed {RUN_SEED}): {case['name']}"


def run_snapshots(case: dict, keys: dict[str, PrivateKey]) -> tuple[int, Snapshot]:
    """Apply the votes as blocks 1..n; return (blocks applied, final snapshot).
    A BlockInvalid propagates with the number of the offending block attached."""
    epoch = case["epoch"] or DEFAULT_EPOCH
    snapshot = Snapshot.genesis([address(keys[s]) for s in case["signers"]])
    for height, vote in enumerate(case["votes"], start=1):
        if "checkpoint" in vote:
            # What check_checkpoint enforces on an epoch block.
            assert height % epoch == 0
            assert addresses(vote["checkpoint"], keys) == set(snapshot.validators)
        kind, target = vote_of(vote, keys)
        try:
            snapshot = snapshot.apply(height, address(keys[vote["signer"]]), kind, target, epoch)
        except BlockInvalid as exc:
            exc.add_note(f"at block {height}")
            exc.block_height = height  # type: ignore[attr-defined]
            raise
    return len(case["votes"]), snapshot


def run_headers(case: dict, keys: dict[str, PrivateKey]) -> tuple[int, Snapshot]:
    """The same scenario as real sealed headers through validate_header."""
    epoch = case["epoch"] or DEFAULT_EPOCH
    params = PoAParams(CHAIN_ID, period=PERIOD, epoch=epoch)
    validators = [address(keys[s]) for s in case["signers"]]
    parent = genesis_header(validators)
    snapshot = Snapshot.genesis(validators)
    for height, vote in enumerate(case["votes"], start=1):
        kind, target = vote_of(vote, keys)
        if "checkpoint" in vote:
            checkpoint = tuple(sorted(addresses(vote["checkpoint"], keys)))
        else:
            checkpoint = snapshot.validators if height % epoch == 0 else ()
        header = child_header(
            parent,
            snapshot,
            keys[vote["signer"]],
            params,
            vote_kind=kind,
            vote_address=target,
            checkpoint=checkpoint,
        )
        assert header.height == height
        try:
            snapshot = validate_header(header, parent, snapshot, params, now=header.time)
        except BlockInvalid as exc:
            exc.block_height = height  # type: ignore[attr-defined]
            raise
        parent = header
    return len(case["votes"]), snapshot


def check_case(case: dict, order: str, runner) -> None:
    keys = letter_keys(case, order)
    where = context(case, order)
    if case["failure"] is None:
        _, snapshot = runner(case, keys)
        assert set(snapshot.validators) == addresses(case["results"], keys), where
        assert list(snapshot.validators) == sorted(snapshot.validators), where
    else:
        with pytest.raises(BlockInvalid) as info:
            runner(case, keys)
        assert info.value.reason == FAILURES[case["failure"]], where
        # Every failing scenario is built so that its last block is the offending one
        # (earlier blocks, including every batch before a "newbatch", import cleanly).
        assert info.value.block_height == len(case["votes"]), where


def test_vector_file_shape():
    assert [case["id"] for case in CASES] == list(range(24))
    assert sum(len(case["votes"]) for case in CASES) == 118
    assert {case["failure"] for case in CASES} == {None, *FAILURES}
    for case in CASES:
        assert (case["results"] is None) == (case["failure"] is not None)


@pytest.mark.parametrize("order", ORDERS)
def test_letter_orders_really_differ(order):
    case = {"signers": list("ABCDEF"), "results": None, "votes": [], "id": 99}
    keys = letter_keys(case, order)
    by_address = sorted("ABCDEF", key=lambda letter: address(keys[letter]))
    if order == "ascending":
        assert by_address == list("ABCDEF")
    elif order == "descending":
        assert by_address == list("FEDCBA")
    else:
        assert sorted(by_address) == list("ABCDEF")


@pytest.mark.parametrize(("case", "order"), PARAMS)
def test_voting_vector_snapshot(case, order):
    check_case(case, order, run_snapshots)


@pytest.mark.parametrize(("case", "order"), PARAMS)
def test_voting_vector_sealed_headers(case, order):
    check_case(case, order, run_headers)


@pytest.mark.parametrize(("case", "order"), [p for p in PARAMS if p.values[0]["failure"] is None])
def test_headers_and_snapshots_agree(case, order):
    """validate_header returns exactly the snapshot Snapshot.apply builds
    (validators, recents and pending votes)."""
    keys = letter_keys(case, order)
    assert run_headers(case, keys) == run_snapshots(case, keys), context(case, order)
