"""The node's JSON-RPC methods, one module per domain.

Every method is a plain top-level function taking the node first (see
:mod:`.context`), registered in its module's :class:`~.table.MethodTable`;
:func:`o2ocli.node.api.build_methods` binds every table to a node.

==============  =============================================================
module          methods
==============  =============================================================
``chain``       getinfo, getblockcount, getbestblockhash, getblockhash,
                getblock, gettx, getrawtx, getutxosetinfo
``mempool``     sendrawtx, sendrawtxs, getmempool
``addresses``   getutxos, listunspent, getaddresshistory, getaddresseshistory
``validators``  getvalidators, propose, discard
``finality``    getfinality, listevidence, submitvote
``network``     getpeerinfo, getaddrmaninfo, addpeer, ban, unban,
                setnetworkactive, stop
``tokens``      gettoken, listtokens, listrewardable
``reviews``     getreview, listreviews, getreviewstats
``escrow``      getescrow, listescrows
``trace``       gettrace
``consent``     listconsents, checkconsent
``gov``         getproposal, listproposals, listvoterights
``profile``     getprofile, getprofilecommitment, listprofilehistory
``notify``      waitforchange (long poll: new tip, finalized height, address txs)
``fees``        estimatefee
``lookup``      resolvetxid (txid prefix → txids)
==============  =============================================================

A new payload family adds, in ``node/``: one module here with its ``TABLE``
(and one line in :data:`o2ocli.node.api.TABLES`), and one renderer module in
:mod:`o2ocli.node.render` (and one import line in its ``__init__``).
"""
