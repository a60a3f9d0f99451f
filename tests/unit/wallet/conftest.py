"""Fixtures for the wallet tests that talk to a node (helpers in ``wallet_node``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from wallet_node import COIN, MNEMONICS, PASS, SPEC, DevNode, dev_key, new_wallet

from o2ocli.core.locks import PayToAddress
from o2ocli.core.tx import NATIVE_ASSET, TxOut
from o2ocli.wallet.o2o import send
from o2ocli.wallet.service import prepare_payment
from o2ocli.wallet.wallet import Wallet, create_wallet


@pytest.fixture
def mining(tmp_path: Path) -> Iterator[DevNode]:
    """A devnet node that mines whenever transactions wait."""
    dev = DevNode(tmp_path / "node", validator=True)
    yield dev
    dev.stop()


@pytest.fixture
def wallets(tmp_path: Path, mining: DevNode) -> Iterator[tuple[Wallet, Wallet]]:
    """alice (holding the devnet funds) and bob (paid 10 coins, mined)."""
    alice = create_wallet(tmp_path / "w", "alice", SPEC, MNEMONICS["alice"], PASS,
                          imported=[dev_key("funds")], scrypt_n=2**10)
    bob, _ = new_wallet(tmp_path / "w", "bob")
    tx, plan = prepare_payment(alice, mining.client,
                               [TxOut(NATIVE_ASSET, 10 * COIN, PayToAddress(bob.primary_pkh()))],
                               alice.unlock(PASS))
    mining.wait_mined(send(alice, mining.client, tx, plan))
    yield alice, bob
    bob.close()
    alice.close()
