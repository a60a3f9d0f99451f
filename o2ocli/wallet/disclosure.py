"""Selective disclosure of profile attributes: the file a user gives one merchant, and its check.

A disclosure (format ``o2ocli-profile-disclosure``, version 1; documented in
``docs/protocol.rst``) holds only the attributes the user chose, each with
its salt, its leaf index and inclusion proof in the user's committed tree,
and the txid of the consent grant that lets the recipient use it; plus the
committing txid, the recipient's address, and a signature by the committing
key over :func:`~o2ocli.core.payloads.disclosure_sig_digest` (so a file given
to one merchant is worth nothing to another).

:func:`verify_disclosure` is the recipient's side.  It runs the checks in a
fixed order and stops at the first that fails, naming it
(:class:`DisclosureRefused`): ``format``, ``chain``, ``recipient``,
``commitment`` (known, the user's, still current), ``proof`` (each attribute
leads to the on-chain root), ``grant`` (each: by the user, to the recipient,
for the attribute's key, neither expired nor revoked, and naming this
commitment if it names one), ``signature``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from o2ocli.chainspec import ChainSpec
from o2ocli.core.payloads import disclosure_sig_digest
from o2ocli.core.profiletree import SALT_SIZE, inclusion_proof, leaf_hash, root_from_proof
from o2ocli.crypto.address import AddressError
from o2ocli.crypto.keys import InvalidKeyError, PublicKey
from o2ocli.rpc import errors as E
from o2ocli.rpc.errors import RpcError

from .errors import O2OError
from .profile import Commitment, check_key
from .wallet import Unlocked, Wallet

__all__ = [
    "FORMAT",
    "VERSION",
    "DisclosureRefused",
    "check_format",
    "choose_grants",
    "make_disclosure",
    "verify_disclosure",
]

FORMAT = "o2ocli-profile-disclosure"
VERSION = 1
_HEX32 = re.compile(r"[0-9a-f]{64}")
_MAX_PROOF = 64


class DisclosureRefused(Exception):
    """A disclosure failed ``check``; ``message`` says how."""

    def __init__(self, check: str, message: str) -> None:
        super().__init__(f"{check}: {message}")
        self.check = check
        self.message = message


def choose_grants(client: Any, spec: ChainSpec, user: bytes, recipient: bytes,
                  keys: Sequence[str], commitment: bytes) -> dict[str, str]:
    """For each key, the txid of an active grant by ``user`` to ``recipient`` of
    that scope (one naming ``commitment`` first, else one naming none)."""
    grants = client.call("listconsents", spec.address(user), "user")
    to = spec.address(recipient)
    chosen = {}
    for key in keys:
        usable = [g for g in grants if g["grantee"] == to and g["scope"] == key
                  and g["status"] == "active" and g.get("profile") in (None, commitment.hex())]
        if not usable:
            raise O2OError(f"no active grant of {key!r} to {to}: run "
                           f"'o2ocli consent grant {to} {key}' first")
        usable.sort(key=lambda g: (g.get("profile") is None, -g["height"]))
        chosen[key] = usable[0]["txid"]
    return chosen


def make_disclosure(
    wallet: Wallet, unlocked: Unlocked, commitment: Commitment, recipient: bytes,
    grants: Mapping[str, str],
) -> dict[str, Any]:
    """The disclosure of the keys of ``grants`` (key → grant txid) from
    ``commitment`` to ``recipient``, signed by the wallet's primary key."""
    spec = wallet.spec
    order = commitment.keys
    leaves = commitment.leaves()
    items, signed = [], []
    for key in grants:
        raw = check_key(key)
        if raw not in commitment.attributes:
            raise O2OError(f"attribute {key!r} is not in the current commitment "
                           f"(it has: {', '.join(k.decode() for k in order)})")
        salt, value = commitment.attributes[raw]
        index = order.index(raw)
        items.append({"key": key, "value": value.decode(), "salt": salt.hex(), "index": index,
                      "proof": [h.hex() for h in inclusion_proof(leaves, index)],
                      "grant": grants[key]})
        signed.append((raw, leaves[index], bytes.fromhex(grants[key])))
    user = wallet.primary_pkh()
    digest = disclosure_sig_digest(spec.chain_id, recipient, commitment.txid, signed)
    return {"format": FORMAT, "version": VERSION, "chain": spec.chain_id,
            "user": spec.address(user), "to": spec.address(recipient),
            "commitment": commitment.txid.hex(), "leaves": len(order), "attributes": items,
            "signature": wallet.sign_digest(user, digest, unlocked)[1].hex()}


def _hex(value: Any, what: str, size: int) -> bytes:
    if not isinstance(value, str) or len(value) != 2 * size or not re.fullmatch(
            r"[0-9a-f]*", value):
        raise DisclosureRefused("format", f"{what} must be {size} bytes of lowercase hex")
    return bytes.fromhex(value)


def check_format(doc: Any, spec: ChainSpec) -> tuple[bytes, bytes, bytes, list[dict[str, Any]],
                                                     bytes]:
    """(user, recipient, commitment, attributes, signature) of a version-1 file
    for ``spec``'s chain, or :class:`DisclosureRefused` (``format``, ``chain``);
    needs no node."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise DisclosureRefused("format", f"not an {FORMAT} file")
    if doc.get("version") != VERSION:
        raise DisclosureRefused("format", f"unsupported version {doc.get('version')!r} "
                                          f"(this o2ocli reads version {VERSION})")
    if doc.get("chain") != spec.chain_id:
        raise DisclosureRefused("chain", f"the file is for chain {doc.get('chain')!r}, "
                                         f"not {spec.chain_id!r}")
    try:
        user = spec.decode_address(str(doc.get("user")))
        recipient = spec.decode_address(str(doc.get("to")))
    except AddressError as exc:
        raise DisclosureRefused("format", f"bad address: {exc}") from None
    commitment = _hex(doc.get("commitment"), "commitment", 32)
    attributes = doc.get("attributes")
    if not isinstance(attributes, list) or not attributes:
        raise DisclosureRefused("format", "no attributes")
    seen = set()
    for item in attributes:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str) or not isinstance(
                item.get("value"), str):
            raise DisclosureRefused("format", "each attribute needs a key and a value")
        if item["key"] in seen:
            raise DisclosureRefused("format", f"attribute {item['key']!r} appears twice")
        seen.add(item["key"])
        _hex(item.get("salt"), f"salt of {item['key']!r}", SALT_SIZE)
        _hex(item.get("grant"), f"grant of {item['key']!r}", 32)
        proof = item.get("proof")
        if (not isinstance(proof, list) or len(proof) > _MAX_PROOF
                or not isinstance(item.get("index"), int) or isinstance(item["index"], bool)):
            raise DisclosureRefused("format", f"bad proof of {item['key']!r}")
        for h in proof:
            _hex(h, f"proof of {item['key']!r}", 32)
    return user, recipient, commitment, attributes, _hex(doc.get("signature"), "signature", 64)


def _commitment(client: Any, txid: bytes) -> dict[str, Any]:
    try:
        return client.call("getprofilecommitment", txid.hex())
    except RpcError as exc:
        if exc.code == E.NOT_FOUND:
            raise DisclosureRefused("commitment", f"no profile commitment {txid.hex()} in the "
                                                  "chain") from None
        raise


def verify_disclosure(doc: Any, recipient: bytes, client: Any, spec: ChainSpec) -> dict[str, str]:
    """Check a disclosure received by ``recipient`` against the node's chain;
    the disclosed attributes (key → value) if every check holds, else
    :class:`DisclosureRefused` naming the first check that failed."""
    user, to, txid, attributes, signature = check_format(doc, spec)
    if to != recipient:
        raise DisclosureRefused("recipient", f"the file is addressed to {spec.address(to)}, "
                                             f"not to this wallet ({spec.address(recipient)})")
    record = _commitment(client, txid)
    if record["user"] != spec.address(user):
        raise DisclosureRefused("commitment", f"commitment {txid.hex()} was made by "
                                              f"{record['user']}, not {spec.address(user)}")
    if not record["current"]:
        raise DisclosureRefused("commitment", f"commitment {txid.hex()} was superseded by the "
                                              f"user's newer commitment {record['superseded_by']}")
    root, count = bytes.fromhex(record["root"]), record["leaves"]
    signed = []
    for item in attributes:
        key = item["key"]
        leaf = leaf_hash(key.encode(), bytes.fromhex(item["salt"]), item["value"].encode())
        proof = [bytes.fromhex(h) for h in item["proof"]]
        if root_from_proof(leaf, item["index"], count, proof) != root:
            raise DisclosureRefused("proof", f"attribute {key!r} (with its salt and proof) does "
                                             f"not lead to the root of commitment {txid.hex()}")
        signed.append((key.encode(), leaf, bytes.fromhex(item["grant"])))
    grants = {g["txid"]: g for g in client.call("listconsents", spec.address(user), "user")}
    me = spec.address(recipient)
    for item in attributes:
        key, grant_txid = item["key"], item["grant"]
        grant = grants.get(grant_txid)
        if grant is None:
            raise DisclosureRefused("grant", f"{key!r}: no consent grant {grant_txid} by "
                                             f"{spec.address(user)}")
        if grant["grantee"] != me:
            raise DisclosureRefused("grant", f"{key!r}: grant {grant_txid} is to "
                                             f"{grant['grantee']}, not to {me}")
        if grant["scope"] != key:
            raise DisclosureRefused("grant", f"{key!r}: grant {grant_txid} covers scope "
                                             f"{grant['scope']!r}, not {key!r}")
        if grant["status"] == "revoked":
            raise DisclosureRefused("grant", f"{key!r}: grant {grant_txid} was revoked "
                                             f"({grant['revoked_by']})")
        if grant["status"] != "active":
            raise DisclosureRefused("grant", f"{key!r}: grant {grant_txid} expired at height "
                                             f"{grant['until']}")
        if grant.get("profile") not in (None, txid.hex()):
            raise DisclosureRefused("grant", f"{key!r}: grant {grant_txid} covers commitment "
                                             f"{grant['profile']}, not {txid.hex()}")
    digest = disclosure_sig_digest(spec.chain_id, recipient, txid, signed)
    try:
        good = PublicKey(bytes.fromhex(record["pubkey"])).verify(signature, digest)
    except InvalidKeyError:
        good = False
    if not good:
        raise DisclosureRefused("signature", "the signature does not bind this file to "
                                             f"{me} under the key of commitment {txid.hex()}")
    return {item["key"]: item["value"] for item in attributes}
