"""Wycheproof ECDSA secp256k1/SHA-256 vectors against both backends.

Pipeline per case: digest = SHA-256(msg); strict DER decode (DerError => rejected); then the
backend's verify on the 64-byte r || s. The bitcoin file runs with low-S required (consensus
rules), the plain file with low-S not required.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pytest

from o2ocli.crypto import SECP256K1_HALF_N, DerError, der_decode_signature, get_backend, sha256

BITCOIN_FILE = "wycheproof_ecdsa_secp256k1_sha256_bitcoin_test.json"
PLAIN_FILE = "wycheproof_ecdsa_secp256k1_sha256_test.json"

# file -> (require_low_s, total, valid, invalid)
EXPECTED = {
    BITCOIN_FILE: (True, 463, 162, 301),
    PLAIN_FILE: (False, 476, 168, 308),
}


@dataclass
class Outcome:
    counts: Counter = field(default_factory=Counter)  # (result, accepted) -> n
    der_rejected: int = 0
    mismatches: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def run_file(data: dict, backend_name: str, require_low_s: bool) -> Outcome:
    backend = get_backend(backend_name)
    out = Outcome()
    for group in data["testGroups"]:
        pubkey = bytes.fromhex(group["publicKey"]["uncompressed"])
        for case in group["tests"]:
            digest = sha256(bytes.fromhex(case["msg"]))
            try:
                sig64 = der_decode_signature(bytes.fromhex(case["sig"]))
            except DerError:
                out.der_rejected += 1
                accepted = False
            else:
                accepted = backend.verify(pubkey, sig64, digest, require_low_s=require_low_s)
            result = case["result"]
            out.counts[(result, accepted)] += 1
            expected = {"valid": True, "invalid": False}.get(result)
            if result not in ("valid", "invalid", "acceptable"):
                out.mismatches.append(f"tcId {case['tcId']}: unknown result {result!r}")
            elif expected is not None and accepted != expected:
                out.mismatches.append(
                    f"tcId {case['tcId']} expected {result}, got "
                    f"{'accepted' if accepted else 'rejected'} "
                    f"({case['comment']}; flags={case['flags']})"
                )
    return out


@pytest.fixture(scope="module")
def wycheproof(load_vector) -> dict[str, dict]:
    return {name: load_vector(name) for name in EXPECTED}


@pytest.mark.parametrize("backend_name", ["coincurve", "ecdsa"])
@pytest.mark.parametrize("filename", [BITCOIN_FILE, PLAIN_FILE])
def test_wycheproof_file(wycheproof, filename, backend_name, capsys):
    data = wycheproof[filename]
    require_low_s, total, n_valid, n_invalid = EXPECTED[filename]
    out = run_file(data, backend_name, require_low_s)

    assert not out.mismatches, (
        f"{len(out.mismatches)} mismatches for {filename} / {backend_name}:\n"
        + "\n".join(out.mismatches)
    )
    assert data["numberOfTests"] == total
    assert out.total == total
    assert out.counts[("valid", True)] == n_valid
    assert out.counts[("invalid", False)] == n_invalid
    assert out.counts[("valid", False)] == 0
    assert out.counts[("invalid", True)] == 0
    n_acceptable = out.counts[("acceptable", True)] + out.counts[("acceptable", False)]
    assert n_acceptable == 0
    with capsys.disabled():
        print(
            f"\n[wycheproof] {filename} backend={backend_name} require_low_s={require_low_s}: "
            f"{out.total} cases, accepted valid={out.counts[('valid', True)]}, "
            f"rejected invalid={out.counts[('invalid', False)]} "
            f"(of which {out.der_rejected} by the DER parser), acceptable={n_acceptable}"
        )


def test_plain_file_under_consensus_rules(wycheproof):
    """With low-S required, exactly the 72 high-S 'valid' signatures of the plain file fail."""
    data = wycheproof[PLAIN_FILE]
    out = run_file(data, "coincurve", require_low_s=True)
    high_s_valid = 0
    for group in data["testGroups"]:
        for case in group["tests"]:
            if case["result"] != "valid":
                continue
            sig64 = der_decode_signature(bytes.fromhex(case["sig"]))
            if int.from_bytes(sig64[32:], "big") > SECP256K1_HALF_N:
                high_s_valid += 1
    assert high_s_valid == 72
    assert out.counts[("valid", False)] == 72
    assert out.counts[("valid", True)] == 168 - 72
    assert out.counts[("invalid", True)] == 0


def test_bitcoin_file_high_s_all_invalid(wycheproof):
    """Every strict-DER signature in the bitcoin file with s > n/2 is marked invalid.

    (37 strict-DER signatures have s > n/2, counting s >= n; the vectors README quotes 45,
    which also counts encodings a strict DER parser rejects.)
    """
    high_s = []
    malleability_case = None
    for group in wycheproof[BITCOIN_FILE]["testGroups"]:
        pubkey = bytes.fromhex(group["publicKey"]["uncompressed"])
        for case in group["tests"]:
            try:
                sig64 = der_decode_signature(bytes.fromhex(case["sig"]))
            except DerError:
                continue
            if int.from_bytes(sig64[32:], "big") > SECP256K1_HALF_N:
                high_s.append(case["result"])
            if "SignatureMalleabilityBitcoin" in case["flags"]:
                malleability_case = (pubkey, sig64, sha256(bytes.fromhex(case["msg"])))
    assert len(high_s) == 37
    assert set(high_s) == {"invalid"}
    # tcId 1: a correct signature whose only fault is its high S.
    assert malleability_case is not None
    for name in ("coincurve", "ecdsa"):
        backend = get_backend(name)
        assert not backend.verify(*malleability_case, require_low_s=True)
        assert backend.verify(*malleability_case, require_low_s=False)


def test_der_rejects_all_ber_and_missing_zero(wycheproof):
    seen = 0
    for data in wycheproof.values():
        for group in data["testGroups"]:
            for case in group["tests"]:
                if {"BerEncodedSignature", "MissingZero"} & set(case["flags"]):
                    seen += 1
                    with pytest.raises(DerError):
                        der_decode_signature(bytes.fromhex(case["sig"]))
    assert seen == 7 + 7 + 1
