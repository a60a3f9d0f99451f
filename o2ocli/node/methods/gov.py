"""RPC methods of governance: proposals, their tallies, and what a wallet may vote with.

The tally is computed here, when asked, from the indexed ballots
(:data:`~o2ocli.consensus.gov.GOV_BALLOT`: each voter's current ballot), so
a reorg that orphans votes changes it with nothing else to undo.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from o2ocli.consensus.errors import TxInvalid
from o2ocli.consensus.gov import (
    GOV_OUTPOINT,
    ProposalRecord,
    check_customer,
    check_vote_outpoint,
)
from o2ocli.core.payloads import WEIGHT_TOKENS, GovProposal, GovVote, KeySig
from o2ocli.core.tx import NATIVE_ASSET, Outpoint
from o2ocli.rpc import errors as E
from o2ocli.rpc.errors import RpcError

from .context import NodeContext
from .params import address_list, txid_arg
from .table import MethodTable

__all__ = ["TABLE", "Tally", "compute_tally", "proposal_state", "proposal_json",
           "getproposal", "listproposals", "listvoterights"]

TABLE = MethodTable()
STATES = ("open", "closed", "final")
_PLACEHOLDER_KEY = b"\x02" + bytes(32)


@dataclass(frozen=True, slots=True)
class Tally:
    """Weights per option (index 0 is option 1), and the ballots counted."""

    weights: tuple[int, ...]
    ballots: int

    @property
    def total(self) -> int:
        return sum(self.weights)

    @property
    def winner(self) -> int | None:
        """The option (from 1) with the most weight; None with no votes or a tie."""
        best = max(self.weights, default=0)
        if best == 0 or self.weights.count(best) > 1:
            return None
        return self.weights.index(best) + 1


def compute_tally(state: Any, proposal: bytes, options: int) -> Tally:
    """The tally of ``proposal`` from its indexed ballots (``state`` is a
    chainstate: :meth:`~o2ocli.storage.queries.ChainQueries.gov_ballots`).
    Only the first 9 bytes of each ballot are read (option u8, weight u64)."""
    weights = [0] * options
    ballots = 0
    for _, value in state.gov_ballots(proposal):
        option = value[0]
        if 1 <= option <= options:
            weights[option - 1] += int.from_bytes(value[1:9], "little")
            ballots += 1
    return Tally(tuple(weights), ballots)


def proposal_state(record: ProposalRecord, tip: int, finalized: int) -> str:
    """``open`` while votes can still be mined (tip below the end height),
    ``closed`` once the end height is reached, ``final`` once it is finalized."""
    if finalized >= record.end:
        return "final"
    return "open" if tip < record.end else "closed"


def _proposal(node: NodeContext, pid: bytes) -> tuple[ProposalRecord, GovProposal]:
    st = node.chain.state
    record = st.gov_proposal(pid)
    found = st.get_tx(pid)
    if record is None or found is None or not isinstance(found[0].payload, GovProposal):
        raise RpcError(E.NOT_FOUND, f"no proposal {pid.hex()} in the chain")
    return record, found[0].payload


def _asset_name(node: NodeContext, asset: bytes) -> tuple[str, int]:
    if asset == NATIVE_ASSET:
        return node.spec.native_symbol, node.spec.native_decimals
    token = node.chain.state.token(asset)
    return (token.symbol, token.decimals) if token is not None else (asset.hex(), 0)


def proposal_json(node: NodeContext, pid: bytes, with_tally: bool = True) -> dict[str, Any]:
    """A proposal with its state (and, by default, its tally)."""
    record, payload = _proposal(node, pid)
    symbol, decimals = _asset_name(node, record.asset)
    tokens = record.weight == WEIGHT_TOKENS
    out: dict[str, Any] = {
        "id": pid.hex(),
        "title": payload.title.decode("utf-8", "replace"),
        "text": payload.text.decode("utf-8", "replace"),
        "options": [{"option": i + 1, "text": o.decode("utf-8", "replace")}
                    for i, o in enumerate(payload.options)],
        "weight": "tokens" if tokens else "customers",
        "token": symbol if tokens else None,
        "decimals": decimals if tokens else 0,
        "asset": record.asset.hex() if tokens else None,
        "merchant": None if record.merchant is None else node.spec.address(record.merchant),
        "deposit": node.spec.format(record.deposit),
        "snapshot_height": record.snapshot,
        "end_height": record.end,
        "state": proposal_state(record, node.chain.height, node.chain.finalized_height),
    }
    if with_tally:
        tally = compute_tally(node.chain.state, pid, record.options)
        eligible = record.supply if tokens and record.supply else None
        out["tallies"] = [{"option": i + 1, "weight": w} for i, w in enumerate(tally.weights)]
        out["turnout"] = {
            "ballots": tally.ballots,
            "weight": tally.total,
            "eligible": eligible,
            "percent": round(100 * tally.total / eligible, 2) if eligible else None,
        }
        out["winner"] = tally.winner
    return out


@TABLE.method("getproposal")
def getproposal(node: NodeContext, proposal: Any) -> dict[str, Any]:
    """One proposal: its options, state, tallies, turnout and winner."""
    return proposal_json(node, txid_arg(proposal, "proposal id"))


@TABLE.method("listproposals")
def listproposals(node: NodeContext, state: Any = None) -> list[dict[str, Any]]:
    """Every proposal (optionally only those in ``state``), newest first, without tallies."""
    if state is not None and state not in STATES:
        raise RpcError(E.INVALID_PARAMS, "state must be 'open', 'closed' or 'final'")
    st = node.chain.state
    tip, finalized = node.chain.height, node.chain.finalized_height
    found = [(record.snapshot, pid) for pid, record in st.iter_gov_proposals()
             if state is None or proposal_state(record, tip, finalized) == state]
    return [proposal_json(node, pid, with_tally=False) for _, pid in sorted(found, reverse=True)]


@TABLE.method("listvoterights")
def listvoterights(node: NodeContext, proposal: Any, addresses: Any) -> dict[str, Any]:
    """What ``addresses`` may vote with on ``proposal``, checked with the
    consensus rules against the tip: coins of the proposal's asset they held
    at the snapshot (with the voter already counting each, if any), or their
    purchases from the merchant mined by the snapshot."""
    pid = txid_arg(proposal, "proposal id")
    owners = address_list(node, addresses)
    record, _ = _proposal(node, pid)
    st = node.chain.state
    params = node.spec.consensus_params
    owner_set = set(owners)
    coins: list[dict[str, Any]] = []
    purchases: list[dict[str, Any]] = []
    seen: set[bytes] = set()
    for pkh in owners:
        for height, txid in st.address_history(pkh):
            if height > record.snapshot or txid in seen:
                continue
            seen.add(txid)
            found = st.get_tx(txid)
            if found is None:
                continue
            tx = found[0]
            if record.weight == WEIGHT_TOKENS:
                for index, out in enumerate(tx.outputs):
                    op = txid + index.to_bytes(4, "little")
                    try:
                        units = check_vote_outpoint(op, record, owner_set, st)
                    except TxInvalid:
                        continue
                    holder = st.read((GOV_OUTPOINT.name, pid + op))
                    coins.append({"outpoint": str(Outpoint(txid, index)),
                                  "address": node.spec.address(out.lock.pubkey_hash),
                                  "units": units,
                                  "voter": None if holder is None else node.spec.address(holder)})
            else:
                # The wallet signs later: only the buyer's key hash is known here.
                vote = GovVote(pid, 1, (), txid, (KeySig(_PLACEHOLDER_KEY, bytes(64)),))
                for buyer in owners:
                    try:
                        check_customer(vote, record, params, st, voter=buyer)
                    except TxInvalid:
                        continue
                    purchases.append({"txid": txid.hex(), "buyer": node.spec.address(buyer)})
    return {"proposal": pid.hex(), "coins": coins, "purchases": purchases}
