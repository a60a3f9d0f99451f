"""Renderers of the base payloads (none, coinbase, genesis) and the plain
locks (pay-to-address, multisig)."""

from __future__ import annotations

from typing import Any

from o2ocli.chainspec import ChainSpec
from o2ocli.core.locks import Multisig, PayToAddress
from o2ocli.core.payloads import Coinbase, GenesisAlloc, NoPayload

from .registry import lock_view, payload_view, text


@payload_view(NoPayload)
def none_json(spec: ChainSpec, payload: NoPayload) -> dict[str, Any]:
    return {"type": "none"}


@payload_view(Coinbase)
def coinbase_json(spec: ChainSpec, payload: Coinbase) -> dict[str, Any]:
    return {"type": "coinbase", "height": payload.height}


@payload_view(GenesisAlloc)
def genesis_json(spec: ChainSpec, payload: GenesisAlloc) -> dict[str, Any]:
    return {"type": "genesis", "note": text(payload.note)}


@lock_view(PayToAddress)
def address_lock_json(spec: ChainSpec, lock: PayToAddress) -> dict[str, Any]:
    return {"type": "address", "address": spec.address(lock.pubkey_hash)}


@lock_view(Multisig)
def multisig_lock_json(spec: ChainSpec, lock: Multisig) -> dict[str, Any]:
    return {"type": "multisig", "m": lock.m,
            "addresses": [spec.address(h) for h in lock.pubkey_hashes]}
