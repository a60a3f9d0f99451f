"""Peer-to-peer networking: wire messages, peer sessions, header-first sync, relay."""
