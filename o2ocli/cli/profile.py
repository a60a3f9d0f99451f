"""``o2ocli profile …``: commit to your data on chain, disclose parts of it to one merchant."""

from __future__ import annotations

import json
import os
from pathlib import Path

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

__all__ = ["profile"]


@click.group()
def profile() -> None:
    """Your profile: attributes kept in your wallet, committed on chain by a hash only.

    The wallet keeps each attribute (KEY=VALUE) with a random salt, encrypted
    like its keys; the chain gets only the Merkle root over the salted
    attributes.  You then disclose chosen attributes to one merchant, who
    checks them against the root and against your consent grants.

    \b
    Example:
        o2ocli -w alice profile commit --data phone=+30-210-555 --data city=Athens
        o2ocli -w alice consent grant dShop… phone
        o2ocli -w alice profile disclose --to dShop… --keys phone --out phone.json
        o2ocli -w shop profile verify phone.json
    """


@profile.command("commit")
@click.option("--data", "data", multiple=True, metavar="KEY=VALUE",
              help="An attribute (repeatable); KEY is 1-32 of a-z 0-9 . _ -.")
@click.option("--data-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="A file of KEY=VALUE lines (after the --data items).")
@passphrase_file_option
def commit_cmd(data: tuple[str, ...], data_file: Path | None,
               passphrase_file: Path | None) -> None:
    """Commit to a new set of attributes (replaces your previous commitment).

    \b
    Example:
        o2ocli -w alice profile commit --data phone=+30-210-555 --data-file more.txt
    """
    from o2ocli.wallet.payloadtx import send
    from o2ocli.wallet.profile import commit_profile, parse_attributes, remember_commitment

    ctx = get_context()
    with open_wallet(ctx) as w, node_errors():
        text = None
        if data_file is not None:
            try:
                text = data_file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise CliError(f"cannot read {data_file}: {exc}") from None
        attributes = parse_attributes(list(data), text)
        passphrase = unlock_passphrase(w, passphrase_file)
        unlocked = w.unlock(passphrase)
        client = rpc_client(ctx)
        tx, plan, commitment = commit_profile(w, client, unlocked, attributes)
        remember_commitment(w, passphrase, commitment)
        txid = send(w, client, tx, plan)
    emit(ctx, {"txid": txid, "root": commitment.root.hex(), "leaves": len(attributes),
               "keys": sorted(attributes)},
         f"committed {len(attributes)} attributes ({', '.join(sorted(attributes))}) "
         f"in {txid}")


@profile.command("show")
@passphrase_file_option
def show_cmd(passphrase_file: Path | None) -> None:
    """Your attributes in your newest commitment (read from the wallet only).

    \b
    Example:
        o2ocli -w alice profile show
    """
    from o2ocli.wallet.profile import load_store

    ctx = get_context()
    with open_wallet(ctx) as w, node_errors():
        store = load_store(w, unlock_passphrase(w, passphrase_file))
    if not store:
        raise CliError("this wallet has made no profile commitment")
    last = store[-1]
    attrs = {k.decode(): v.decode() for k, (_, v) in sorted(last.attributes.items())}
    emit(ctx, {"txid": last.txid.hex(), "root": last.root.hex(), "attributes": attrs},
         lambda: f"commitment {last.txid.hex()}\n"
         + table([[k, v] for k, v in attrs.items()], ["key", "value"]))


@profile.command("history")
@click.option("--address", default=None, metavar="ADDRESS",
              help="Someone else's commitments (default: this wallet's primary address).")
def history_cmd(address: str | None) -> None:
    """Every profile commitment of an address on chain, oldest first.

    \b
    Example:
        o2ocli -w alice profile history
    """
    ctx = get_context()
    with node_errors():
        if address is None:
            with open_wallet(ctx) as w:
                address = w.spec.address(w.primary_pkh())
        items = rpc_client(ctx).call("listprofilehistory", address)
    emit(ctx, {"commitments": items}, lambda: table(
        [[c["txid"], c["height"], c["leaves"], "current" if c["current"] else "superseded"]
         for c in items], ["commitment", "height", "leaves", "status"],
    ) if items else "no profile commitments")


@profile.command("disclose")
@click.option("--to", "to", required=True, metavar="ADDRESS", help="The recipient (merchant).")
@click.option("--keys", required=True, metavar="K1,K2", help="Attributes to disclose.")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the disclosure file (created, mode 0600).")
@passphrase_file_option
def disclose_cmd(to: str, keys: str, out: Path, passphrase_file: Path | None) -> None:
    """Write a disclosure of some attributes of your current commitment for one recipient.

    Each key needs an active consent grant of the same scope to the recipient.

    \b
    Example:
        o2ocli -w alice profile disclose --to dShop… --keys phone,city --out shop.json
    """
    from o2ocli.rpc import errors as E
    from o2ocli.rpc.errors import RpcError
    from o2ocli.wallet.disclosure import choose_grants, make_disclosure
    from o2ocli.wallet.profile import check_key, load_store

    ctx = get_context()
    names = [k.strip() for k in keys.split(",") if k.strip()]
    if not names or len(set(names)) != len(names):
        raise CliError("--keys needs distinct attribute names, separated by commas")
    for name in names:
        with node_errors():
            check_key(name)
    with open_wallet(ctx) as w, node_errors():
        recipient = parse_address(w.spec, to)
        passphrase = unlock_passphrase(w, passphrase_file)
        store = load_store(w, passphrase)
        client = rpc_client(ctx)
        user = w.primary_pkh()
        try:
            current = client.call("getprofile", w.spec.address(user))["txid"]
        except RpcError as exc:
            if exc.code != E.NOT_FOUND:
                raise
            raise CliError("this wallet has no profile commitment in the chain yet") from None
        commitment = next((c for c in store if c.txid.hex() == current), None)
        if commitment is None:
            raise CliError(f"the current commitment {current} is not in this wallet's store")
        grants = choose_grants(client, w.spec, user, recipient, names, commitment.txid)
        doc = make_disclosure(w, w.unlock(passphrase), commitment, recipient, grants)
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise CliError(f"cannot create {out}: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    emit(ctx, {"file": str(out), "to": to, "commitment": doc["commitment"], "keys": names},
         f"wrote {out}: {', '.join(names)} for {to}")


@profile.command("verify")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def verify_cmd(file: Path) -> None:
    """Check a disclosure addressed to this wallet; exit 0 only if every check holds.

    Checks, in order: the file's format and chain, the recipient (this
    wallet's primary address), the commitment (the user's current one), each
    attribute's proof against its on-chain root, each consent grant (by the
    user, to you, for that key, active, for that commitment) and the
    signature binding the file to you.  Prints the attributes, or the first
    check that failed.

    \b
    Example:
        o2ocli -w shop profile verify alice-phone.json
    """
    from o2ocli.wallet.disclosure import DisclosureRefused, check_format, verify_disclosure

    ctx = get_context()
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read {file}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise CliError(f"refused: format: not JSON ({exc.msg}, line {exc.lineno})") from None
    with open_wallet(ctx) as w, node_errors():
        try:
            check_format(doc, w.spec)  # before asking the node anything
            attrs = verify_disclosure(doc, w.primary_pkh(), rpc_client(ctx), w.spec)
        except DisclosureRefused as exc:
            raise CliError(f"refused: {exc}", data={"check": exc.check,
                                                    "message": exc.message}) from None
    emit(ctx, {"verified": True, "user": doc["user"], "commitment": doc["commitment"],
               "attributes": attrs},
         lambda: f"verified: {doc['user']} (commitment {doc['commitment']})\n"
         + table([[k, v] for k, v in attrs.items()], ["key", "value"]))
