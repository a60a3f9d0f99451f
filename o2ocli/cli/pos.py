"""``o2ocli pos``: the point-of-sale server (``serve``) and its webhook deliveries."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from .common import (
    CliError,
    emit,
    get_context,
    open_wallet,
    parse_host_port,
    resolve_datadir,
    rpc_client,
    table,
)


def _deliveries_dir(datadir: Path, wallet: str) -> Path:
    return datadir / "pos" / wallet / "deliveries"


@click.group()
def pos() -> None:
    """Point of sale: a till web page, REST API, webhooks and events on a watch-only wallet.

    \b
    Example:
        o2ocli -w till pos serve --listen 127.0.0.1:8080 --webhook https://shop.example/hook
        o2ocli -w till pos deliveries
    """


@pos.command("serve")
@click.option("-w", "--wallet", "wallet_name", default=None, metavar="NAME",
              help="The till's wallet (default: the global -w).")
@click.option("--listen", default="127.0.0.1:8080", show_default=True, metavar="HOST:PORT")
@click.option("--webhook", "webhooks", multiple=True, metavar="URL",
              help="POST every invoice state change here (repeatable).")
@click.option("--webhook-secret", type=click.Path(dir_okay=False, path_type=Path),
              help="HMAC key file (default: DATADIR/pos-webhook.key, created 0600).")
@click.option("--webhook-timeout", type=click.FloatRange(0.1, 60), default=5.0,
              show_default=True, metavar="SECONDS", help="Give up on one attempt after this.")
@click.option("--webhook-retry-base", type=click.FloatRange(0.05, 60), default=0.5, hidden=True)
def serve_cmd(wallet_name: str | None, listen: str, webhooks: tuple[str, ...],
              webhook_secret: Path | None, webhook_timeout: float,
              webhook_retry_base: float) -> None:
    """Run the till: web page at /, REST API under /api, SSE at /api/events.

    The API key is DATADIR/pos-api.key (created 0600 on first start); send it as
    "Authorization: Bearer KEY" to create or list invoices.

    \b
    Example:
        o2ocli -w till pos serve --listen 127.0.0.1:8080 \\
            --webhook http://127.0.0.1:9000/hook --webhook-secret hook.key
    """
    import asyncio

    from o2ocli.pos import API_KEY_FILE, load_or_create_secret
    from o2ocli.pos.server import PosServer, serve
    from o2ocli.pos.webhooks import DeliveryStore

    ctx = get_context()
    host, port = parse_host_port(listen, "--listen")
    for url in webhooks:
        if not url.startswith(("http://", "https://")):
            raise click.BadParameter(f"expected an http(s) URL, got {url!r}",
                                     param_hint="--webhook")
    datadir = resolve_datadir(ctx)
    try:
        api_key, created = load_or_create_secret(datadir / API_KEY_FILE)
        if webhook_secret is not None:
            secret = webhook_secret.read_text(encoding="utf-8").strip()
            if not secret:
                raise CliError(f"webhook secret file {webhook_secret} is empty")
        else:
            secret, _ = load_or_create_secret(datadir / "pos-webhook.key")
    except OSError as exc:
        raise CliError(f"cannot read or create a key file: {exc.strerror or exc}") from None
    with open_wallet(ctx, wallet_name) as w:
        store = DeliveryStore(_deliveries_dir(datadir, w.name))
        client = rpc_client(ctx)
        server = PosServer(w, client, api_key, store, list(webhooks), secret.encode(),
                           webhook_timeout=webhook_timeout, retry_base=webhook_retry_base)
        if created:
            click.echo(f"created API key in {datadir / API_KEY_FILE}", err=True)

        def ready(bound: int) -> None:
            click.echo(f"pos serving wallet {w.name!r} on http://{host}:{bound}/", err=True)

        try:
            asyncio.run(serve(server, host, port, ready))
        except OSError as exc:
            raise CliError(f"cannot listen on {listen}: {exc.strerror or exc}") from None


@pos.command("deliveries")
@click.option("-w", "--wallet", "wallet_name", default=None, metavar="NAME",
              help="The till's wallet (default: the global -w).")
@click.option("--all", "show_all", is_flag=True, help="Also pending ones not failed yet.")
def deliveries_cmd(wallet_name: str | None, show_all: bool) -> None:
    """Webhook deliveries that failed (still retried, or given up).

    \b
    Example:
        o2ocli -w till pos deliveries
    """
    from o2ocli.pos.webhooks import DeliveryStore

    ctx = get_context()
    folder = _deliveries_dir(resolve_datadir(ctx), wallet_name or ctx.wallet)
    items: list[dict[str, Any]] = []
    if folder.is_dir():
        items = [i for i in DeliveryStore(folder).items() if show_all or i["attempts"] > 0]
    data = []
    for item in items:
        body = json.loads(item["body"])
        data.append({"id": item["id"], "url": item["url"], "status": item["status"],
                     "attempts": item["attempts"], "last_error": item["last_error"],
                     "invoice": body.get("invoice"), "state": body.get("state"),
                     "next_attempt": item["next_at"] if item["status"] == "pending" else None})
    emit(ctx, {"deliveries": data},
         lambda: table([[d["id"], d["invoice"], d["state"], d["status"], d["attempts"],
                         d["last_error"] or ""] for d in data],
                       ["delivery", "invoice", "state", "status", "attempts", "last error"])
         if data else "no failed deliveries")
