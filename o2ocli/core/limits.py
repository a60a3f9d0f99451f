"""Hard decoding caps.

These bound what the decoder will even try to read, so that hostile bytes can
never make it allocate much.  They are deliberately looser than the consensus
limits of any chain spec (``max_tx_size``, ``max_block_size`` …), which the
consensus rules check on top.
"""

MAX_TX_INPUTS = 10_000
MAX_TX_OUTPUTS = 10_000
MAX_WITNESS_PAIRS = 15
MAX_MULTISIG_KEYS = 15
MAX_PAYLOAD_BYTES = 64 * 1024
MAX_BLOCK_TXS = 200_000
MAX_CHECKPOINT_VALIDATORS = 255
MAX_TX_BYTES = 4 * 1024 * 1024
MAX_BLOCK_BYTES = 64 * 1024 * 1024
MAX_BLOCK_VOTES = 1024
MAX_BLOCK_EVIDENCE = 64
