"""Node runtime: chain manager, mempool, block producer, wiring."""
