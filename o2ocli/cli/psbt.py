"""Partially signed transactions and multisig wallets: ``wallet sign``,
``wallet combine``, ``wallet finalize``, and the helpers behind ``wallet send
--unsigned``, ``wallet create --multisig`` and ``chain broadcast FILE``.

The file format is :mod:`o2ocli.wallet.psbt` (``docs/psbt.rst``).
"""

from __future__ import annotations

import os
import string
import sys
from pathlib import Path
from typing import Any

import click

from .common import (
    CliError,
    emit,
    get_context,
    node_errors,
    open_wallet,
    passphrase_file_option,
    resolve_datadir,
    resolve_spec,
    rpc_client,
    unlock_passphrase,
)

__all__ = ["sign_cmd", "combine_cmd", "finalize_cmd", "create_multisig", "send_unsigned",
           "check_send_mode", "recipient_lock", "broadcast_text"]

MULTISIG_SEND_HINT = ("is a multisig wallet: make the payment with 'wallet send --unsigned "
                      "--out FILE', then have the cosigners run 'wallet sign FILE'")


def _interactive() -> bool:
    """True when a person can answer a question (standard input is a terminal)."""
    return sys.stdin.isatty()


def _read(path: Path) -> Any:
    from o2ocli.wallet.psbt import PsbtError, parse

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise CliError(f"{path} is not a partially signed transaction file") from None
    try:
        return parse(text)
    except PsbtError as exc:
        raise CliError(f"{path}: {exc}") from None


def _write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all (temp file, then rename)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise CliError(f"cannot write {path}: {exc.strerror}") from None


def _check_chain(psbt: Any, spec: Any, path: Path) -> None:
    if psbt.chain_id != spec.chain_id:
        raise CliError(f"{path} is for chain {psbt.chain_id!r}, not {spec.chain_id!r}: "
                       "refusing to use it here")


def _describe(psbt: Any, spec: Any, own_xpub: str | None = None) -> tuple[dict[str, Any], str]:
    """(JSON summary, human text) of what the file pays (change as the signer
    with ``own_xpub`` can tell it: :func:`o2ocli.wallet.psbt.summary`)."""
    from o2ocli.amounts import format_amount
    from o2ocli.core.tx import NATIVE_ASSET
    from o2ocli.wallet.psbt import summary

    info = summary(psbt, spec, own_xpub)

    def amount(entry: dict[str, Any]) -> str:
        if entry["asset"] == NATIVE_ASSET.hex():
            return f"{format_amount(entry['units'], spec.native_decimals)} {spec.native_symbol}"
        return f"{entry['units']} units of asset {entry['asset']}"

    for entry in info["recipients"] + info["change"]:
        entry["amount"] = amount(entry)
    info["fee"] = spec.format(info["fee_units"])
    lines = [f"chain     {info['chain_id']}", f"txid      {info['txid']}"]
    lines += [f"pay       {e['address']}  {e['amount']}" for e in info["recipients"]]
    back = f"  (back to the {info['m']}-of-{info['n']} key set)" if info["n"] > 1 else ""
    lines += [f"change    {e['address']}  {e['amount']}{back}" for e in info["change"]]
    lines.append(f"fee       {info['fee']} {spec.native_symbol}")
    lines.append("signed    " + ", ".join(
        f"input {n}: {have} of {need}"
        for n, (have, need) in enumerate(zip(info["signatures"], info["needed"], strict=True))))
    return info, "\n".join(lines)


@click.command("sign")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the signed file here (default: update FILE).")
@click.option("--yes", is_flag=True, help="Do not ask before signing.")
@passphrase_file_option
def sign_cmd(file: Path, out: Path | None, yes: bool, passphrase_file: Path | None) -> None:
    """Add this wallet's signatures to a partially signed transaction.

    Shows what it signs (recipients, amounts, change, the fee computed from the
    coins in the file, the chain) and asks first on a terminal, unless --yes.
    Needs no node.  A file for another chain, or one whose coins or signatures
    do not check out, is refused.

    \b
    Example:
        o2ocli -w alice wallet sign pay.psbt
        o2ocli -w bob wallet sign pay.psbt --out pay-bob.psbt --yes
    """
    from o2ocli.wallet import multisig
    from o2ocli.wallet.psbt import sign

    ctx = get_context()
    with open_wallet(ctx) as w:
        psbt = _read(file)
        _check_chain(psbt, w.spec, file)
        if multisig.is_multisig(w) and multisig.multisig_config(w) != (psbt.m, psbt.xpubs):
            raise CliError(f"{file} spends from another key set than multisig wallet "
                           f"{w.name!r}: refusing to sign")
        with node_errors():
            own_xpub = w.export_xpub()
        info, text = _describe(psbt, w.spec, own_xpub)
        if not ctx.json:
            click.echo(text)
        if not yes and _interactive() and not click.confirm("Sign?", default=False, err=True):
            raise CliError("not signed")
        passphrase = unlock_passphrase(w, passphrase_file)
        with node_errors():
            unlocked = w.unlock(passphrase)

            def key_for(pkh: bytes) -> Any:
                return w.key_for(pkh, unlocked) if w.owns(pkh) else None

            added = sign(psbt, unlocked.account, key_for)
        if added == 0:
            raise CliError(f"wallet {w.name!r} holds none of the keys this transaction "
                           "still needs")
    target = out or file
    _write(target, psbt.dumps())
    counts = [len(i.signatures) for i in psbt.inputs]
    emit(ctx, {"file": str(target), "added": added, "signatures": counts, "summary": info},
         f"added {added} signature(s); wrote {target}")


@click.command("combine")
@click.argument("files", nargs=-1, required=True,
                type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the combined file here (default: standard output).")
def combine_cmd(files: tuple[Path, ...], out: Path | None) -> None:
    """Merge the signatures of partially signed files of one transaction.

    \b
    Example:
        o2ocli wallet combine pay-alice.psbt pay-bob.psbt --out pay.psbt
    """
    from o2ocli.wallet.psbt import PsbtError, combine

    ctx = get_context()
    spec = resolve_spec(ctx, resolve_datadir(ctx))
    psbts = [_read(f) for f in files]
    for f, p in zip(files, psbts, strict=True):
        _check_chain(p, spec, f)
    try:
        merged = combine(psbts)
    except PsbtError as exc:
        raise CliError(str(exc)) from None
    if out is None:
        click.echo(merged.dumps(), nl=False)
        return
    _write(out, merged.dumps())
    counts = [len(i.signatures) for i in merged.inputs]
    emit(ctx, {"file": str(out), "signatures": counts},
         f"wrote {out} (signatures per input: {', '.join(map(str, counts))})")


def _finalized(path: Path, spec: Any) -> Any:
    from o2ocli.wallet.psbt import PsbtError, finalize

    psbt = _read(path)
    _check_chain(psbt, spec, path)
    try:
        return finalize(psbt, spec)
    except PsbtError as exc:
        raise CliError(f"{path}: {exc}") from None


@click.command("finalize")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the signed raw tx (hex) here instead of printing it.")
def finalize_cmd(file: Path, out: Path | None) -> None:
    """Build the signed transaction once enough signatures are in FILE.

    \b
    Example:
        o2ocli wallet finalize pay.psbt
        o2ocli wallet finalize pay.psbt --out pay.tx && o2ocli chain broadcast pay.tx
    """
    ctx = get_context()
    tx = _finalized(file, resolve_spec(ctx, resolve_datadir(ctx)))
    raw = tx.to_bytes().hex()
    if out is not None:
        _write(out, raw + "\n")
    emit(ctx, {"txid": tx.txid.hex(), "raw": raw, "file": str(out) if out else None},
         f"wrote {out} (txid {tx.txid.hex()})" if out else raw)


def broadcast_text(ctx: Any, arg: str) -> str:
    """Raw hex to broadcast from ``chain broadcast``'s argument: hex, ``-``
    (stdin), a file of hex, or a complete partially signed file."""
    if arg == "-":
        return sys.stdin.read().strip()
    text = arg.strip()
    if all(c in string.hexdigits for c in text):
        return text  # raw hex (may be longer than a file name can be)
    path = Path(arg)
    try:
        is_file = path.is_file()
    except OSError:
        is_file = False
    if not is_file:
        return text  # the node says what is wrong with it
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if text.startswith("{"):
        return _finalized(path, resolve_spec(ctx, resolve_datadir(ctx))).to_bytes().hex()
    return text


# ------------------------------------------------------------ wallet hooks

def create_multisig(ctx: Any, name: str, m: int | None, cosigners: tuple[str, ...],
                    watch_only: bool) -> None:
    """``wallet create NAME --multisig M --cosigner XPUB …``: the ``-w`` wallet
    brings its own key (and a copy of its encrypted seed, to sign its share)."""
    from o2ocli.wallet import multisig
    from o2ocli.wallet.wallet import WalletError, create_wallet

    if m is None or not cosigners or watch_only:
        raise click.UsageError("--multisig M goes with one or more --cosigner XPUB "
                               "(and not with --watch-only/--xpub)")
    with open_wallet(ctx) as own, node_errors():
        if multisig.is_multisig(own):
            raise CliError(f"wallet {own.name!r} is a multisig wallet: give the single-key "
                           "wallet whose key joins (-w NAME)")
        own_xpub = own.export_xpub()
        seed = own.db.get(b"seed")
        copied = (seed, own.encrypted) if seed is not None else None
    xpubs = sorted({own_xpub, *(c.strip() for c in cosigners)})
    if len(xpubs) != len(cosigners) + 1:
        raise CliError("the cosigner xpubs must be distinct and differ from this wallet's own")
    if not 1 <= m <= len(xpubs) or len(xpubs) > 15:
        raise CliError(f"--multisig must be within 1..{len(xpubs)} for {len(xpubs)} keys "
                       "(at most 15 keys)")
    try:
        multisig.parse_xpubs(xpubs)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    datadir = resolve_datadir(ctx)
    spec = resolve_spec(ctx, datadir)
    try:
        with create_wallet(datadir, name, spec, None, None, xpub=own_xpub, copied_seed=copied,
                           extra_meta={"multisig": {"m": m, "xpubs": xpubs}}) as w:
            address = multisig.receive_address(w)
    except WalletError as exc:
        raise CliError(str(exc)) from None
    note = "" if copied else " (watch-only: it cannot sign its share)"
    emit(ctx, {"name": name, "address": address, "m": m, "n": len(xpubs), "xpubs": xpubs,
               "can_sign": copied is not None},
         f"created {m}-of-{len(xpubs)} multisig wallet {name!r}{note}\naddress   {address}")


def recipient_lock(spec: Any, text: str) -> Any:
    """The lock a ``--to`` address pays: plain or multisig (one-line error otherwise)."""
    from o2ocli.crypto.address import AddressError
    from o2ocli.wallet.multisig import parse_recipient

    try:
        return parse_recipient(spec, text)
    except AddressError as exc:
        raise CliError(f"bad address {text!r}: {exc}") from None


def check_send_mode(w: Any, unsigned: bool, out: Path | None, dry_run: bool) -> None:
    """``--unsigned`` goes with ``--out``; a multisig wallet pays only that way."""
    from o2ocli.wallet.multisig import is_multisig

    if unsigned != (out is not None) or (unsigned and dry_run):
        raise click.UsageError("--unsigned goes with --out FILE (and not with --dry-run)")
    if is_multisig(w) and not unsigned:
        raise CliError(f"wallet {w.name!r} {MULTISIG_SEND_HINT}")


def send_unsigned(ctx: Any, w: Any, outputs: list[Any], fixed_fee: int | None,
                  max_inputs: int, out: Path) -> None:
    """``wallet send --unsigned --out FILE``: select coins, write the file, sign nothing."""
    from o2ocli.wallet.psbtbuild import build_multisig, build_single

    with node_errors():
        client = rpc_client(ctx)
        from o2ocli.wallet.multisig import is_multisig

        build = build_multisig if is_multisig(w) else build_single
        psbt, commit = build(w, client, outputs, fixed_fee, max_inputs)
        info, text = _describe(psbt, w.spec)
        _write(out, psbt.dumps())
        commit()
    emit(ctx, {"file": str(out), "txid": info["txid"], "fee": info["fee"], "summary": info},
         f"{text}\nwrote {out} (unsigned: have it signed with 'wallet sign {out}')")
