#!/usr/bin/env python3
"""Benchmark: receiving a block in full vs in compact form (o2ocli.p2p.compact).

Builds a block of ``--txs`` signed payments (ChainGenerator), then measures, on
one core and with every transaction already in a txid -> tx map (what the
mempool gives a node that got them by relay), the receiver's work before the
block can be validated:

* full: decode the ``block`` payload, compute its commitment (merkle root);
* compact: decode the ``cmpctblock`` payload, look every txid up, rebuild the
  Block, compute its commitment;

and the bytes on the wire for each.

    python benchmarks/compact.py               # 3000 payments, best of 5
    python benchmarks/compact.py --txs 10000
"""

from __future__ import annotations

import argparse
import time

from o2ocli.core.block import Block
from o2ocli.p2p.compactmsg import CmpctBlock, compact_block
from o2ocli.p2p.messages import BlockMsg, decode_payload, encode_frame
from o2ocli.testing.chaingen import ChainGenerator

MAGIC = b"\x00\x01\x02\x03"


def best(repeat: int, fn) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--txs", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    gen = ChainGenerator("o2o-bench", n_keys=200, coins_per_key=max(1, args.txs // 200 + 1))
    block = gen.next_block(args.txs)
    mempool = {tx.txid: tx for tx in block.txs[1:]}
    full_frame = encode_frame(MAGIC, BlockMsg(block))
    cmpct = compact_block(block)
    cmpct_frame = encode_frame(MAGIC, cmpct)

    def payload(frame: bytes) -> tuple[int, bytes, bytes]:
        return frame[4], frame[13:], frame[9:13]

    def receive_full() -> None:
        msg = decode_payload(*payload(full_frame))
        assert msg.block.compute_merkle_root() == msg.block.header.merkle_root

    def receive_compact() -> None:
        msg = decode_payload(*payload(cmpct_frame))
        assert isinstance(msg, CmpctBlock)
        txs = [tx for _, tx in msg.prefilled] + [mempool[t] for t in msg.txids]
        rebuilt = Block(msg.header, tuple(txs), msg.votes, msg.evidence)
        assert rebuilt.compute_merkle_root() == msg.header.merkle_root

    full = best(args.repeat, receive_full)
    compact = best(args.repeat, receive_compact)
    print(f"block of {len(block.txs)} txs")
    print(f"full:    {len(full_frame):>10,} bytes  {full * 1000:8.1f} ms to decode + check root")
    print(f"compact: {len(cmpct_frame):>10,} bytes  {compact * 1000:8.1f} ms to decode + "
          f"rebuild from the mempool + check root")
    print(f"saved:   {1 - len(cmpct_frame) / len(full_frame):.0%} of the bytes, "
          f"{1 - compact / full:.0%} of the time")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
