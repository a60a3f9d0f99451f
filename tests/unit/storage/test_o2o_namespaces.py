"""The O2O key spaces: every namespace a consensus family declares has exactly
one prefix byte in the storage schema, no two namespaces share a prefix, and
no O2O prefix collides with another key space of the chain database."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from o2ocli.consensus import o2o, tokens
from o2ocli.consensus.state import FamilyRules
from o2ocli.storage import schema

CONSENSUS_DIR = Path(o2o.__file__).parent

OTHER_PREFIXES = {
    schema.BLOCK, schema.INDEX, schema.HEIGHT, schema.UTXO, schema.UNDO, schema.TXINDEX,
    schema.ADDR_UTXO, schema.ADDR_HISTORY, schema.META, schema.ASSET_UTXO, schema.O2O_UNDO,
    schema.FINALITY, schema.OWN_VOTE, schema.EVIDENCE, schema.SNAPSHOT, schema.PEER_ADDR,
    schema.PEER_BAN,
}


def test_every_declared_namespace_has_one_prefix_and_no_more():
    assert set(o2o.NAMESPACES) == set(schema.O2O_NAMESPACES)
    assert set(schema.O2O_WRITE_ORDER) == set(schema.O2O_NAMESPACES)


def test_prefixes_are_single_bytes_and_distinct():
    prefixes = list(schema.O2O_NAMESPACES.values())
    assert all(len(p) == 1 for p in prefixes)
    assert len(set(prefixes)) == len(prefixes)
    assert not set(prefixes) & OTHER_PREFIXES
    assert len(OTHER_PREFIXES) == 17  # all distinct too
    assert set(schema.O2O_PREFIXES) == {*prefixes, schema.ASSET_UTXO, schema.O2O_UNDO}


def test_o2o_key_maps_a_namespace_and_an_id():
    assert schema.o2o_key(("token", b"\x01" * 32)) == schema.TOKEN + b"\x01" * 32
    assert schema.o2o_key(("consent-revoked", b"g")) == schema.REVOKED + b"g"


def test_every_registered_rule_is_a_named_rule_with_a_docstring():
    defaults = FamilyRules()
    for tag, rules in o2o.RULES.items():
        for rule in (rules.check, rules.contextual):
            if rule in (defaults.check, defaults.contextual):
                continue
            assert rule.__name__.startswith("check_"), (tag, rule)
            assert (rule.__doc__ or "").startswith("Rule:"), (tag, rule.__name__)


def test_state_dependent_reasons_are_raised_literally_by_the_rules():
    source = "\n".join(p.read_text(encoding="utf-8") for p in CONSENSUS_DIR.glob("*.py")
                       if p.name != "o2o.py")
    literal = set(re.findall(r'TxInvalid\(\s*"([a-z0-9-]+)"', source))
    assert o2o.STATE_DEPENDENT_REASONS <= literal
    # and a text field's reasons are spelled out where the field is declared
    assert '"bad-token-name-length"' in inspect.getsource(tokens)
