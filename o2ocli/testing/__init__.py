"""Helpers for tests and benchmarks (deterministic keys, signed txs, generated chains)."""
