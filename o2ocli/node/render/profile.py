"""Renderers of the profile payloads (commitment, consent grant naming a commitment)."""

from __future__ import annotations

from typing import Any

from o2ocli.chainspec import ChainSpec
from o2ocli.core.payloads import ConsentGrantProfile, ProfileCommit
from o2ocli.crypto.hashes import hash160

from .registry import payload_view, text


@payload_view(ProfileCommit)
def commit_json(spec: ChainSpec, payload: ProfileCommit) -> dict[str, Any]:
    return {"type": "profile-commit", "user": spec.address(hash160(payload.pubkey)),
            "root": payload.root.hex(), "leaves": payload.leaves}


@payload_view(ConsentGrantProfile)
def grant_profile_json(spec: ChainSpec, payload: ConsentGrantProfile) -> dict[str, Any]:
    return {"type": "consent-grant", "user": spec.address(hash160(payload.pubkey)),
            "grantee": spec.address(payload.grantee), "scope": text(payload.scope),
            "until": payload.until, "profile": payload.profile.hex()}
