"""A real devnet node for the wallet tests, in this process.

:class:`DevNode` runs a :class:`~o2ocli.node.runtime.Node` (devnet spec,
LevelDB in a temp dir, its JSON-RPC server on 127.0.0.1, port 0) on its own
event loop in a daemon thread; ``client`` is the real
:class:`~o2ocli.rpc.client.RpcClient` the CLI uses, with the node's cookie.
With ``validator=True`` the node seals with the devnet validator key, only
while transactions wait (``--dev-period 0``), so a payment is mined within a
second or two; without it nothing is ever mined (mempool states stay put).

Wallets are real LevelDB wallets (fast scrypt) holding real keys; the
devnet's public funds key can be imported to fund one.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from o2ocli.chainspec import ChainSpec, load_spec
from o2ocli.crypto.address import decode_wif
from o2ocli.crypto.keys import PrivateKey
from o2ocli.node.datadir import cookie_path, init_datadir
from o2ocli.node.runtime import Node, NodeConfig
from o2ocli.rpc.client import RpcClient
from o2ocli.wallet.wallet import Unlocked, Wallet, create_wallet

SPEC: ChainSpec = load_spec("devnet")
COIN = 10**SPEC.native_decimals
PASS = "wallet test passphrase"
FAST_SCRYPT = 2**10
TIMEOUT = 20.0
MNEMONICS = {
    "alice": "abandon abandon abandon abandon abandon abandon abandon abandon abandon "
             "abandon abandon about",
    "bob": "legal winner thank year wave sausage worth useful legal winner thank yellow",
    "carol": "letter advice cage absurd amount doctor acoustic avoid letter advice cage above",
    "dave": "zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo wrong",
}


def dev_key(name: str) -> PrivateKey:
    """The devnet's public ``funds`` or ``validator`` key."""
    secret, _ = decode_wif(SPEC.dev_keys[name], version=SPEC.wif_version)
    return PrivateKey(secret)


class DevNode:
    """A devnet node on a background event loop, with a real RPC client."""

    def __init__(self, datadir: Path, *, validator: bool) -> None:
        init_datadir(datadir, SPEC)
        self.node = Node(NodeConfig(
            datadir=datadir, spec=SPEC, rpc_port=0,
            validator_key=dev_key("validator") if validator else None,
            only_with_txs=True, use_bootstrap=False, discover=False))
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        try:
            self._run(self.node.start())
        except BaseException:
            self._stop_loop()
            raise
        self.client = RpcClient(self.node.rpc_url, cookie_path=cookie_path(datadir))

    def _run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(TIMEOUT)

    def call(self, method: str, *params: Any) -> Any:
        return self.client.call(method, *params)

    def wait_mined(self, txid: str, *, final: bool = False) -> dict[str, Any]:
        """The node's ``gettx`` once ``txid`` is in a block (and final, if asked)."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            info = self.call("gettx", txid)
            if info["height"] is not None and (info["final"] or not final):
                return info
            assert time.monotonic() < deadline, f"{txid} not mined: {info}"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        try:
            self._run(self.node.shutdown())
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def new_wallet(datadir: Path, name: str) -> tuple[Wallet, Unlocked]:
    """A fresh encrypted wallet ``name`` (fixed mnemonic), opened and unlocked."""
    wallet = create_wallet(datadir, name, SPEC, MNEMONICS[name], PASS, scrypt_n=FAST_SCRYPT)
    return wallet, wallet.unlock(PASS)


def address(wallet: Wallet) -> str:
    """The wallet's primary (first receiving) address."""
    return SPEC.address(wallet.primary_pkh())


def mined(node: DevNode, wallet: Wallet, built: tuple) -> str:
    """Broadcast the (tx, plan, ...) ``wallet`` built (recording its change);
    returns the txid once mined."""
    from o2ocli.wallet.o2o import send

    txid = send(wallet, node.client, built[0], built[1])
    node.wait_mined(txid)
    return txid
