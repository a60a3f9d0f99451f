"""BIP39 mnemonics (English only), from trezor's ``mnemonic`` package.

The package does generation, checksum validation and the PBKDF2 seed; this module adds
normalization and readable errors (:class:`~o2ocli.wallet.hdpath.HDError`).
"""

from __future__ import annotations

import functools
import unicodedata

from mnemonic import Mnemonic

from .hdpath import HDError

__all__ = ["generate_mnemonic", "mnemonic_to_seed", "validate_mnemonic"]

_MNEMONIC_WORDS = (12, 15, 18, 21, 24)  # accepted by validate_mnemonic
_GENERATE_STRENGTH = {12: 128, 24: 256}  # words -> entropy bits for generate_mnemonic


@functools.cache
def _bip39() -> Mnemonic:
    """The English BIP39 wordlist helper (loaded on first use)."""
    return Mnemonic("english")


@functools.cache
def _wordset() -> frozenset[str]:
    return frozenset(_bip39().wordlist)


def generate_mnemonic(words: int = 12) -> str:
    """Return a new random English mnemonic of 12 (128-bit) or 24 (256-bit) words.

    Entropy comes from :mod:`secrets` (inside the ``mnemonic`` package).
    """
    if type(words) is not int or words not in _GENERATE_STRENGTH:
        raise HDError(f"a new mnemonic has 12 or 24 words, not {words!r}")
    return _bip39().generate(_GENERATE_STRENGTH[words])


def validate_mnemonic(text: str) -> str:
    """Check an English BIP39 mnemonic and return it normalized.

    Normalization is NFKD, lower case, and words separated by single spaces (any run of
    whitespace is accepted in *text*). Raises :class:`HDError` naming the problem: an
    unknown word, a word count other than 12, 15, 18, 21 or 24, or a bad checksum.
    """
    if not isinstance(text, str):
        raise HDError(f"mnemonic must be a str, got {type(text).__name__}")
    words = unicodedata.normalize("NFKD", text).lower().split()
    if not words:
        raise HDError("mnemonic is empty")
    known = _wordset()
    for position, word in enumerate(words, 1):
        if word not in known:
            shown = word if len(word) <= 24 else word[:24] + "..."
            raise HDError(
                f"unknown word {shown!r} (word {position} of {len(words)}) "
                "is not in the BIP39 English wordlist"
            )
    if len(words) not in _MNEMONIC_WORDS:
        raise HDError(f"wrong number of words: {len(words)} (expected 12, 15, 18, 21 or 24)")
    normalized = " ".join(words)
    if not _bip39().check(normalized):
        raise HDError("bad checksum: the words are valid but do not form a valid mnemonic")
    return normalized


def mnemonic_to_seed(text: str, passphrase: str = "") -> bytes:
    """Return the 64-byte BIP39 seed of a mnemonic (PBKDF2-HMAC-SHA512, 2048 rounds).

    The mnemonic is validated first (:func:`validate_mnemonic`); both it and the passphrase
    are NFKD-normalized. The passphrase is case sensitive.
    """
    normalized = validate_mnemonic(text)
    if not isinstance(passphrase, str):
        raise HDError(f"passphrase must be a str, got {type(passphrase).__name__}")
    return _bip39().to_seed(normalized, passphrase)
