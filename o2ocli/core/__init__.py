"""Pure data: transactions, blocks, locks, payloads and their one canonical encoding.

Nothing here does I/O, reads a clock or touches a database.
"""

from .block import Block, BlockHeader, merkle_root
from .encoding import DecodeError, Reader, Writer
from .locks import Lock, Multisig, PayToAddress
from .payloads import NO_PAYLOAD, Coinbase, GenesisAlloc, NoPayload, Payload
from .tx import NATIVE_ASSET, Coin, Outpoint, SigPair, Tx, TxIn, TxOut

__all__ = [
    "Block",
    "BlockHeader",
    "Coin",
    "Coinbase",
    "DecodeError",
    "GenesisAlloc",
    "Lock",
    "Multisig",
    "NATIVE_ASSET",
    "NO_PAYLOAD",
    "NoPayload",
    "Outpoint",
    "PayToAddress",
    "Payload",
    "Reader",
    "SigPair",
    "Tx",
    "TxIn",
    "TxOut",
    "Writer",
    "merkle_root",
]
