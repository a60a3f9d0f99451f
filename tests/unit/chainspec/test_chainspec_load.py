"""Chain specs: the built-in specs, field validation and amount parsing."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from o2ocli.amounts import format_amount, parse_amount
from o2ocli.chainspec import (
    ChainSpec,
    SpecError,
    builtin_spec_path,
    load_spec,
    spec_from_dict,
)
from o2ocli.consensus.params import MAX_AMOUNT
from o2ocli.core.block import VOTE_NONE
from o2ocli.core.locks import PayToAddress
from o2ocli.core.payloads import GenesisAlloc
from o2ocli.core.tx import NATIVE_ASSET, TxOut
from o2ocli.crypto.address import AddressError, decode_wif, encode_address
from o2ocli.crypto.keys import PrivateKey
from o2ocli.testing.chaingen import deterministic_key


def load_devnet_dict() -> dict[str, Any]:
    path = builtin_spec_path("devnet")
    assert path is not None
    return json.loads(path.read_text(encoding="utf-8"))


def load_testnet_dict() -> dict[str, Any]:
    path = builtin_spec_path("testnet")
    assert path is not None
    return json.loads(path.read_text(encoding="utf-8"))


def key_of(spec: ChainSpec, wif: str) -> PrivateKey:
    secret, compressed = decode_wif(wif, version=spec.wif_version)
    assert compressed
    return PrivateKey(secret)


# ------------------------------------------------------------- built-in specs
@pytest.mark.parametrize("name", ["devnet", "testnet"])
def test_builtin_spec_loads_with_its_file_values(name):
    spec = load_spec(name)
    data = load_devnet_dict() if name == "devnet" else load_testnet_dict()
    assert spec.name == name
    assert spec.chain_id == data["chain_id"]
    assert spec.network_magic == bytes.fromhex(data["network_magic"])
    assert spec.address_version == data["address_version"]
    assert spec.native_decimals == 8
    assert spec.genesis_time == data["genesis"]["time"]
    assert spec.period == data["consensus"]["period"]
    assert spec.epoch == data["consensus"]["epoch"]
    assert spec.min_relay_fee == 1_000  # "0.00001" with 8 decimals
    assert spec.token_issue_fee == 10 * 10**8
    assert spec.rpc_port == data["network"]["rpc_port"]
    assert spec.source == str(builtin_spec_path(name))
    assert [spec.address(v) for v in spec.validators] == sorted(
        data["validators"], key=lambda a: spec.decode_address(a)
    )


def test_genesis_hash_is_deterministic_and_differs_between_networks():
    devnet_a = load_spec("devnet").genesis_block()
    devnet_b = load_spec("devnet").genesis_block()
    testnet = load_spec("testnet").genesis_block()
    assert devnet_a.hash == devnet_b.hash
    assert devnet_a.to_bytes() == devnet_b.to_bytes()
    assert devnet_a.hash != testnet.hash
    assert testnet.hash == load_spec("testnet").genesis_block().hash


def test_genesis_header_checkpoint_lists_the_sorted_validators():
    spec = load_spec("testnet")
    declared = [spec.decode_address(a) for a in load_testnet_dict()["validators"]]
    assert declared != sorted(declared)  # the file lists them unsorted: sorting matters
    header = spec.genesis_block().header
    assert header.checkpoint == tuple(sorted(declared)) == spec.validators
    assert header.height == 0
    assert header.prev_hash == bytes(32)
    assert header.time == spec.genesis_time
    assert header.difficulty == 0
    assert header.vote_kind == VOTE_NONE


@pytest.mark.parametrize("name", ["devnet", "testnet"])
def test_allocations_are_the_genesis_outputs(name):
    spec = load_spec(name)
    block = spec.genesis_block()
    outputs = [out for tx in block.txs for out in tx.outputs]
    assert outputs == [
        TxOut(NATIVE_ASSET, amount, PayToAddress(pkh)) for pkh, amount in spec.allocations
    ]
    data = load_devnet_dict() if name == "devnet" else load_testnet_dict()
    first = data["genesis"]["allocations"][0]
    assert spec.allocations == ((spec.decode_address(first["address"]), 100_000_000 * 10**8),)
    assert all(not tx.inputs and isinstance(tx.payload, GenesisAlloc) for tx in block.txs)


def test_many_allocations_are_split_into_txs_of_at_most_1000_outputs():
    data = load_devnet_dict()
    funds = data["genesis"]["allocations"][0]["address"]
    data["genesis"]["allocations"] = [
        {"address": funds, "amount": str(i + 1)} for i in range(1001)
    ]
    spec = spec_from_dict(data)
    block = spec.genesis_block()
    assert [len(tx.outputs) for tx in block.txs] == [1000, 1]
    assert [out.amount for tx in block.txs for out in tx.outputs] == [
        (i + 1) * 10**8 for i in range(1001)
    ]
    assert block.txs[0].txid != block.txs[1].txid


def test_genesis_depends_on_chain_id():
    data = load_devnet_dict()
    base = spec_from_dict(data).genesis_block().hash
    data["chain_id"] = "o2o-devnet-2"
    assert spec_from_dict(data).genesis_block().hash != base


@pytest.mark.parametrize(
    ("name", "version"), [("devnet", (90 + 0x80) % 256), ("testnet", (127 + 0x80) % 256)]
)
def test_wif_version_and_dev_keys(name, version):
    spec = load_spec(name)
    assert spec.wif_version == version
    keys = {role: key_of(spec, wif) for role, wif in spec.dev_keys.items()}
    funds = keys.pop("funds")
    assert funds.public_key.hash160() == spec.allocations[0][0]
    assert sorted(k.public_key.hash160() for k in keys.values()) == list(spec.validators)
    # The keys are bound to this network's WIF version.
    other = (version + 1) % 256
    with pytest.raises(AddressError):
        decode_wif(spec.dev_keys["funds"], version=other)


@pytest.mark.parametrize(("address_version", "wif_version"), [(0, 0x80), (0x6F, 0xEF), (200, 72)])
def test_wif_version_wraps_mod_256(address_version, wif_version):
    data = load_devnet_dict()
    data["address_version"] = address_version
    key = deterministic_key(b"wif", 0)
    addr = encode_address(key.public_key.hash160(), address_version)
    data["validators"] = [addr]
    data["genesis"]["allocations"] = [{"address": addr, "amount": "1"}]
    del data["dev_keys"]
    assert spec_from_dict(data).wif_version == wif_version


# --------------------------------------------------------------- bad fields
TESTNET_ADDRESS = "tKQKksrLWEN9eWbACM8DXwFW2jD8edU4bo"
TESTNET_WIF = "emHtVaG6DxvHunPky9sZnVRcXn1cEwxfjyeBgy1xRgZMCwPvCmbn"


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        node: Any = data
        parts = path.split(".")
        for part in parts[:-1]:
            node = node[int(part)] if isinstance(node, list) else node[part]
        last = parts[-1]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return edit


def _delete(path: str) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        node: Any = data
        parts = path.split(".")
        for part in parts[:-1]:
            node = node[int(part)] if isinstance(node, list) else node[part]
        del node[parts[-1]]

    return edit


def _duplicate_validator(data: dict[str, Any]) -> None:
    data["validators"] = data["validators"] * 2


def _too_much_supply(data: dict[str, Any]) -> None:
    addr = data["genesis"]["allocations"][0]["address"]
    half = format_amount(MAX_AMOUNT // 2 + 1, 8)
    data["genesis"]["allocations"] = [{"address": addr, "amount": half}] * 2


BROKEN = [
    ("name", _delete("name")),
    ("chain_id", _set("chain_id", "")),
    ("chain_id", _set("chain_id", "x" * 65)),
    ("chain_id", _set("chain_id", "o2o-dévnet")),
    ("network_magic", _set("network_magic", "f0d2a1")),
    ("network_magic", _set("network_magic", "zzzzzzzz")),
    ("network_magic", _set("network_magic", 4040)),
    ("address_version", _set("address_version", 256)),
    ("address_version", _set("address_version", -1)),
    ("address_version", _set("address_version", True)),
    ("native.symbol", _set("native.symbol", "O 2")),
    ("native.decimals", _set("native.decimals", 19)),
    ("native.decimals", _set("native.decimals", "8")),
    ("genesis.time", _set("genesis.time", -1)),
    ("genesis.allocations", _set("genesis.allocations", {})),
    ("genesis.allocations[0]", _set("genesis.allocations.0", "d...")),
    ("genesis.allocations[0].address", _set("genesis.allocations.0.address", TESTNET_ADDRESS)),
    ("genesis.allocations[0].address", _set("genesis.allocations.0.address", "dXXX")),
    ("genesis.allocations[0].address", _set("genesis.allocations.0.address", 5)),
    ("genesis.allocations[0].amount", _set("genesis.allocations.0.amount", "1.5e3")),
    ("genesis.allocations[0].amount", _set("genesis.allocations.0.amount", "-1")),
    ("genesis.allocations[0].amount", _set("genesis.allocations.0.amount", "0.000000001")),
    ("genesis.allocations[0].amount", _set("genesis.allocations.0.amount", 1.5)),
    ("genesis.allocations[0].amount", _delete("genesis.allocations.0.amount")),
    ("genesis.allocations", _too_much_supply),
    ("validators", _set("validators", [])),
    ("validators", _duplicate_validator),
    ("validators", _set("validators", "dMiatbUzxbUVJRwFTgaw39EBNPFFRogxxB")),
    ("validators[0]", _set("validators", [TESTNET_ADDRESS])),
    ("validators[0]", _set("validators", [7])),
    ("consensus.period", _set("consensus.period", -1)),
    ("consensus.period", _set("consensus.period", "2")),
    ("consensus.period", _set("consensus.period", 3601)),
    ("consensus.epoch", _set("consensus.epoch", 0)),
    ("consensus.max_future", _set("consensus.max_future", 3601)),
    ("limits.max_block_size", _set("limits.max_block_size", 999)),
    ("limits.max_tx_size", _set("limits.max_tx_size", 199)),
    ("limits.max_block_txs", _set("limits.max_block_txs", 0)),
    ("fees.min_relay_fee", _delete("fees.min_relay_fee")),
    ("fees.min_relay_fee", _set("fees.min_relay_fee", "0")),
    ("fees.token_issue_fee", _set("fees.token_issue_fee", 10)),
    ("o2o.review_window", _set("o2o.review_window", 0)),
    ("o2o.min_purchase", _set("o2o.min_purchase", "0.000000001")),
    ("network.p2p_port", _set("network.p2p_port", 0)),
    ("network.rpc_port", _set("network.rpc_port", 70000)),
    ("network.bootstrap", _set("network.bootstrap", [1234])),
    ("dev_keys.validator", _set("dev_keys.validator", "not-a-wif")),
    ("dev_keys.validator", _set("dev_keys.validator", TESTNET_WIF)),
    ("dev_keys.validator", _set("dev_keys.validator", None)),
]


@pytest.mark.parametrize(
    ("field", "edit"), BROKEN, ids=[f"{i}-{f}" for i, (f, _) in enumerate(BROKEN)]
)
def test_broken_spec_names_the_field(field, edit):
    data = load_devnet_dict()
    spec_from_dict(copy.deepcopy(data))  # the starting point is valid
    edit(data)
    with pytest.raises(SpecError) as info:
        spec_from_dict(data)
    assert f"'{field}'" in str(info.value), str(info.value)


@pytest.mark.parametrize("value", [[], "devnet", 3, None, [load_devnet_dict()]])
def test_spec_must_be_a_json_object(value):
    with pytest.raises(SpecError, match="JSON object"):
        spec_from_dict(value)


def test_optional_fields_take_their_defaults():
    data = load_devnet_dict()
    del data["consensus"]["max_future"]
    del data["o2o"]
    del data["network"]["bootstrap"]
    del data["dev_keys"]
    spec = spec_from_dict(data)
    assert spec.max_future == 15
    assert spec.review_window == 100_000
    assert spec.min_purchase == 10**6
    assert spec.bootstrap == ()
    assert spec.dev_keys == {}


# ---------------------------------------------------------------- load_spec
def test_load_spec_unknown_name():
    with pytest.raises(SpecError, match="not found"):
        load_spec("no-such-net")


def test_load_spec_missing_path(tmp_path):
    with pytest.raises(SpecError, match="not found"):
        load_spec(tmp_path / "missing.json")
    with pytest.raises(SpecError, match="not found"):
        load_spec(str(tmp_path / "nowhere" / "spec"))


def test_load_spec_invalid_json(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"name": "x",', encoding="utf-8")
    with pytest.raises(SpecError, match="not valid JSON"):
        load_spec(path)


def test_load_spec_non_object_json(tmp_path):
    path = tmp_path / "list.json"
    path.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(SpecError, match="JSON object"):
        load_spec(path)


def test_load_spec_bad_field_in_file(tmp_path):
    data = load_devnet_dict()
    data["network_magic"] = "f0"
    path = tmp_path / "mynet.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(SpecError, match="'network_magic'"):
        load_spec(path)


def test_load_spec_from_path_records_its_source(tmp_path):
    path = tmp_path / "copy.json"
    path.write_text(json.dumps(load_devnet_dict()), encoding="utf-8")
    spec = load_spec(str(path))
    assert spec.source == str(path)
    assert spec.genesis_block().hash == load_spec("devnet").genesis_block().hash


# ------------------------------------------------------------------ amounts
@pytest.mark.parametrize(
    ("text", "decimals", "units"),
    [
        ("12.5", 8, 1_250_000_000),
        ("0.00000001", 8, 1),
        ("100000000", 8, 10**16),
        ("12.50", 8, 1_250_000_000),
        ("007", 8, 700_000_000),
        (3, 8, 300_000_000),
        ("5", 0, 5),
        ("0.5", 1, 5),
        (format_amount(MAX_AMOUNT, 8), 8, MAX_AMOUNT),
    ],
)
def test_parse_amount_valid(text, decimals, units):
    assert parse_amount(text, decimals) == units


@pytest.mark.parametrize(
    ("value", "decimals"),
    [
        ("1.000000001", 8),
        ("5.0", 0),
        ("1e3", 8),
        ("1E3", 8),
        ("-1", 8),
        ("+1", 8),
        (-1, 8),
        ("0", 8),
        ("0.00000000", 8),
        (0, 8),
        ("", 8),
        (" ", 8),
        ("1.", 8),
        (".5", 8),
        ("1,5", 8),
        ("1.2.3", 8),
        ("1 000", 8),
        ("NaN", 8),
        ("Infinity", 8),
        ("٣", 8),
        (1.5, 8),
        (Decimal("1.5"), 8),
        (True, 8),
        (False, 8),
        (None, 8),
        (format_amount(MAX_AMOUNT + 1, 8), 8),
        (MAX_AMOUNT + 1, 0),
    ],
)
def test_parse_amount_refuses(value, decimals):
    with pytest.raises(ValueError):
        parse_amount(value, decimals)


def test_parse_amount_error_names_what():
    with pytest.raises(ValueError, match="--funds"):
        parse_amount("1e3", 8, "--funds")


@pytest.mark.parametrize(
    ("units", "decimals", "text"),
    [
        (1_250_000_000, 8, "12.5"),
        (300_000_000, 8, "3"),
        (1, 8, "0.00000001"),
        (0, 8, "0"),
        (-150_000_000, 8, "-1.5"),
        (42, 0, "42"),
        (10**18, 18, "1"),
    ],
)
def test_format_amount(units, decimals, text):
    assert format_amount(units, decimals) == text


@settings(max_examples=300, deadline=None)
@given(units=st.integers(1, MAX_AMOUNT), decimals=st.integers(0, 18))
def test_parse_of_format_is_identity(units, decimals):
    assert parse_amount(format_amount(units, decimals), decimals) == units


@settings(max_examples=300, deadline=None)
@given(
    whole=st.text("0123456789", min_size=1, max_size=10),  # below MAX_AMOUNT
    frac=st.text("0123456789", max_size=8),
)
def test_format_of_parse_is_the_normalized_text(whole, frac):
    text = whole + ("." + frac if frac else "")
    normalized_whole = whole.lstrip("0") or "0"
    normalized_frac = frac.rstrip("0")
    normalized = normalized_whole + ("." + normalized_frac if normalized_frac else "")
    if normalized == "0":
        with pytest.raises(ValueError):
            parse_amount(text, 8)
        return
    assert format_amount(parse_amount(text, 8), 8) == normalized


def test_max_tx_size_must_fit_in_a_block_with_room_to_spare():
    import json as _json

    from o2ocli.chainspec import SpecError, builtin_spec_path, spec_from_dict

    data = _json.loads(builtin_spec_path("devnet").read_text(encoding="utf-8"))
    data["limits"]["max_block_size"] = 50_000
    data["limits"]["max_tx_size"] = 49_000
    with pytest.raises(SpecError, match="limits.max_tx_size"):
        spec_from_dict(data)
    data["limits"]["max_tx_size"] = 48_000
    assert spec_from_dict(data).max_tx_size == 48_000
