"""``o2ocli wallet``: create, restore and use wallets (sign locally, talk to the node over RPC)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from .common import (
    CliError,
    emit,
    get_context,
    new_passphrase,
    node_errors,
    open_wallet,
    parse_address,
    passphrase_file_option,
    resolve_datadir,
    resolve_spec,
    rpc_client,
    table,
    unlock_passphrase,
)
from .confirm import guard, spend_options
from .display import asset_labels
from .psbt import check_send_mode, create_multisig, recipient_lock, send_unsigned


@click.group()
def wallet() -> None:
    """Wallets: HD keys encrypted at rest; transactions are signed here, sent to the node.

    The wallet that signs is chosen with the global -w/--wallet NAME.

    \b
    Example:
        o2ocli wallet create alice
        o2ocli -w alice wallet address
        o2ocli -w dev wallet send --to dXyz… --amount 12.5
    """


@wallet.command("create")
@click.argument("name")
@click.option("--words", type=click.Choice(["12", "24"]), default="12", show_default=True,
              help="Length of the recovery phrase.")
@click.option("--no-passphrase", is_flag=True, help="Store keys unencrypted (test wallets).")
@click.option("--watch-only", is_flag=True, help="No keys: watch the addresses of --xpub.")
@click.option("--xpub", default=None, help="Account xpub (from 'wallet export-xpub').")
@click.option("--multisig", "multisig_m", type=int, default=None, metavar="M",
              help="An M-of-N multisig wallet of the -w wallet's key and the --cosigner keys.")
@click.option("--cosigner", "cosigners", multiple=True, metavar="XPUB",
              help="A cosigner's account xpub, for --multisig (repeatable).")
@passphrase_file_option
def create_cmd(name: str, words: str, no_passphrase: bool, watch_only: bool, xpub: str | None,
               multisig_m: int | None, cosigners: tuple[str, ...],
               passphrase_file: Path | None) -> None:
    """Create a wallet; prints its first address and recovery phrase (shown once).

    With --watch-only --xpub XPUB the wallet holds no keys: it derives the same
    addresses as the wallet the xpub came from and cannot sign (a till).

    \b
    Example:
        o2ocli wallet create alice
        O2OCLI_PASSPHRASE=… o2ocli --json wallet create shop
        o2ocli wallet create till --watch-only --xpub "$(o2ocli -w shop wallet export-xpub)"
        o2ocli -w alice wallet create shared --multisig 2 --cosigner xpub6B… --cosigner xpub6C…
    """
    from o2ocli.wallet.bip39 import generate_mnemonic
    from o2ocli.wallet.wallet import WalletError, create_wallet

    ctx = get_context()
    if multisig_m is not None or cosigners:
        return create_multisig(ctx, name, multisig_m, cosigners, watch_only or xpub is not None)
    datadir = resolve_datadir(ctx)
    spec = resolve_spec(ctx, datadir)
    if watch_only != (xpub is not None):
        raise click.UsageError("--watch-only and --xpub go together")
    if watch_only:
        try:
            with create_wallet(datadir, name, spec, None, None, xpub=xpub) as w:
                address = w.receive_address()
        except WalletError as exc:
            raise CliError(str(exc)) from None
        emit(ctx, {"name": name, "address": address, "watch_only": True},
             f"created watch-only wallet {name!r} (no keys: it cannot sign)\naddress   {address}")
        return
    passphrase = new_passphrase(passphrase_file, no_passphrase)
    phrase = generate_mnemonic(int(words))
    try:
        with create_wallet(datadir, name, spec, phrase, passphrase) as w:
            address = w.receive_address()
    except WalletError as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"cannot create wallet in {datadir}: {exc.strerror or exc}") from None
    note = "" if passphrase else "\nWARNING: this wallet is NOT encrypted (--no-passphrase)."
    emit(ctx, {"name": name, "address": address, "mnemonic": phrase,
               "encrypted": passphrase is not None},
         f"created wallet {name!r}\naddress   {address}\nrecovery phrase (write it down; it is "
         f"shown only once):\n  {phrase}{note}")


@wallet.command("restore")
@click.argument("name")
@click.option("--mnemonic-file", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="File holding the recovery phrase.")
@click.option("--no-passphrase", is_flag=True, help="Store keys unencrypted.")
@passphrase_file_option
def restore_cmd(name: str, mnemonic_file: Path, no_passphrase: bool,
                passphrase_file: Path | None) -> None:
    """Restore a wallet from its recovery phrase and find its funds (gap limit 20).

    \b
    Example:
        o2ocli wallet restore alice --mnemonic-file ./alice.words
    """
    from o2ocli.rpc.client import NodeUnreachable
    from o2ocli.wallet.hdpath import HDError
    from o2ocli.wallet.service import sync
    from o2ocli.wallet.wallet import WalletError, create_wallet

    ctx = get_context()
    datadir = resolve_datadir(ctx)
    spec = resolve_spec(ctx, datadir)
    try:
        phrase = mnemonic_file.read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read {mnemonic_file}: {exc.strerror}") from None
    from o2ocli.wallet.bip39 import validate_mnemonic

    try:
        validate_mnemonic(phrase)
    except HDError as exc:
        raise CliError(f"invalid recovery phrase: {exc}") from None
    passphrase = new_passphrase(passphrase_file, no_passphrase)
    try:
        with create_wallet(datadir, name, spec, phrase, passphrase) as w:
            scanned = True
            try:
                with node_errors():
                    sync(w, rpc_client(ctx))
            except CliError as exc:  # the wallet exists now: scanning can wait
                scanned = False
                reason = exc.message
            address = w.receive_address()
    except (WalletError, HDError) as exc:
        raise CliError(str(exc)) from None
    except NodeUnreachable:  # pragma: no cover - handled above
        scanned = False
    text = f"restored wallet {name!r}; address {address}"
    if not scanned:
        click.echo(f"note: could not scan for funds now ({reason}); "
                   "addresses will be scanned on first use", err=True)
    emit(ctx, {"name": name, "address": address, "scanned": scanned}, text)


@wallet.command("list")
def list_cmd() -> None:
    """The wallets of this datadir.

    \b
    Example:
        o2ocli wallet list
    """
    from o2ocli.wallet.wallet import list_wallets

    ctx = get_context()
    datadir = resolve_datadir(ctx)
    names = list_wallets(datadir)
    text = "\n".join(names) or f"no wallets in {datadir} (create one: o2ocli wallet create NAME)"
    emit(ctx, {"wallets": names}, text)


@wallet.command("address")
@click.option("--new", "new", is_flag=True, help="Derive a fresh receiving address.")
def address_cmd(new: bool) -> None:
    """The wallet's receiving address.

    \b
    Example:
        o2ocli -w alice wallet address
        o2ocli -w alice wallet address --new
    """
    ctx = get_context()
    with open_wallet(ctx) as w:
        address = w.receive_address(new=new)
    emit(ctx, {"address": address}, address)


@wallet.command("balance")
def balance_cmd() -> None:
    """Confirmed balance and pending (mempool) change, per asset.

    \b
    Example:
        o2ocli -w alice wallet balance
    """
    from o2ocli.amounts import format_amount
    from o2ocli.wallet.service import balances

    ctx = get_context()
    with open_wallet(ctx) as w, node_errors():
        client = rpc_client(ctx)
        rows = balances(w, client)
        spec = w.spec
        names = asset_labels(client, spec, [b.asset for b in rows])
        data = []
        for b in rows:
            symbol, decimals = names.get(b.asset, (b.asset.hex(), 0))
            data.append({
                "asset": symbol,
                "asset_id": b.asset.hex(),
                "confirmed": format_amount(b.confirmed, decimals),
                "unconfirmed": format_amount(b.unconfirmed, decimals),
            })
    emit(ctx, {"balances": data},
         lambda: table([[d["asset"], d["confirmed"], d["unconfirmed"]] for d in data],
                       ["asset", "confirmed", "unconfirmed"]))


def _parse_send_outputs(spec: Any, to: tuple[str, ...], amounts: tuple[str, ...],
                        splits: tuple[str, ...], asset: bytes,
                        decimals: int | None = None) -> list[Any]:
    from o2ocli.core.locks import PayToAddress
    from o2ocli.core.tx import NATIVE_ASSET, TxOut
    from o2ocli.wallet.builder import split_amount

    def addr(text: str) -> bytes:
        return parse_address(spec, text)

    def amount(text: str) -> int:
        try:
            if asset == NATIVE_ASSET:
                return spec.amount(text)
            from o2ocli.amounts import parse_amount

            return parse_amount(text, decimals or 0)
        except ValueError as exc:
            raise CliError(f"bad amount: {exc}") from None

    if splits:
        if to or len(amounts) != 1:
            raise click.UsageError("--split goes with exactly one --amount and no --to")
        recipients, percents = [], []
        for item in splits:
            where, sep, pct = item.rpartition("=")
            if not sep or not pct.isdigit():
                raise click.UsageError(f"--split expects ADDRESS=PERCENT, got {item!r}")
            recipients.append(addr(where))
            percents.append(int(pct))
        try:
            shares = split_amount(amount(amounts[0]), percents)
        except ValueError as exc:
            raise CliError(str(exc)) from None
        return [TxOut(asset, s, PayToAddress(r)) for r, s in zip(recipients, shares, strict=True)]
    if not to:
        raise click.UsageError("say whom to pay: --to ADDRESS --amount X (or --split)")
    if len(to) != len(amounts):
        raise click.UsageError("give one --amount per --to")
    pairs = zip(to, amounts, strict=True)
    return [TxOut(asset, amount(a), recipient_lock(spec, t)) for t, a in pairs]


@wallet.command("send")
@click.option("--to", "to", multiple=True, metavar="ADDRESS", help="Recipient (repeatable).")
@click.option("--amount", "amounts", multiple=True, metavar="X",
              help="Amount for the matching --to (decimal, display units).")
@click.option("--split", "splits", multiple=True, metavar="ADDRESS=PCT",
              help="Divide the one --amount among recipients by whole percentages.")
@click.option("--asset", default=None, metavar="SYM",
              help="Asset to send (default: the native coin).")
@click.option("--fee", default=None, metavar="X", help="Absolute fee instead of the fee rate.")
@click.option("--max-inputs", type=click.IntRange(1, 10_000), default=500, show_default=True)
@click.option("--dry-run", is_flag=True, help="Print the signed raw tx; do not broadcast.")
@click.option("--unsigned", is_flag=True, help="Sign nothing: write a partially signed file.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="For --unsigned.")
@spend_options
@passphrase_file_option
def send_cmd(to: tuple[str, ...], amounts: tuple[str, ...], splits: tuple[str, ...],
             asset: str | None, fee: str | None, max_inputs: int, dry_run: bool,
             unsigned: bool, out: Path | None,
             yes: bool, allow_high_fee: bool, fee_rate: str | None, priority: str | None,
             passphrase_file: Path | None) -> None:
    """Pay one or more recipients; change goes to a fresh change address.

    The fee defaults to the node's minimum relay fee rate for the exact size
    of the signed transaction (--fee-rate RATE in base units per byte, or
    --priority from the node's estimate).  On a terminal the payment is
    summarised and needs a yes at 'Send? [y/N]' (--yes skips it); a fee above
    the cap needs --allow-high-fee.  --split divides the amount by percentages;
    each share is rounded down to a base unit and the remainder goes to the
    first recipient.

    \b
    Example:
        o2ocli -w alice wallet send --to dAbc… --amount 12.5
        o2ocli -w alice wallet send --to dA… --amount 1 --to dB… --amount 2
        o2ocli -w shop wallet send --amount 100 --split dMerchant…=70 \\
            --split dCourier…=20 --split dPlatform…=10
        o2ocli -w shared wallet send --to dAbc… --amount 5 --unsigned --out pay.psbt
    """
    from o2ocli.core.tx import NATIVE_ASSET
    from o2ocli.wallet.fees import approve
    from o2ocli.wallet.service import broadcast, prepare_payment, record_change

    ctx = get_context()
    if fee is not None and (fee_rate is not None or priority is not None):
        raise click.UsageError("--fee is a whole fee: leave out --fee-rate and --priority")
    with open_wallet(ctx) as w:
        check_send_mode(w, unsigned, out, dry_run)
        spec = w.spec
        decimals = spec.native_decimals
        if asset is None or asset.upper() == spec.native_symbol:
            asset_id = NATIVE_ASSET
        else:
            from o2ocli.wallet.errors import O2OError
            from o2ocli.wallet.payloadtx import get_token

            try:
                with node_errors():
                    info = get_token(rpc_client(ctx), asset)
                asset_id, decimals = bytes.fromhex(info["asset"]), info["decimals"]
            except (CliError, O2OError) as exc:
                # Not a token: a 64-hex asset id (an item, an authority) moves as is.
                if len(asset) != 64 or any(c not in "0123456789abcdef" for c in asset.lower()):
                    if isinstance(exc, CliError) and exc.exit_code != 1:
                        raise
                    raise CliError(f"unknown asset {asset!r}: no token with that symbol on "
                                   "this chain (see: o2ocli token list)") from None
                asset_id, decimals = bytes.fromhex(asset), 0
        outputs = _parse_send_outputs(spec, to, amounts, splits, asset_id, decimals)
        fixed_fee = None
        if fee is not None:
            try:
                fixed_fee = spec.amount(fee, "fee")
            except ValueError as exc:
                raise CliError(f"bad fee: {exc}") from None
        guard(ctx, w, rpc_client(ctx), yes=yes, allow_high_fee=allow_high_fee,
              fee_rate=fee_rate, priority=priority)
        if out is not None:
            return send_unsigned(ctx, w, outputs, fixed_fee, max_inputs, out)
        passphrase = unlock_passphrase(w, passphrase_file)
        with node_errors():
            unlocked = w.unlock(passphrase)
            client = rpc_client(ctx)
            tx, plan = prepare_payment(w, client, outputs, unlocked, fixed_fee=fixed_fee,
                                       max_inputs=max_inputs)
            raw = tx.to_bytes().hex()
            fee_text = spec.format(plan.fee)
            if dry_run:
                record_change(w, plan)
                emit(ctx, {"txid": tx.txid.hex(), "fee": fee_text, "raw": raw},
                     f"{raw}\n(not broadcast; txid {tx.txid.hex()}, fee {fee_text})")
                return
            approve(w, tx, plan)
            txid = broadcast(client, tx)
            record_change(w, plan)
    emit(ctx, {"txid": txid, "fee": fee_text},
         f"sent {txid}\nfee {fee_text} {spec.native_symbol}")


@wallet.command("export-key")
@click.argument("address")
@passphrase_file_option
def export_key_cmd(address: str, passphrase_file: Path | None) -> None:
    """Print the private key of ADDRESS in WIF (handle with care).

    \b
    Example:
        o2ocli -w alice wallet export-key dAbc…
    """
    from o2ocli.crypto.address import encode_wif

    ctx = get_context()
    with open_wallet(ctx) as w:
        pkh = parse_address(w.spec, address)
        if not w.owns(pkh):
            raise CliError(f"address {address} is not in wallet {w.name!r}")
        passphrase = unlock_passphrase(w, passphrase_file)
        with node_errors():
            key = w.key_for(pkh, w.unlock(passphrase))
        wif = encode_wif(key.secret, version=w.spec.wif_version)
    emit(ctx, {"wif": wif}, wif)


def _read_key(wif: str | None, key_file: Path | None) -> str:
    """The WIF text to import: the argument, ``--key-file``, a hidden prompt on a terminal,
    else one line of standard input."""
    if wif is not None and key_file is not None:
        raise click.UsageError("give the key either as WIF or with --key-file, not both")
    if wif is not None:
        return wif
    if key_file is not None:
        try:
            return key_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise CliError(f"cannot read key file {key_file}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise CliError(f"key file {key_file} is not text (expected one WIF line)") from None
    if sys.stdin.isatty():
        return click.prompt("Private key (WIF)", hide_input=True, err=True)
    line = sys.stdin.readline()
    if not line.strip():
        raise CliError("no private key: give it on standard input, with --key-file FILE, "
                       "or as WIF")
    return line


@wallet.command("import-key")
@click.argument("wif", required=False)
@click.option(
    "--key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Read the key (one WIF line) from FILE.",
)
@passphrase_file_option
def import_key_cmd(wif: str | None, key_file: Path | None, passphrase_file: Path | None) -> None:
    """Add a private key (WIF, this chain's version) to the wallet.

    Without WIF the key is read from --key-file FILE, or from standard input:
    prompted without echo on a terminal, else one line.  A key typed as WIF on the
    command line ends up in your shell history (and, while the command runs, in
    the process list): prefer standard input or --key-file.

    \b
    Example:
        o2ocli -w alice wallet import-key < alice.key
        o2ocli -w alice wallet import-key --key-file alice.key
    """
    from o2ocli.crypto.address import AddressError, decode_wif
    from o2ocli.crypto.keys import InvalidKeyError, PrivateKey

    ctx = get_context()
    with open_wallet(ctx) as w:
        text = _read_key(wif, key_file)
        try:
            secret, _ = decode_wif(text.strip(), version=w.spec.wif_version)
            key = PrivateKey(secret)
        except (AddressError, InvalidKeyError) as exc:
            raise CliError(f"bad private key: {exc}") from None
        passphrase = unlock_passphrase(w, passphrase_file)
        with node_errors():
            pkh = w.import_key(key, passphrase)
        address = w.spec.address(pkh)
    emit(ctx, {"address": address}, address)
