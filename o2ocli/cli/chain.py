"""``o2ocli chain``: query the chain, broadcast transactions, make chain specs."""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Any

import click

from .common import TXID, CliError, emit, get_context, rpc_call, table

TXS_PER_PERIOD_SECOND = 3_000
"""Block size limit per second of period in new chain specs: plain payments
connect at ~9,000-10,000 tx/s on one core here, so a full block takes ~30 %
of the period to check (``benchmarks/connect.py``)."""


@click.group()
def chain() -> None:
    """Query the chain and make new chain specs.

    \b
    Example:
        o2ocli chain info
        o2ocli chain block 12
        o2ocli chain spec new mynet --validators 3 --out ./mynet
    """


@chain.command("info")
def info_cmd() -> None:
    """Chain id, tip, finality, validators and the UTXO set hash.

    \b
    Example:
        o2ocli chain info
        o2ocli --json chain info
    """
    ctx = get_context()
    info = rpc_call(ctx, "getinfo")
    utxo = rpc_call(ctx, "getutxosetinfo")
    data = {
        "chain_id": info["chain_id"],
        "native_symbol": info["native_symbol"],
        "genesis_hash": info["genesis_hash"],
        "height": utxo["height"],
        "tip": utxo["tip"],
        "finalized_height": info["finalized_height"],
        "validators": info["validators"],
        "utxo_set_hash": utxo["utxo_set_hash"],
        "utxo_count": utxo["utxo_count"],
        "supply": utxo["totals"],
    }
    lines = [
        f"chain id        {data['chain_id']} ({data['native_symbol']})",
        f"genesis         {data['genesis_hash']}",
        f"height          {data['height']}  (finalized {data['finalized_height']})",
        f"tip             {data['tip']}",
        f"utxo set hash   {data['utxo_set_hash']}  ({data['utxo_count']} outputs)",
        "validators      " + "\n                ".join(data["validators"]),
    ]
    emit(ctx, data, "\n".join(lines))


@chain.command("block")
@click.argument("ref", metavar="HEIGHT|HASH")
@click.option("--raw", is_flag=True, help="Print the block's hex encoding.")
def block_cmd(ref: str, raw: bool) -> None:
    """Show a block by height or hash.

    \b
    Example:
        o2ocli chain block 42
        o2ocli --json chain block 9f2c…
    """
    ctx = get_context()
    key: Any = int(ref) if ref.isascii() and ref.isdigit() else ref
    if raw:
        hexdata = rpc_call(ctx, "getblock", key, 0)
        emit(ctx, {"raw": hexdata}, hexdata)
        return
    block = rpc_call(ctx, "getblock", key, 1)
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(block["time"]))
    lines = [
        f"block {block['height']}  {block['hash']}",
        f"prev        {block['prev']}",
        f"time        {when} UTC",
        f"validator   {block['validator'] or '(genesis)'}  difficulty {block['difficulty']}",
        f"status      {block['confirmations']} confirmations"
        + (", final" if block["final"] else "")
        + ("" if block["main_chain"] else ", NOT on the main chain"),
        f"txs         {block['tx_count']}",
    ]
    lines += [f"  {txid}" for txid in block["txs"]]
    emit(ctx, block, "\n".join(lines))


@chain.command("tx")
@click.argument("txid", type=TXID)
def tx_cmd(txid: str) -> None:
    """Show a transaction (confirmed or in the mempool).

    \b
    Example:
        o2ocli chain tx 5be1…
    """
    ctx = get_context()
    tx = rpc_call(ctx, "gettx", txid)

    def human() -> str:
        if tx["height"] is None:
            status = "in mempool (unconfirmed)"
        else:
            status = f"block {tx['height']}, {tx['confirmations']} confirmations" + (
                ", final" if tx["final"] else ""
            )
        lines = [f"tx {tx['txid']}", f"status   {status}"]
        if "fee" in tx:
            lines.append(f"fee      {tx['fee']}")
        rows = [
            [f"{i['txid']}:{i['index']}", i.get("address", ""), i.get("amount", ""),
             i.get("asset", "")]
            for i in tx["inputs"]
        ]
        if rows:
            lines += ["inputs", table(rows, ["outpoint", "address", "amount", "asset"])]
        outs = [
            [o["index"], o.get("address") or json.dumps(o["lock"]), o["amount"], o["asset"]]
            for o in tx["outputs"]
        ]
        lines += ["outputs", table(outs, ["#", "to", "amount", "asset"])]
        if tx["payload"]["type"] != "none":
            lines.append(f"payload  {json.dumps(tx['payload'])}")
        return "\n".join(lines)

    emit(ctx, tx, human)


@chain.command("broadcast")
@click.argument("raw", metavar="HEX|FILE")
def broadcast_cmd(raw: str) -> None:
    """Send a signed raw transaction (hex, - for stdin, or a FILE) to the node.

    FILE holds raw hex ('wallet finalize --out') or is a partially signed file
    with enough signatures (finalized on the way).

    \b
    Example:
        o2ocli chain broadcast 0100000001…
        o2ocli wallet send --to d… --amount 1 --dry-run --json | jq -r .raw | \\
            o2ocli chain broadcast -
        o2ocli chain broadcast pay.psbt
    """
    from .psbt import broadcast_text

    ctx = get_context()
    raw = broadcast_text(ctx, raw)
    txid = rpc_call(ctx, "sendrawtx", raw.strip())
    emit(ctx, {"txid": txid}, txid)


@chain.group("spec")
def spec_group() -> None:
    """Chain spec tools.

    \b
    Example:
        o2ocli chain spec new mynet --validators 3 --out ./mynet
    """


@spec_group.command("new")
@click.argument("name")
@click.option("--validators", "n_validators", type=click.IntRange(1, 64), required=True,
              help="Number of validators to create keys for.")
@click.option("--period", type=click.IntRange(0, 3600), default=2, show_default=True,
              help="Block period in seconds.")
@click.option("--epoch", type=click.IntRange(1, 10**9), default=30000, show_default=True)
@click.option("--funds", default="1000000", show_default=True,
              help="Native coins allocated to the genesis funds key.")
@click.option("--address-version", type=click.IntRange(0, 255), default=127, show_default=True)
@click.option("--rpc-port", type=click.IntRange(1, 65535), default=18443, show_default=True)
@click.option("--p2p-port", type=click.IntRange(1, 65535), default=18444, show_default=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              required=True, help="Folder to write the spec and key files to.")
def spec_new_cmd(
    name: str,
    n_validators: int,
    period: int,
    epoch: int,
    funds: str,
    address_version: int,
    rpc_port: int,
    p2p_port: int,
    out_dir: Path,
) -> None:
    """Write a new chain spec with fresh validator and funds keys.

    Writes OUT/NAME.json, OUT/validator-1.key … OUT/validator-N.key and
    OUT/genesis-funds.key (WIF, one line, mode 0600).  Then on each machine:
    `o2ocli --chain OUT/NAME.json --datadir D node init` and
    `o2ocli --datadir D node start --validator-key OUT/validator-K.key`.

    \b
    Example:
        o2ocli chain spec new mynet --validators 3 --period 2 --out ./mynet
    """
    from o2ocli.amounts import parse_amount
    from o2ocli.chainspec import SpecError, load_spec
    from o2ocli.crypto.address import encode_address
    from o2ocli.crypto.keys import PrivateKey
    from o2ocli.node.datadir import write_key_file, write_private_file

    ctx = get_context()
    if not name.replace("-", "").isalnum() or not name.isascii() or len(name) > 32:
        raise click.BadParameter("use 1..32 letters, digits and dashes", param_hint="NAME")
    try:
        parse_amount(funds, 8, "--funds")
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--funds") from None
    spec_file = out_dir / f"{name}.json"
    key_files = [out_dir / f"validator-{i}.key" for i in range(1, n_validators + 1)]
    funds_file = out_dir / "genesis-funds.key"
    for path in (spec_file, funds_file, *key_files):
        if path.exists():
            raise CliError(f"{path} already exists; refusing to overwrite")
    wif_version = (address_version + 0x80) & 0xFF
    validator_keys = [PrivateKey.generate() for _ in key_files]
    funds_key = PrivateKey.generate()

    def addr(key: PrivateKey) -> str:
        return encode_address(key.public_key.hash160(), address_version)

    spec = {
        "name": name,
        "chain_id": f"o2o-{name}",
        "network_magic": secrets.token_bytes(4).hex(),
        "address_version": address_version,
        "native": {"symbol": "O2O", "decimals": 8},
        "genesis": {
            "time": int(time.time()),
            "allocations": [{"address": addr(funds_key), "amount": funds}],
        },
        "validators": [addr(k) for k in validator_keys],
        "consensus": {"period": period, "epoch": epoch, "max_future": 15},
        # A full block connects in ~30 % of the period on a small machine (see
        # docs/protocol.rst, "Block size and timing"); the backlog waits in the mempool.
        "limits": {"max_block_size": 4000000, "max_tx_size": 100000,
                   "max_block_txs": max(1, period) * TXS_PER_PERIOD_SECOND},
        "fees": {"min_relay_fee": "0.00001", "token_issue_fee": "10"},
        "o2o": {"review_window": 100000, "min_purchase": "0.01"},
        "network": {"p2p_port": p2p_port, "rpc_port": rpc_port, "bootstrap": []},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    write_private_file(spec_file, json.dumps(spec, indent=2) + "\n", 0o644)
    for path, key in zip(key_files, validator_keys, strict=True):
        write_key_file(path, key, wif_version)
    write_key_file(funds_file, funds_key, wif_version)
    try:
        load_spec(spec_file)
    except SpecError as exc:  # pragma: no cover - would be a bug in this command
        raise CliError(f"generated spec does not load: {exc}") from None
    result = {
        "spec": str(spec_file),
        "chain_id": spec["chain_id"],
        "validators": spec["validators"],
        "validator_keys": [str(p) for p in key_files],
        "funds_key": str(funds_file),
        "funds_address": addr(funds_key),
    }
    lines = [f"wrote {spec_file} (chain id {spec['chain_id']})"]
    lines += [f"  {p}  → {a}" for p, a in zip(key_files, spec["validators"], strict=True)]
    lines.append(f"  {funds_file}  → {addr(funds_key)} ({funds} O2O)")
    emit(ctx, result, "\n".join(lines))


@chain.command("fees")
@click.option("--blocks", type=click.IntRange(1, 1000), default=20, show_default=True,
              help="Recent blocks to measure the fullness over.")
def fees_cmd(blocks: int) -> None:
    """Fee rate estimates (base units per byte) for --priority low, normal, high.

    From the mempool queue and the fullness of recent blocks: the least rate
    that gets a new transaction into the next block (high), within 3 (normal)
    or within 6 (low).  While blocks are not full and the mempool holds less
    than a block, every priority is the relay minimum: paying more buys
    nothing.  An estimate, not a promise (see o2ocli-chain(1), FEES).

    \b
    Example:
        o2ocli chain fees
        o2ocli -w alice wallet send --to dAbc… --amount 1 --priority high
    """
    ctx = get_context()
    data = rpc_call(ctx, "estimatefee", blocks)

    def human() -> str:
        rows = [[p, e["fee_rate"], e["target_blocks"], f"~{e['target_seconds']} s"]
                for p, e in data["estimates"].items()]
        text = table(rows, ["priority", "fee rate (units/byte)", "within blocks", "time"])
        return (f"{text}\nrelay minimum {data['min_fee_rate']} units/byte; last "
                f"{data['blocks_considered']} blocks {100 * data['block_fullness']:.1f}% full; "
                f"mempool {data['mempool_txs']} txs, {data['mempool_bytes']} bytes; block "
                f"period {data['period']} s")

    emit(ctx, data, human)


def _register_verify_utxo() -> None:
    from .verifyutxo import verify_utxo_cmd

    chain.add_command(verify_utxo_cmd)


_register_verify_utxo()
