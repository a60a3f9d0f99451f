"""Pure consensus rules: no I/O, no clock, no globals.

State comes in as arguments (a UTXO view, the height, the chain's
:class:`~o2ocli.consensus.params.ConsensusParams`); results come back as values
or as a :class:`~o2ocli.consensus.errors.ValidationError` with a stable reason.
"""

from .errors import BlockInvalid, TxInvalid, ValidationError
from .params import MAX_AMOUNT, ConsensusParams

__all__ = ["BlockInvalid", "ConsensusParams", "MAX_AMOUNT", "TxInvalid", "ValidationError"]
