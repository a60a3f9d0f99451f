"""``o2ocli token …``: merchant loyalty tokens (issue, mint, burn, send, rewards)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from .common import (
    CliError,
    emit,
    get_context,
    node_errors,
    open_wallet,
    parse_address,
    passphrase_file_option,
    rpc_client,
    table,
    unlock_passphrase,
)
from .confirm import guard, spend_options

__all__ = ["token"]


@click.group()
def token() -> None:
    """Loyalty tokens: issue points, mint, burn, send, reward customers.

    A token is an asset with a unique symbol (3-12 of A-Z, 0-9, case-insensitive,
    first come first served).  Issuing burns the chain's issuance fee.  A
    --mintable token has one authority output: whoever holds it can mint.

    \b
    Example:
        o2ocli -w shop token issue --symbol BEANS --name "Bean Points" --supply 100000 --mintable
        o2ocli -w shop token reward BEANS --rate 10 --dry-run
    """


def _amount(text: str, decimals: int, what: str = "amount") -> int:
    from o2ocli.amounts import parse_amount

    try:
        return parse_amount(text, decimals, what)
    except ValueError as exc:
        raise CliError(f"bad {what}: {exc}") from None


def _token_json(t: dict[str, Any]) -> dict[str, Any]:
    keys = ("symbol", "name", "asset", "decimals", "supply", "mintable", "issuer",
            "authority_holder", "holders", "height", "txid")
    return {k: t.get(k) for k in keys}


@token.command("issue")
@click.option("--symbol", required=True, help="3-12 letters A-Z or digits (case-insensitive).")
@click.option("--name", required=True, help="Display name (UTF-8, at most 64 bytes).")
@click.option("--supply", default="0", show_default=True, metavar="X",
              help="Initial supply, in display units, paid to this wallet.")
@click.option("--decimals", type=click.IntRange(0, 8), default=0, show_default=True)
@click.option("--mintable", is_flag=True, help="Create a mint authority (more can be minted).")
@click.option("--wait", "wait_seconds", type=click.IntRange(0, 3600), default=120,
              show_default=True, metavar="S",
              help="Seconds to wait for the commitment to be mined before revealing.")
@spend_options
@passphrase_file_option
def issue_cmd(symbol: str, name: str, supply: str, decimals: int, mintable: bool,
              wait_seconds: int, yes: bool, allow_high_fee: bool, fee_rate: str | None,
              priority: str | None, passphrase_file: Path | None) -> None:
    """Issue a new token (commit, wait one block, reveal).

    The symbol is first committed to as a salted hash, so nobody watching the
    mempool can claim it first; once that is mined the issue reveals it.  If the
    wait times out, run the same command again: the wallet keeps the salt and
    finishes the issue.  The reveal burns the chain's issuance fee: on a
    terminal the summary says so and asks 'Send? [y/N]' once (--yes skips it).

    \b
    Example:
        o2ocli -w shop token issue --symbol BEANS --name "Bean Points" \\
            --supply 100000 --decimals 2 --mintable
    """
    from o2ocli.wallet import tokens

    ctx = get_context()
    with open_wallet(ctx) as w, node_errors():
        canonical = tokens.check_symbol(symbol)
        units = _amount(supply, decimals, "supply") if supply not in ("0", "") else 0
        client = rpc_client(ctx)
        burn = f"{w.spec.format(w.spec.token_issue_fee)} {w.spec.native_symbol}"
        guard(ctx, w, client, yes=yes, allow_high_fee=allow_high_fee, fee_rate=fee_rate,
              priority=priority,
              note=f"issuing {canonical} burns the issuance fee of {burn}: this tx locks it "
                   "in a coin of this wallet, the reveal one block later destroys it")
        unlocked = w.unlock(unlock_passphrase(w, passphrase_file))
        note = tokens.pending_issue(w, canonical)
        if note is None:
            tokens.start_issue(w, client, unlocked, canonical, name, decimals, units, mintable)
            note = tokens.pending_issue(w, canonical)
            assert note is not None
        elif (note["name"], note["decimals"], note["supply"], note["mintable"]) != (
            name, decimals, units, mintable
        ):
            raise CliError(
                f"this wallet has an unfinished issue of {canonical} with other terms "
                f"(name {note['name']!r}, supply {note['supply']} base units, decimals "
                f"{note['decimals']}, mintable {note['mintable']}); repeat it with those"
            )
        deadline = time.monotonic() + wait_seconds
        while tokens.commit_confirmations(client, note) < 1:
            if time.monotonic() >= deadline:
                raise CliError(
                    f"the commitment {note['commit']} is not mined yet; run the same command "
                    "again to finish the issue (the wallet keeps the salt)"
                )
            time.sleep(0.25)
        txid = tokens.finish_issue(w, client, unlocked, canonical)
        from o2ocli.core.payloads import token_asset_id

        asset = token_asset_id(canonical).hex()
    emit(ctx, {"txid": txid, "asset": asset, "symbol": canonical, "commit": note["commit"]},
         f"issued {canonical} in {txid}\nasset id {asset}")


@token.command("mint")
@click.argument("symbol")
@click.option("--amount", required=True, metavar="X", help="Amount to create (display units).")
@click.option("--to", "to", default=None, metavar="ADDRESS",
              help="Recipient of the new tokens (default: this wallet).")
@spend_options
@passphrase_file_option
def mint_cmd(symbol: str, amount: str, to: str | None, yes: bool, allow_high_fee: bool,
             fee_rate: str | None, priority: str | None, passphrase_file: Path | None) -> None:
    """Create more of a mintable token (needs its authority output).

    \b
    Example:
        o2ocli -w shop token mint BEANS --amount 5000
    """
    from o2ocli.wallet import payloadtx, tokens

    ctx = get_context()
    with open_wallet(ctx) as w, node_errors():
        client = rpc_client(ctx)
        info = payloadtx.get_token(client, symbol)
        units = _amount(amount, info["decimals"])
        dest = parse_address(w.spec, to) if to else None
        guard(ctx, w, client, yes=yes, allow_high_fee=allow_high_fee, fee_rate=fee_rate,
              priority=priority)
        unlocked = w.unlock(unlock_passphrase(w, passphrase_file))
        tx, plan = tokens.mint(w, client, unlocked, info, units, dest)
        txid = payloadtx.send(w, client, tx, plan)
    emit(ctx, {"txid": txid}, f"minted {amount} {info['symbol']} in {txid}")


@token.command("burn")
@click.argument("symbol")
@click.option("--amount", required=True, metavar="X", help="Amount to destroy (display units).")
@spend_options
@passphrase_file_option
def burn_cmd(symbol: str, amount: str, yes: bool, allow_high_fee: bool,
             fee_rate: str | None, priority: str | None, passphrase_file: Path | None) -> None:
    """Destroy some of this wallet's own tokens (the supply shrinks).

    \b
    Example:
        o2ocli -w alice token burn BEANS --amount 10
    """
    from o2ocli.wallet import payloadtx, tokens

    ctx = get_context()
    with open_wallet(ctx) as w, node_errors():
        client = rpc_client(ctx)
        info = payloadtx.get_token(client, symbol)
        units = _amount(amount, info["decimals"])
        guard(ctx, w, client, yes=yes, allow_high_fee=allow_high_fee, fee_rate=fee_rate,
              priority=priority)
        unlocked = w.unlock(unlock_passphrase(w, passphrase_file))
        tx, plan = tokens.burn(w, client, unlocked, info, units)
        txid = payloadtx.send(w, client, tx, plan)
    emit(ctx, {"txid": txid}, f"burned {amount} {info['symbol']} in {txid}")


@token.command("freeze")
@click.argument("symbol")
@click.option("--yes", is_flag=True, help="Confirm: the supply is fixed forever.")
@passphrase_file_option
def freeze_cmd(symbol: str, yes: bool, passphrase_file: Path | None) -> None:
    """Destroy the mint authority: nobody can ever mint this token again.

    \b
    Example:
        o2ocli -w shop token freeze BEANS --yes
    """
    from o2ocli.wallet import payloadtx, tokens

    if not yes:
        raise CliError("freezing is irreversible: add --yes to confirm")
    ctx = get_context()
    with open_wallet(ctx) as w, node_errors():
        client = rpc_client(ctx)
        info = payloadtx.get_token(client, symbol)
        unlocked = w.unlock(unlock_passphrase(w, passphrase_file))
        tx, plan = tokens.freeze(w, client, unlocked, info)
        txid = payloadtx.send(w, client, tx, plan)
    emit(ctx, {"txid": txid}, f"{info['symbol']} supply is now fixed ({txid})")


def _send_asset(to: str, asset_hex: str, units: int, passphrase_file: Path | None,
                spend: dict[str, Any]) -> tuple[str, str]:
    from o2ocli.core.locks import PayToAddress
    from o2ocli.core.tx import TxOut
    from o2ocli.wallet import payloadtx

    ctx = get_context()
    with open_wallet(ctx) as w, node_errors():
        client = rpc_client(ctx)
        out = TxOut(bytes.fromhex(asset_hex), units, PayToAddress(parse_address(w.spec, to)))
        guard(ctx, w, client, **spend)
        unlocked = w.unlock(unlock_passphrase(w, passphrase_file))
        tx, plan = payloadtx.build(w, client, unlocked, [out], payload=_no_payload())
        txid = payloadtx.send(w, client, tx, plan)
        return txid, w.spec.format(plan.fee)


def _no_payload() -> Any:
    from o2ocli.core.payloads import NO_PAYLOAD

    return NO_PAYLOAD


@token.command("send")
@click.argument("symbol")
@click.option("--to", "to", required=True, metavar="ADDRESS", help="Recipient.")
@click.option("--amount", required=True, metavar="X", help="Amount (display units).")
@spend_options
@passphrase_file_option
def send_cmd(symbol: str, to: str, amount: str, passphrase_file: Path | None,
             **spend: Any) -> None:
    """Send tokens (the fee is paid in native coin from the same wallet).

    \b
    Example:
        o2ocli -w shop token send BEANS --to dAlice… --amount 250
    """
    from o2ocli.wallet import payloadtx

    ctx = get_context()
    with node_errors():
        info = payloadtx.get_token(rpc_client(ctx), symbol)
    units = _amount(amount, info["decimals"])
    txid, fee = _send_asset(to, info["asset"], units, passphrase_file, spend)
    emit(ctx, {"txid": txid, "fee": fee}, f"sent {amount} {info['symbol']} in {txid}")


@token.command("transfer-authority")
@click.argument("symbol")
@click.option("--to", "to", required=True, metavar="ADDRESS", help="New authority holder.")
@spend_options
@passphrase_file_option
def transfer_authority_cmd(symbol: str, to: str, passphrase_file: Path | None,
                           **spend: Any) -> None:
    """Hand the mint authority of a token to another address.

    \b
    Example:
        o2ocli -w shop token transfer-authority BEANS --to dPartner…
    """
    from o2ocli.wallet import payloadtx

    ctx = get_context()
    with node_errors():
        info = payloadtx.get_token(rpc_client(ctx), symbol)
    if not info["mintable"]:
        raise CliError(f"{info['symbol']} has a fixed supply: it has no authority to hand over")
    with open_wallet(ctx) as w, node_errors():
        holder = info.get("authority_holder")
        if holder is None or holder == "multisig" or not w.owns(w.spec.decode_address(holder)):
            raise CliError(f"this wallet does not hold the mint authority of {info['symbol']} "
                           f"(held by {holder or 'nobody'})")
    txid, fee = _send_asset(to, info["authority_asset"], 1, passphrase_file, spend)
    emit(ctx, {"txid": txid, "fee": fee},
         f"mint authority of {info['symbol']} sent to {to} in {txid}")


@token.command("info")
@click.argument("symbol")
def info_cmd(symbol: str) -> None:
    """Supply, holders, issuer and authority holder of a token.

    \b
    Example:
        o2ocli token info BEANS
    """
    from o2ocli.wallet import payloadtx

    ctx = get_context()
    with node_errors():
        data = _token_json(payloadtx.get_token(rpc_client(ctx), symbol))

    def human() -> str:
        rows = [[k, "" if v is None else v] for k, v in data.items()]
        return table(rows, ["field", "value"])

    emit(ctx, data, human)


@token.command("list")
def list_cmd() -> None:
    """Every token issued on the chain.

    \b
    Example:
        o2ocli token list
    """
    ctx = get_context()
    with node_errors():
        tokens = [_token_json(t) for t in rpc_client(ctx).call("listtokens")]
    emit(ctx, {"tokens": tokens}, lambda: table(
        [[t["symbol"], t["name"], t["supply"], t["decimals"], "yes" if t["mintable"] else "no",
          t["holders"], t["issuer"]] for t in tokens],
        ["symbol", "name", "supply", "decimals", "mintable", "holders", "issuer"],
    ) if tokens else "no tokens issued yet")


@token.command("reward")
@click.argument("symbol")
@click.option("--rate", required=True, metavar="R",
              help="Tokens per native coin spent (or per review with --for reviews).")
@click.option("--since", type=click.IntRange(0), default=0, show_default=True, metavar="HEIGHT",
              help="Only purchases (reviews) at or after this height.")
@click.option("--for", "kind", type=click.Choice(["purchases", "reviews"]), default="purchases",
              show_default=True, help="What is rewarded.")
@click.option("--dry-run", is_flag=True, help="Show who would get what; send nothing.")
@spend_options
@passphrase_file_option
def reward_cmd(symbol: str, rate: str, since: int, kind: str, dry_run: bool,
               passphrase_file: Path | None, **spend: Any) -> None:
    """Pay loyalty tokens to every customer who paid (or reviewed) you.

    One transaction pays everyone; its payload lists the purchases (reviews)
    rewarded, and the chain refuses to reward any of them twice with the same
    token, so running the command again pays only what is new.

    \b
    Example:
        o2ocli -w shop token reward BEANS --rate 10 --dry-run
        o2ocli -w shop token reward BEANS --rate 5 --for reviews
    """
    from o2ocli.amounts import format_amount
    from o2ocli.wallet import payloadtx, tokens

    ctx = get_context()
    with open_wallet(ctx) as w, node_errors():
        client = rpc_client(ctx)
        info = payloadtx.get_token(client, symbol)
        lines = tokens.plan_rewards(w, client, info, rate, kind, since)
        rows = [
            {"customer": line.customer, "amount": format_amount(line.units, info["decimals"]),
             "refs": list(line.refs),
             "basis": w.spec.format(line.basis) if kind == "purchases" else line.basis}
            for line in lines
        ]
        total = format_amount(sum(line.units for line in lines), info["decimals"])
        txid = None
        if not dry_run:
            guard(ctx, w, client, **spend)
            unlocked = w.unlock(unlock_passphrase(w, passphrase_file))
            tx, plan = tokens.reward(w, client, unlocked, info, lines, kind)
            txid = payloadtx.send(w, client, tx, plan)
    basis_name = "spent" if kind == "purchases" else "reviews"

    def human() -> str:
        if not rows:
            return "nobody to reward"
        if kind == "purchases":
            text = table([[r["customer"], r["basis"], len(r["refs"]), r["amount"]] for r in rows],
                         ["customer", basis_name, kind, info["symbol"]])
        else:
            text = table([[r["customer"], r["basis"], r["amount"]] for r in rows],
                         ["customer", basis_name, info["symbol"]])
        text += f"\ntotal {total} {info['symbol']}"
        return text + (f"\nsent {txid}" if txid else "\n(dry run: nothing sent)")

    emit(ctx, {"txid": txid, "symbol": info["symbol"], "rewards": rows, "total": total}, human)
