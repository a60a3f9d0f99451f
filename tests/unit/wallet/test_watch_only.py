"""Watch-only wallets: made from an account xpub, same addresses, no signing."""

from __future__ import annotations

import pytest

from o2ocli.chainspec import load_spec
from o2ocli.crypto.keys import PrivateKey
from o2ocli.wallet.hd import CHANGE, EXTERNAL, generate_mnemonic
from o2ocli.wallet.invoices import create_invoice, get_invoice, iter_invoices
from o2ocli.wallet.wallet import Wallet, WalletError, create_wallet

SPEC = load_spec("devnet")


def test_twin_derives_the_same_addresses_and_refuses_to_sign(tmp_path):
    owner = create_wallet(tmp_path, "shop", SPEC, generate_mnemonic(), None)
    xpub = owner.export_xpub()
    twin = create_wallet(tmp_path, "till", SPEC, None, None, xpub=xpub)
    assert twin.watch_only and not owner.watch_only
    assert twin.export_xpub() == xpub
    for chain in (EXTERNAL, CHANGE):
        for _ in range(3):
            assert twin.issue(chain) == owner.issue(chain)
    with pytest.raises(WalletError, match="watch-only: it holds no private keys"):
        twin.unlock(None)
    with pytest.raises(WalletError, match="watch-only"):
        twin.import_key(PrivateKey(bytes(31) + b"\x01"), None)
    twin.close()
    with Wallet.open(tmp_path, "till", SPEC) as again:
        assert again.watch_only and again.db.get(b"seed") is None
    owner.close()


@pytest.mark.parametrize("bad, message", [
    ("xpub-nonsense", "bad xpub"),
    ("PRIVATE", "private extended key"),
    ("MASTERPUB", "not an account key"),
])
def test_bad_xpubs_are_refused(tmp_path, bad, message):
    from o2ocli.wallet.hd import ExtendedKey, mnemonic_to_seed

    master = ExtendedKey.from_seed(mnemonic_to_seed(generate_mnemonic()))
    text = {"PRIVATE": master.serialize(), "MASTERPUB": master.serialize(private=False)}.get(
        bad, bad)
    with pytest.raises(WalletError, match=message):
        create_wallet(tmp_path, "till", SPEC, None, None, xpub=text)
    assert not (tmp_path / "wallets" / "till").exists()


def test_invoices_get_fresh_addresses_and_persist(tmp_path):
    with create_wallet(tmp_path, "shop", SPEC, generate_mnemonic(), None) as w:
        made = [create_invoice(w, units=10 + i, asset="O2O", asset_id="00" * 32, decimals=8,
                               label=None, memo=None, expires=None, now=1) for i in range(3)]
        assert len({m["address"] for m in made}) == 3
        assert len({m["id"] for m in made}) == 3
    with Wallet.open(tmp_path, "shop", SPEC) as w:
        assert sorted(i["id"] for i in iter_invoices(w)) == sorted(m["id"] for m in made)
        assert get_invoice(w, made[1]["id"])["units"] == 11
        assert get_invoice(w, "../x") is None


def test_till_invoices_never_reuse_the_owners_receiving_addresses(tmp_path):
    owner = create_wallet(tmp_path, "shop", SPEC, generate_mnemonic(), None)
    till = create_wallet(tmp_path, "till", SPEC, None, None, xpub=owner.export_xpub())
    invoice_addresses = {
        create_invoice(till, units=1, asset="O2O", asset_id="00" * 32, decimals=8, label=None,
                       memo=None, expires=None, now=1)["address"] for _ in range(5)}
    handed_out = {owner.receive_address(new=True) for _ in range(5)}
    assert not invoice_addresses & handed_out
    # The owner watches the invoice chain too (its gap limit), so it sees the payments.
    owner.extend_gap(set())
    watched = {SPEC.address(p) for p in owner.pubkey_hashes()}
    assert invoice_addresses <= watched
    till.close()
    owner.close()
