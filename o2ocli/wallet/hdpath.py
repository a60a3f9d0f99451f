"""BIP44 wallet layout and BIP32 derivation paths, and the error every HD failure raises.

Wallet layout follows BIP44: ``m / 44' / COIN_TYPE' / account' / chain / index``.
:mod:`o2ocli.wallet.hd` (extended keys) and :mod:`o2ocli.wallet.bip39` (mnemonics) build on it.
"""

from __future__ import annotations

import re

__all__ = [
    "ACCOUNT_PATH",
    "CHANGE",
    "COIN_TYPE",
    "EXTERNAL",
    "GAP_LIMIT",
    "HARDENED",
    "INVOICE",
    "INVOICE_GAP_LIMIT",
    "MAX_DEPTH",
    "HDError",
    "address_path",
    "format_index",
    "parse_path",
]

#: BIP44 coin type of this project's chain. 7171 is the project's own choice, not a SLIP-0044
#: registration. Changing it changes every address a mnemonic produces.
COIN_TYPE = 7171
#: Path of the first (and for now only) account: ``m / purpose' / coin_type' / account'``.
ACCOUNT_PATH = f"m/44'/{COIN_TYPE}'/0'"
#: BIP44 chain of receiving addresses.
EXTERNAL = 0
#: BIP44 chain of change addresses.
CHANGE = 1
#: BIP44 gap limit: stop scanning a chain after this many unused addresses in a row.
GAP_LIMIT = 20
#: This project's chain of invoice addresses (``invoice create``, ``pos serve``): apart from
#: the receiving chain, so a till (a watch-only twin) and its owner's ``wallet address`` never
#: hand out the same address.  Not a BIP44 chain: other BIP44 wallets do not scan it.
INVOICE = 2
#: Gap limit of the invoice chain: a till leaves many invoices unpaid.
INVOICE_GAP_LIMIT = 100

#: First hardened child index (2**31).
HARDENED = 0x80000000
#: Deepest BIP32 level (the depth is one byte).
MAX_DEPTH = 255

_MAX_PATH_LEN = 4096
_PATH_RE = re.compile(r"m((?:/(?:0|[1-9][0-9]{0,9})['hH]?)*)", re.ASCII)


class HDError(ValueError):
    """Raised for an invalid mnemonic, seed, derivation path or extended key."""


def parse_path(path: str) -> list[int]:
    """Parse ``"m/44'/7171'/0'/0/5"`` into child indexes (hardened ones have 2**31 added).

    ``'``, ``h`` and ``H`` mark a hardened step. A component is a decimal number below 2**31
    with no sign, space or leading zero. ``"m"`` alone gives ``[]``.
    """
    if not isinstance(path, str):
        raise HDError(f"derivation path must be a str, got {type(path).__name__}")
    if len(path) > _MAX_PATH_LEN or not _PATH_RE.fullmatch(path):
        raise HDError(f"malformed derivation path {path[:64]!r} (expected e.g. m/44'/0'/0/5)")
    indexes = []
    for part in path.split("/")[1:]:
        hardened = part[-1] in "'hH"
        number = int(part[:-1] if hardened else part)
        if number >= HARDENED:
            raise HDError(f"path component {part!r} is out of range (must be below 2**31)")
        indexes.append(number + HARDENED if hardened else number)
    if len(indexes) > MAX_DEPTH:
        raise HDError(f"derivation path is deeper than {MAX_DEPTH} levels")
    return indexes


def address_path(chain: int, index: int) -> str:
    """Path of address *index* on *chain* (:data:`EXTERNAL` or :data:`CHANGE`) of account 0."""
    if type(chain) is not int or chain not in (EXTERNAL, CHANGE):
        raise HDError(f"chain must be EXTERNAL (0) or CHANGE (1), got {chain!r}")
    if type(index) is not int or not 0 <= index < HARDENED:
        raise HDError(f"address index must be an int in [0, 2**31), got {index!r}")
    return f"{ACCOUNT_PATH}/{chain}/{index}"


def format_index(index: int) -> str:
    """A child index as a path component: ``5`` or ``44'`` (hardened)."""
    return f"{index - HARDENED}'" if index >= HARDENED else str(index)
