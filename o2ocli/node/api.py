"""The node's JSON-RPC methods.

Each method validates its parameters (bad input → an :class:`RpcError` with a
specific code and message, never a state change) and returns plain JSON.
Registered on an :class:`o2ocli.rpc.server.RpcMethods` by :func:`build_methods`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from o2ocli import __version__
from o2ocli.consensus.errors import BlockInvalid
from o2ocli.core.encoding import DecodeError
from o2ocli.core.tx import Coin, Outpoint, Tx
from o2ocli.crypto.address import AddressError
from o2ocli.rpc import errors as E
from o2ocli.rpc.errors import RpcError
from o2ocli.rpc.server import RpcMethods

from .api_o2o import (
    register_escrow_methods,
    register_o2o_methods,
    register_trace_consent_methods,
)
from .mempool import MempoolError
from .render import amount_json, asset_json, block_json, coin_json, tx_json, vote_json

if TYPE_CHECKING:  # pragma: no cover
    from .runtime import Node

__all__ = ["build_methods", "MEMPOOL_REASON_CODES"]

MEMPOOL_REASON_CODES = {
    "txn-already-known": E.TX_ALREADY_KNOWN,
    "txn-already-in-mempool": E.TX_ALREADY_KNOWN,
    "bad-txns-inputs-missingorspent": E.TX_MISSING_INPUTS,
}


def _hex_arg(value: Any, what: str, size: int | None = None) -> bytes:
    if not isinstance(value, str):
        raise RpcError(E.INVALID_PARAMS, f"{what} must be a hex string")
    try:
        data = bytes.fromhex(value)
    except ValueError:
        raise RpcError(E.INVALID_PARAMS, f"{what} is not valid hex") from None
    if size is not None and len(data) != size:
        raise RpcError(E.INVALID_PARAMS, f"{what} must be {size} bytes ({2 * size} hex digits)")
    return data


def _int_arg(value: Any, what: str, lo: int = 0, hi: int = 2**32 - 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise RpcError(E.INVALID_PARAMS, f"{what} must be an integer within {lo}..{hi}")
    return value


def build_methods(node: Node) -> RpcMethods:
    """All RPC methods of ``node``."""
    methods = RpcMethods()
    spec = node.spec
    chain = node.chain
    state = chain.state

    def address_arg(value: Any) -> bytes:
        if not isinstance(value, str):
            raise RpcError(E.INVALID_ADDRESS, "address must be a string")
        try:
            return spec.decode_address(value)
        except AddressError as exc:
            raise RpcError(E.INVALID_ADDRESS, f"invalid address: {exc}") from None

    def block_ref(ref: Any) -> bytes:
        if isinstance(ref, int) and not isinstance(ref, bool):
            block_hash = state.get_block_hash(ref) if ref >= 0 else None
            if block_hash is None:
                raise RpcError(E.NOT_FOUND, f"no block at height {ref} (tip is {chain.height})")
            return block_hash
        return _hex_arg(ref, "block hash", 32)

    def confirmations(height: int) -> int:
        return chain.height - height + 1

    def tokens(asset: bytes) -> tuple[str, int] | None:
        record = chain.state.token(asset)
        if record is not None:
            return record.symbol, record.decimals
        record = chain.state.token_of_authority(asset)
        return None if record is None else (record.symbol + "!", 0)

    def spent_coins(tx: Tx) -> list[Coin | None]:
        coins: list[Coin | None] = []
        for txin in tx.inputs:
            prev = txin.prevout
            coin = state.get(prev)  # still unspent in the chain: a mempool tx's input
            if coin is not None:
                coins.append(coin)
                continue
            found = state.get_tx(prev.txid)
            if found is not None and prev.index < len(found[0].outputs):
                coin = Coin(found[0].outputs[prev.index], found[2], found[0].is_coinbase)
            else:
                entry = node.mempool.get_entry(prev.txid)
                if entry is not None and prev.index < len(entry.tx.outputs):
                    coin = Coin(entry.tx.outputs[prev.index], chain.height + 1, False)
            coins.append(coin)
        return coins

    register_o2o_methods(methods, node, address_arg, confirmations)
    register_trace_consent_methods(methods, node, address_arg)
    register_escrow_methods(
        methods, node, address_arg,
        lambda asset, units: (asset_json(spec, asset, tokens),
                              amount_json(spec, asset, units, tokens)),
    )

    @methods.method("getinfo")
    def getinfo() -> dict[str, Any]:
        """Node and chain summary."""
        tip = chain.tip
        return {
            "version": __version__,
            "chain": spec.name,
            "chain_id": spec.chain_id,
            "native_symbol": spec.native_symbol,
            "decimals": spec.native_decimals,
            "genesis_hash": chain.genesis.hash.hex(),
            "height": tip.height,
            "tip": tip.hash.hex(),
            "tip_time": tip.header.time,
            "finalized_height": chain.finalized_height,
            "finalized_hash": chain.finalized_hash.hex(),
            "justified_height": chain.finality.justified_height(tip),
            "accused_validators": sorted(spec.address(a) for a in chain.finality.accused()),
            "validators": [spec.address(v) for v in chain.tip_snapshot().validators],
            "validator": spec.address(node.validator_address) if node.validator_address else None,
            "mempool_size": len(node.mempool),
            "mempool_bytes": node.mempool.total_bytes,
            "peers": node.peer_count(),
            "syncing": node.syncing(),
            "sync_height": node.p2p.sync.target_height() if node.p2p else tip.height,
            "min_relay_fee": spec.format(spec.min_relay_fee),
        }

    @methods.method("getblockcount")
    def getblockcount() -> int:
        """Height of the tip."""
        return chain.height

    @methods.method("getbestblockhash")
    def getbestblockhash() -> str:
        """Hash of the tip."""
        return chain.tip.hash.hex()

    @methods.method("getblockhash")
    def getblockhash(height: Any) -> str:
        """Hash of the main-chain block at ``height``."""
        return block_ref(_int_arg(height, "height")).hex()

    @methods.method("getblock")
    def getblock(ref: Any, verbosity: Any = 1) -> Any:
        """A block by height or hash; verbosity 0 = hex, 1 = JSON with txids, 2 = full txs."""
        level = _int_arg(verbosity, "verbosity", 0, 2)
        block_hash = block_ref(ref)
        block = state.get_block(block_hash)
        if block is None:
            raise RpcError(E.NOT_FOUND, f"block {block_hash.hex()} not found")
        if level == 0:
            return block.to_bytes().hex()
        data = block_json(spec, block, full_txs=level == 2)
        entry = state.get_index(block_hash)
        main = entry is not None and state.is_main_chain(entry)
        data["main_chain"] = main
        data["confirmations"] = confirmations(block.height) if main else 0
        data["final"] = main and block.height <= chain.finalized_height
        return data

    @methods.method("gettx")
    def gettx(txid: Any) -> dict[str, Any]:
        """A confirmed or mempool transaction with its status."""
        raw_id = _hex_arg(txid, "txid", 32)
        found = state.get_tx(raw_id)
        if found is not None:
            tx, block_hash, height = found
            data = tx_json(spec, tx, spent_coins(tx), tokens)
            data.update(
                {
                    "block": block_hash.hex(),
                    "height": height,
                    "confirmations": confirmations(height),
                    "final": height <= chain.finalized_height,
                    "in_mempool": False,
                }
            )
            return data
        entry = node.mempool.get_entry(raw_id)
        if entry is None:
            raise RpcError(E.NOT_FOUND, f"transaction {txid} is not in the chain or mempool")
        data = tx_json(spec, entry.tx, spent_coins(entry.tx), tokens)
        data.update(
            {"block": None, "height": None, "confirmations": 0, "final": False, "in_mempool": True}
        )
        return data

    @methods.method("getrawtx")
    def getrawtx(txid: Any) -> str:
        """The hex encoding of a confirmed or mempool transaction."""
        raw_id = _hex_arg(txid, "txid", 32)
        found = state.get_tx(raw_id)
        if found is not None:
            return found[0].to_bytes().hex()
        entry = node.mempool.get_entry(raw_id)
        if entry is None:
            raise RpcError(E.NOT_FOUND, f"transaction {txid} is not in the chain or mempool")
        return entry.tx.to_bytes().hex()

    def decode_tx(raw: Any) -> Tx:
        data = _hex_arg(raw, "raw transaction")
        try:
            return Tx.from_bytes(data)
        except DecodeError as exc:
            raise RpcError(E.DESERIALIZATION_ERROR, f"transaction decode failed: {exc}") from None

    def refusal(exc: MempoolError) -> RpcError:
        data: dict[str, Any] = {"reason": exc.reason}
        if getattr(exc, "conflict", None):
            data["conflict"] = exc.conflict.hex()
        code = MEMPOOL_REASON_CODES.get(exc.reason, E.TX_REJECTED)
        return RpcError(code, f"transaction rejected: {exc.reason}: {exc.message}", data)

    @methods.method("sendrawtx")
    def sendrawtx(raw: Any) -> str:
        """Validate a signed transaction, add it to the mempool and relay it."""
        tx = decode_tx(raw)
        try:
            entry = node.submit_tx(tx)
        except MempoolError as exc:
            raise refusal(exc) from None
        return entry.txid.hex()

    @methods.method("sendrawtxs")
    def sendrawtxs(raws: Any) -> list[Any]:
        """Many transactions at once (signatures verified in one batch); one
        result per tx: its txid, or ``{"error": {"code", "message", "data"}}``."""
        if not isinstance(raws, list) or len(raws) > 10_000:
            raise RpcError(E.INVALID_PARAMS, "expected a list of at most 10000 hex transactions")
        txs: list[Tx | RpcError] = []
        for raw in raws:
            try:
                txs.append(decode_tx(raw))
            except RpcError as exc:
                txs.append(exc)
        good = [t for t in txs if isinstance(t, Tx)]
        results = iter(node.submit_txs(good))
        out: list[Any] = []
        for item in txs:
            if isinstance(item, RpcError):
                out.append({"error": {"code": item.code, "message": item.message}})
                continue
            result = next(results)
            if isinstance(result, MempoolError):
                err = refusal(result)
                out.append({"error": {"code": err.code, "message": err.message, "data": err.data}})
            else:
                out.append(result.txid.hex())
        return out

    @methods.method("getmempool")
    def getmempool(verbose: Any = False) -> Any:
        """Mempool txids, or with ``verbose`` a list of entries (fee, size, fee rate)."""
        entries = node.mempool.entries()
        if not verbose:
            return [e.txid.hex() for e in entries]
        return [
            {
                "txid": e.txid.hex(),
                "fee": spec.format(e.fee),
                "size": e.size,
                "fee_rate": spec.format(e.fee_rate),
                "time": e.time,
            }
            for e in entries
        ]

    def unspent_for(
        pkhs: list[bytes], include_mempool: bool, include_spent: bool = False
    ) -> list[dict[str, Any]]:
        wanted = set(pkhs)
        mempool = node.mempool
        result = []
        for pkh in dict.fromkeys(pkhs):
            owner = spec.address(pkh)
            for outpoint, coin in state.address_coins(pkh):
                spender = mempool.spender_of(outpoint) if include_mempool else None
                if spender is not None and not include_spent:
                    continue
                item = coin_json(spec, outpoint.txid, outpoint.index, coin, tokens)
                item["confirmations"] = confirmations(coin.height)
                item["owner"] = owner
                if spender is not None:
                    item["spent_by"] = spender.hex()
                result.append(item)
        if include_mempool:
            for entry in mempool.entries():
                for index, out in enumerate(entry.tx.outputs):
                    owners = [a for a in out.lock.addresses() if a in wanted]
                    if not owners:
                        continue
                    spender = mempool.spender_of(Outpoint(entry.txid, index))
                    if spender is not None and not include_spent:
                        continue
                    item = coin_json(spec, entry.txid, index, Coin(out, 0, False), tokens)
                    item.update({"height": None, "confirmations": 0,
                                 "owner": spec.address(owners[0])})
                    if spender is not None:
                        item["spent_by"] = spender.hex()
                    result.append(item)
        return result

    def address_list(addresses: Any) -> list[bytes]:
        if not isinstance(addresses, list) or len(addresses) > 100_000:
            raise RpcError(E.INVALID_PARAMS, "expected a list of at most 100000 addresses")
        return [address_arg(a) for a in addresses]

    @methods.method("getutxos")
    def getutxos(address: Any, include_mempool: Any = True) -> list[dict[str, Any]]:
        """Unspent outputs touching ``address``.  With ``include_mempool`` (the
        default), outputs spent by mempool txs are left out and unconfirmed
        outputs are added (height null, 0 confirmations)."""
        return unspent_for([address_arg(address)], bool(include_mempool))

    @methods.method("listunspent")
    def listunspent(
        addresses: Any, include_mempool: Any = True, include_spent: Any = False
    ) -> list[dict[str, Any]]:
        """Like ``getutxos`` for many addresses at once (``owner`` names the
        address each output belongs to).  With ``include_spent``, outputs that
        a mempool tx spends are listed too, with ``spent_by`` (its txid)."""
        return unspent_for(address_list(addresses), bool(include_mempool), bool(include_spent))

    def history_for(pkhs: list[bytes]) -> list[dict[str, Any]]:
        seen: dict[bytes, dict[str, Any]] = {}
        for pkh in dict.fromkeys(pkhs):
            for height, txid in state.address_history(pkh):
                entry = seen.setdefault(
                    txid,
                    {"txid": txid.hex(), "height": height, "confirmations": confirmations(height),
                     "addresses": []},
                )
                entry["addresses"].append(spec.address(pkh))
        confirmed = sorted(seen.values(), key=lambda h: (h["height"], h["txid"]))
        wanted = set(pkhs)
        pending = []
        for mem in node.mempool.entries():
            touched: set[bytes] = set()
            for out in mem.tx.outputs:
                touched.update(wanted.intersection(out.lock.addresses()))
            for coin in spent_coins(mem.tx):
                if coin is not None:
                    touched.update(wanted.intersection(coin.output.lock.addresses()))
            if touched:
                pending.append({"txid": mem.txid.hex(), "height": None, "confirmations": 0,
                                "addresses": sorted(spec.address(p) for p in touched)})
        return confirmed + pending

    @methods.method("getaddresshistory")
    def getaddresshistory(address: Any) -> list[dict[str, Any]]:
        """Transactions touching ``address``: confirmed (oldest first), then mempool."""
        return history_for([address_arg(address)])

    @methods.method("getaddresseshistory")
    def getaddresseshistory(addresses: Any) -> list[dict[str, Any]]:
        """``getaddresshistory`` for many addresses at once (each tx once)."""
        return history_for(address_list(addresses))

    @methods.method("getutxosetinfo")
    def getutxosetinfo() -> dict[str, Any]:
        """Hash, count and per-asset totals of the UTXO set at the tip."""
        stats = state.utxo_stats()
        return {
            "height": stats.height,
            "tip": stats.tip.hex(),
            "utxo_set_hash": stats.hash.hex(),
            "utxo_count": stats.count,
            "totals": {
                asset_json(spec, asset, tokens): amount_json(spec, asset, total, tokens)
                for asset, total in sorted(stats.totals.items())
            },
        }

    def proposals_json() -> list[dict[str, str]]:
        return [
            {"address": spec.address(a), "action": "add" if add else "remove"}
            for a, add in sorted(node.proposals.votes.items())
        ]

    @methods.method("getvalidators")
    def getvalidators() -> dict[str, Any]:
        """Validator set after the tip, pending votes, and this node's proposals."""
        snap = chain.tip_snapshot()
        return {
            "validators": [spec.address(v) for v in snap.validators],
            "in_turn": spec.address(snap.in_turn(chain.height + 1)),
            "signer_limit": snap.limit(),
            "pending_votes": [
                {
                    "signer": spec.address(v.signer),
                    "address": spec.address(v.address),
                    "action": "add" if v.authorize else "remove",
                    "height": v.height,
                }
                for v in snap.votes
            ],
            "proposals": proposals_json(),
            "finalized_height": chain.finalized_height,
            "accused": sorted(spec.address(a) for a in chain.finality.accused()
                              if a in snap.validators),
        }

    @methods.method("listevidence")
    def listevidence() -> dict[str, Any]:
        """Equivocation evidence seen (in blocks or gossip): pairs of conflicting
        finality votes signed by one validator."""
        from o2ocli.consensus.finality import votes_conflict

        items = sorted(chain.finality.evidence.values(),
                       key=lambda ev: (ev.signer, ev.id))
        snap = chain.tip_snapshot()
        return {
            "evidence": [
                {
                    "id": ev.id.hex(),
                    "validator": spec.address(ev.signer),
                    "kind": votes_conflict(ev.first, ev.second),
                    "still_validator": ev.signer in snap.validators,
                    "votes": [vote_json(spec, ev.first), vote_json(spec, ev.second)],
                    "raw": ev.to_bytes().hex(),
                }
                for ev in items
            ]
        }

    @methods.method("getfinality")
    def getfinality() -> dict[str, Any]:
        """The finality gadget's view of the main chain: finalized and justified
        blocks, and the votes counted for links above the finalized block."""
        from o2ocli.consensus.finality import quorum

        tip = chain.tip
        view = chain.finality.view(tip)
        snap = chain.tip_snapshot()
        return {
            "finalized_height": chain.finalized_height,
            "finalized_hash": chain.finalized_hash.hex(),
            "justified_height": view.best_justified[0],
            "justified_hash": view.best_justified[1].hex(),
            "quorum": quorum(len(snap.validators)),
            "links": [
                {"source_height": s_h, "target_height": t_h,
                 "voters": [spec.address(v) for v in who]}
                for s_h, t_h, who in view.links
            ],
            "pool_votes": len(chain.finality.pool),
            "chain_finalized_height": chain.finality.state(tip.hash).finalized[0],
        }

    @methods.method("submitvote")
    def submitvote(raw: Any) -> dict[str, Any]:
        """Hand a finality vote (hex of its 169-byte encoding) to the node, as
        a peer would: counted if valid, relayed if new, evidence if it
        conflicts with a vote of the same key."""
        from o2ocli.core.finality import VOTE_SIZE, FinalityVote
        from o2ocli.node.finality import VoteOutcome

        data = _hex_arg(raw, "vote", VOTE_SIZE)
        try:
            vote = FinalityVote.from_bytes(data)
        except (DecodeError, ValueError) as exc:
            raise RpcError(E.INVALID_PARAMS, f"not a vote: {exc}") from None
        try:
            outcome, ev = chain.finality.add_vote(vote)
        except BlockInvalid as exc:
            raise RpcError(E.TX_REJECTED, f"vote refused: {exc.reason}") from None
        if outcome == VoteOutcome.NEW or ev is not None:
            node._after_votes([vote] if outcome == VoteOutcome.NEW else [],
                              [ev] if ev is not None else [], None)
        return {"result": outcome, "evidence": ev.id.hex() if ev is not None else None}

    @methods.method("propose")
    def propose(address: Any, add: Any = True) -> dict[str, Any]:
        """Vote (in every block this validator seals) to add or remove ``address``."""
        if not isinstance(add, bool):
            raise RpcError(E.INVALID_PARAMS, "add must be true (add) or false (remove)")
        if node.validator_address is None:
            raise RpcError(E.MISC_ERROR, "this node is not a validator: it cannot vote")
        node.proposals.votes[address_arg(address)] = add
        return {"proposals": proposals_json()}

    @methods.method("discard")
    def discard(address: Any) -> dict[str, Any]:
        """Withdraw this validator's proposal about ``address``."""
        pkh = address_arg(address)
        if pkh not in node.proposals.votes:
            raise RpcError(E.NOT_FOUND, f"no proposal about {address}")
        del node.proposals.votes[pkh]
        return {"proposals": proposals_json()}

    def p2p() -> Any:
        if node.p2p is None:
            raise RpcError(E.MISC_ERROR, "peer-to-peer networking is not running")
        return node.p2p

    @methods.method("getpeerinfo")
    def getpeerinfo() -> dict[str, Any]:
        """Connected peers, recent disconnects (newest first, with the reason),
        operator bans, discouraged hosts and the listening address."""
        manager = p2p()
        listen = f"{manager.listen[0]}:{manager.listen_port}" if manager.listen else None
        return {
            "peers": [peer.info() for peer in manager.peers.values() if not peer.closed],
            "recent_disconnects": list(reversed(manager.recent_disconnects)),
            "banned": manager.banned_list(),
            "discouraged": manager.discouraged_list(),
            "network_active": manager.network_active,
            "listen": listen,
            "known_addresses": len(manager.addrman),
        }

    @methods.method("getaddrmaninfo")
    def getaddrmaninfo() -> dict[str, Any]:
        """The address manager: new/tried sizes, capacity, and flood counters."""
        return p2p().addrman_info()

    def host_port(value: Any) -> tuple[str, int]:
        if not isinstance(value, str):
            raise RpcError(E.INVALID_PARAMS, "address must be a HOST:PORT string")
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise RpcError(E.INVALID_PARAMS, f"expected HOST:PORT, got {value!r}")
        return host.strip("[]"), int(port)

    @methods.method("addpeer")
    def addpeer(address: Any) -> dict[str, Any]:
        """Keep a connection to ``HOST:PORT`` (dialed at once, redialed if lost)."""
        host, port = host_port(address)
        manager = p2p()
        if manager.banned(host):
            raise RpcError(E.MISC_ERROR, f"{host} is banned; unban it first")
        manager.add_address(host, port, manual=True)
        return {"added": f"{host}:{port}"}

    @methods.method("ban")
    def ban(host: Any, seconds: Any = 24 * 3600) -> dict[str, Any]:
        """Operator ban: refuse ``host`` for ``seconds`` and drop its connections."""
        if not isinstance(host, str) or not host or len(host) > 253:
            raise RpcError(E.INVALID_PARAMS, "host must be a string")
        seconds = _int_arg(seconds, "seconds", 1, 10 * 365 * 24 * 3600)
        manager = p2p()
        manager.ban(host, seconds)
        return {"banned": host, "until": manager.bans[host]}

    @methods.method("unban")
    def unban(host: Any) -> dict[str, Any]:
        """Lift the ban on ``host``."""
        if not isinstance(host, str) or not host:
            raise RpcError(E.INVALID_PARAMS, "host must be a string")
        if not p2p().unban(host):
            raise RpcError(E.NOT_FOUND, f"{host} is not banned")
        return {"unbanned": host}

    @methods.method("setnetworkactive")
    def setnetworkactive(active: Any) -> dict[str, Any]:
        """Turn peer-to-peer networking off (drop all peers) or on again."""
        if not isinstance(active, bool):
            raise RpcError(E.INVALID_PARAMS, "active must be true or false")
        p2p().set_active(active)
        return {"network_active": active}

    @methods.method("stop")
    def stop() -> str:
        """Shut the node down gracefully."""
        node.request_stop()
        return "o2ocli node stopping"

    return methods
