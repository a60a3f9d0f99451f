"""Public, read-only web pages of a node (``node start --http-listen``).

``links`` (URLs and ``o2o:`` URIs of items, pure) and ``label`` (printable QR
labels) are used by the CLI too; ``server`` is the aiohttp application the
node starts, ``pages`` the data behind each page (the node's RPC method
functions, reused).  Nothing here writes to the chain.
"""
