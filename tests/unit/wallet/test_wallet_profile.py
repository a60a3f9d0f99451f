"""Profile commitments and selective disclosure (o2ocli.wallet.profile / .disclosure).

One mining devnet node in this process for the module (real LevelDB, real RPC
server and client, see ``wallet_node``); real wallets: alice (the user, with
the devnet funds), bob and carol (two merchants).  Every refusal a merchant
can meet is produced for real: each names the check that failed.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from wallet_node import MNEMONICS, PASS, SPEC, DevNode, dev_key, mined, new_wallet

from o2ocli.wallet.disclosure import (
    DisclosureRefused,
    choose_grants,
    make_disclosure,
    verify_disclosure,
)
from o2ocli.wallet.errors import O2OError
from o2ocli.wallet.keystore import is_encrypted
from o2ocli.wallet.profile import (
    STORE_NOTE,
    commit_profile,
    grant_profile_consent,
    load_store,
    parse_attributes,
    remember_commitment,
)
from o2ocli.wallet.records import grant_consent, revoke_consent
from o2ocli.wallet.wallet import create_wallet

ATTRS_A = {"phone": "+30 210 555 0100", "email": "alice@example.org", "city": "Athens",
           "age": "34"}


class Scene:
    """The chain and wallets the tests share (built once per module)."""

    def __init__(self, root: Path) -> None:
        self.node = DevNode(root / "node", validator=True)
        self.client = self.node.client
        self.alice = create_wallet(root / "w", "alice", SPEC, MNEMONICS["alice"], PASS,
                                   imported=[dev_key("funds")], scrypt_n=2**10)
        self.bob, _ = new_wallet(root / "w", "bob")
        self.carol, _ = new_wallet(root / "w", "carol")
        self.key = self.alice.unlock(PASS)
        self.docs: dict[str, dict[str, Any]] = {}

    def commit(self, attrs: dict[str, str]) -> bytes:
        tx, plan, commitment = commit_profile(self.alice, self.client, self.key, attrs)
        remember_commitment(self.alice, PASS, commitment)
        mined(self.node, self.alice, (tx, plan))
        return commitment.txid

    def grant(self, to: Any, scope: str, until: int | None = None,
              profile: bytes | None = None) -> str:
        until = until or self.height() + 1000
        if profile is None:
            built = grant_consent(self.alice, self.client, self.key, to.primary_pkh(), scope,
                                  until)
        else:
            built = grant_profile_consent(self.alice, self.client, self.key, to.primary_pkh(),
                                          scope, until, profile)
        return mined(self.node, self.alice, built)

    def height(self) -> int:
        return self.node.call("getblockcount")

    def disclose(self, to: Any, keys: list[str]) -> dict[str, Any]:
        store = load_store(self.alice, PASS)
        current = store[-1]
        grants = choose_grants(self.client, SPEC, self.alice.primary_pkh(), to.primary_pkh(),
                               keys, current.txid)
        return make_disclosure(self.alice, self.key, current, to.primary_pkh(), grants)

    def verify(self, doc: dict[str, Any], by: Any = None) -> dict[str, str]:
        return verify_disclosure(doc, (by or self.bob).primary_pkh(), self.client, SPEC)

    def close(self) -> None:
        for w in (self.carol, self.bob, self.alice):
            w.close()
        self.node.stop()


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    """Commitment A of alice; grants to bob: phone (plain), email (naming A),
    city (ends with the block after it), age (revoked after its disclosure); phone
    to carol.  Disclosures are made while every grant holds, then age is
    revoked and a block passes city's end."""
    s = Scene(tmp_path_factory.mktemp("profile"))
    s.a = s.commit(ATTRS_A)
    s.grant(s.bob, "phone")
    s.grant(s.bob, "email", profile=s.a)
    s.grant(s.carol, "phone")
    age = s.grant(s.bob, "age")
    # Mined at height+1, it holds for one more block: the revocation's ends it.
    s.grant(s.bob, "city", until=s.height() + 2)
    s.docs["bob"] = s.disclose(s.bob, ["phone", "email"])
    s.docs["city"] = s.disclose(s.bob, ["city"])
    s.docs["age"] = s.disclose(s.bob, ["age"])
    s.docs["carol"] = s.disclose(s.carol, ["phone"])
    mined(s.node, s.alice, revoke_consent(s.alice, s.client, s.key, bytes.fromhex(age)))
    yield s
    s.close()


def refused(scene: Scene, doc: dict[str, Any], by: Any = None) -> DisclosureRefused:
    with pytest.raises(DisclosureRefused) as info:
        scene.verify(doc, by)
    return info.value


def test_attributes_are_parsed_and_checked():
    assert parse_attributes(["a=1", "b.c=x=y"], "# note\n\nd_e= spaced \n") == {
        "a": "1", "b.c": "x=y", "d_e": " spaced "}
    for items, fragment in [(["noequals"], "KEY=VALUE"), (["Phone=1"], "attribute key"),
                            (["a=1", "a=2"], "twice"), ([], "at least one"),
                            (["a=" + "x" * 1025], "more than 1024")]:
        with pytest.raises(O2OError, match=fragment):
            parse_attributes(items)


def test_the_store_is_encrypted_and_the_chain_holds_only_the_root(scene):
    blob = scene.alice.get_note(STORE_NOTE)
    assert is_encrypted(blob) and "Athens" not in json.dumps(blob)
    (commitment,) = load_store(scene.alice, PASS)
    salts = {salt for salt, _ in commitment.attributes.values()}
    assert commitment.txid == scene.a and len(salts) == 4
    raw = scene.node.call("getrawtx", scene.a.hex())
    assert b"Athens".hex() not in raw and commitment.root.hex() in raw
    info = scene.node.call("getprofile", SPEC.address(scene.alice.primary_pkh()))
    assert (info["txid"], info["root"], info["leaves"], info["current"]) == (
        scene.a.hex(), commitment.root.hex(), 4, True)


def test_a_disclosure_verifies_for_its_recipient(scene):
    doc = scene.docs["bob"]
    assert sorted(a["key"] for a in doc["attributes"]) == ["email", "phone"]
    assert "Athens" not in json.dumps(doc)  # only the chosen attributes
    assert scene.verify(doc) == {"phone": ATTRS_A["phone"], "email": ATTRS_A["email"]}


def test_a_tampered_value_is_refused_by_its_proof(scene):
    doc = copy.deepcopy(scene.docs["bob"])
    doc["attributes"][0]["value"] += "1"
    err = refused(scene, doc)
    assert err.check == "proof" and repr(doc["attributes"][0]["key"]) in err.message


def test_swapped_salts_are_refused_by_the_proof(scene):
    doc = copy.deepcopy(scene.docs["bob"])
    first, second = doc["attributes"]
    first["salt"], second["salt"] = second["salt"], first["salt"]
    assert refused(scene, doc).check == "proof"


def test_an_expired_grant_is_refused(scene):
    err = refused(scene, scene.docs["city"])
    assert err.check == "grant" and "expired" in err.message


def test_a_revoked_grant_is_refused(scene):
    err = refused(scene, scene.docs["age"])
    assert err.check == "grant" and "revoked" in err.message


def test_a_file_addressed_to_another_merchant_is_refused(scene):
    doc = scene.docs["carol"]
    assert scene.verify(doc, scene.carol) == {"phone": ATTRS_A["phone"]}
    err = refused(scene, doc)  # bob holds carol's file
    assert err.check == "recipient" and SPEC.address(scene.carol.primary_pkh()) in err.message
    readdressed = dict(doc, to=SPEC.address(scene.bob.primary_pkh()))  # bob rewrites it
    err = refused(scene, readdressed)
    assert err.check in ("grant", "signature")  # carol's grant is not bob's, nor the signature
    grant_swap = copy.deepcopy(readdressed)  # and with bob's own phone grant: the signature
    grant_swap["attributes"][0]["grant"] = scene.docs["bob"]["attributes"][
        [a["key"] for a in scene.docs["bob"]["attributes"]].index("phone")]["grant"]
    assert refused(scene, grant_swap).check == "signature"


def test_malformed_files_are_refused_as_format(scene):
    doc = scene.docs["bob"]
    for broken in ({}, dict(doc, version=2), dict(doc, attributes=[]),
                   dict(doc, commitment="zz"), dict(doc, signature=doc["signature"][:-2])):
        assert refused(scene, broken).check == "format"
    assert refused(scene, dict(doc, chain="elsewhere")).check == "chain"


def test_grants_must_cover_each_key_before_disclosing(scene):
    with pytest.raises(O2OError, match="no active grant of 'city'"):
        scene.disclose(scene.bob, ["city"])  # expired now
    with pytest.raises(O2OError, match="not in the current commitment"):
        make_disclosure(scene.alice, scene.key, load_store(scene.alice, PASS)[-1],
                        scene.bob.primary_pkh(), {"shoe-size": "00" * 32})


def test_a_new_commitment_supersedes_earlier_disclosures(scene):
    old = scene.docs["bob"]
    b = scene.commit({"phone": "+30 210 555 0199", "email": "alice@example.net"})
    history = scene.node.call("listprofilehistory", SPEC.address(scene.alice.primary_pkh()))
    assert [(h["txid"], h["current"]) for h in history] == [(scene.a.hex(), False),
                                                            (b.hex(), True)]
    err = refused(scene, old)
    assert err.check == "commitment" and f"superseded by the user's newer commitment {b.hex()}" \
        in err.message

    # The grant naming A does not cover B: disclosing email needs a new grant.
    with pytest.raises(O2OError, match="no active grant of 'email'"):
        scene.disclose(scene.bob, ["email"])
    new = scene.disclose(scene.bob, ["phone"])  # the plain phone grant still holds
    assert scene.verify(new) == {"phone": "+30 210 555 0199"}

    # A proof for another root: A's phone (value, salt, proof) under B.
    mixed = copy.deepcopy(new)
    old_phone = next(a for a in old["attributes"] if a["key"] == "phone")
    mixed["attributes"][0] = dict(old_phone, grant=new["attributes"][0]["grant"])
    err = refused(scene, mixed)
    assert err.check == "proof" and b.hex() in err.message

    # A grant naming A, presented with B, is refused as such.
    email_grant = next(a["grant"] for a in old["attributes"] if a["key"] == "email")
    scene.grant(scene.bob, "email", profile=b)
    fresh = scene.disclose(scene.bob, ["email"])
    fresh["attributes"][0]["grant"] = email_grant
    err = refused(scene, fresh)
    assert err.check == "grant" and f"covers commitment {scene.a.hex()}" in err.message


def test_rpc_refuses_unknown_commitments_and_bad_params(scene):
    from o2ocli.rpc import errors as E
    from o2ocli.rpc.errors import RpcError

    for method, arg, code in [
        ("getprofile", SPEC.address(scene.carol.primary_pkh()), E.NOT_FOUND),
        ("getprofilecommitment", "00" * 32, E.NOT_FOUND),
        ("getprofilecommitment", "zz", E.INVALID_PARAMS),
        ("getprofile", "not-an-address", E.INVALID_ADDRESS),
        ("listprofilehistory", 7, E.INVALID_ADDRESS),
    ]:
        with pytest.raises(RpcError) as info:
            scene.node.call(method, arg)
        assert info.value.code == code, (method, arg)
    assert scene.node.call("listprofilehistory", SPEC.address(scene.carol.primary_pkh())) == []
    rendered = scene.node.call("gettx", scene.a.hex())
    assert rendered["payload"]["type"] == "profile-commit"
