"""Renderers of the consent payloads (grant, revoke)."""

from __future__ import annotations

from typing import Any

from o2ocli.chainspec import ChainSpec
from o2ocli.core.payloads import ConsentGrant, ConsentRevoke
from o2ocli.crypto.hashes import hash160

from .registry import payload_view, text


@payload_view(ConsentGrant)
def grant_json(spec: ChainSpec, payload: ConsentGrant) -> dict[str, Any]:
    return {"type": "consent-grant", "user": spec.address(hash160(payload.pubkey)),
            "grantee": spec.address(payload.grantee), "scope": text(payload.scope),
            "until": payload.until}


@payload_view(ConsentRevoke)
def revoke_json(spec: ChainSpec, payload: ConsentRevoke) -> dict[str, Any]:
    return {"type": "consent-revoke", "grant": payload.grant.hex(),
            "user": spec.address(hash160(payload.pubkey))}
