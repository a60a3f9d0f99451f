"""Transaction payloads: O2O data carried by a transaction.

Like locks, a payload is a tagged union (one tag byte, then the body).  Tag
``0x00`` means "no payload" and has no body.  Each payload family lives in one
module of this package and registers its types by tag (:func:`register`); the
registry, not a hand-kept list, is what :func:`decode_payload` reads.

=====  ======================  =============================================
tag    type                    body
=====  ======================  =============================================
0x00   :class:`NoPayload`      (nothing)
0x01   :class:`Coinbase`       u32 block height (makes every fee claim unique)
0x02   :class:`GenesisAlloc`   var_bytes note (≤ 256 bytes), e.g. the chain id
0x10   :class:`TokenCommit`    32-byte commitment to a symbol (step 1 of issuing)
0x11   :class:`TokenIssue`     var_bytes symbol ‖ var_bytes name ‖ u8 decimals ‖
                               u8 mintable ‖ 32-byte salt (step 2: the reveal)
0x12   :class:`TokenMint`      32-byte asset ‖ u64 amount
0x13   :class:`TokenBurn`      32-byte asset ‖ u64 amount
0x14   :class:`TokenFreeze`    32-byte asset (destroys the mint authority)
0x15   :class:`TokenReward`    32-byte asset ‖ u8 kind ‖ count ‖ 32-byte txids ‖
                               count ‖ 33-byte pubkeys ‖ a 64-byte signature per key
0x20   :class:`Review`         20-byte merchant ‖ 32-byte purchase txid ‖ u8 rating ‖
                               var_bytes text ‖ 33-byte pubkey ‖ 64-byte signature
0x21   :class:`ReviewReply`    32-byte review txid ‖ var_bytes text ‖ 33-byte pubkey ‖
                               64-byte signature
0x30   :class:`TraceRegister`  20-byte merchant ‖ var_bytes item id ‖ var_bytes product ‖
                               count ‖ (var_bytes key ‖ var_bytes value) per datum ‖
                               33-byte merchant pubkey ‖ 64-byte signature
0x31   :class:`TraceEvent`     32-byte item asset ‖ u8 event ‖ var_bytes location ‖
                               var_bytes note ‖ u8 has-doc ‖ [32-byte document hash]
0x40   :class:`ConsentGrant`   20-byte grantee ‖ var_bytes scope ‖ u32 until height ‖
                               33-byte user pubkey ‖ 64-byte signature
0x41   :class:`ConsentRevoke`  32-byte grant txid ‖ 33-byte user pubkey ‖ 64-byte signature
0x42   ConsentGrantProfile     20-byte grantee ‖ var_bytes scope ‖ u32 until height ‖
                               32-byte profile commitment txid ‖ 33-byte user pubkey ‖
                               64-byte signature
0x50   :class:`GovProposal`    var_bytes title ‖ var_bytes text ‖ count ‖ var_bytes option
                               per option ‖ u8 weight ‖ 32-byte asset ‖ u8 has-merchant ‖
                               [20-byte merchant] ‖ u32 voting blocks ‖ u64 deposit
0x51   :class:`GovVote`        32-byte proposal txid ‖ u8 option ‖ count ‖ 36-byte outpoints ‖
                               u8 has-purchase ‖ [32-byte purchase txid] ‖ count ‖
                               33-byte pubkeys ‖ a 64-byte signature per key
0x60   :class:`ProfileCommit`  32-byte attribute tree root ‖ u32 leaves ‖ 33-byte user
                               pubkey ‖ 64-byte signature
=====  ======================  =============================================

The decoders only enforce the *shape* (field sizes and hard caps on variable
fields, so a decoder never allocates much).  Whether a symbol, a rating or a
review text is acceptable is a consensus rule (:mod:`o2ocli.consensus.o2o`), so
that a bad value is refused with a reason that says what is wrong.

Modules: :mod:`.spec` (the declarative field spec and the codecs it generates),
:mod:`.base` (the registry, the tagged encoding, the base chain's payloads and
:class:`KeySig`), then one module per family: :mod:`.token`, :mod:`.review`,
:mod:`.trace`, :mod:`.consent`, :mod:`.gov`.

Identifiers derived from payloads (pure functions, used by consensus, node and
wallet alike):

* :func:`token_asset_id` — ``SHA-256d("o2o/token" ‖ 0x00 ‖ SYMBOL)``: one
  symbol, one asset, on every chain;
* :func:`authority_asset_id` — ``SHA-256d("o2o/authority" ‖ 0x00 ‖ asset)``:
  the asset of the single mint-authority output of a mintable token;
* :func:`item_asset_id` — ``SHA-256d("o2o/item" ‖ 0x00 ‖ merchant ‖
  var_bytes(item id))``: an item or batch is an asset of amount 1 in its
  merchant's namespace;
* :func:`token_commitment` — ``SHA-256d("o2o/token-commit" ‖ 0x00 ‖
  var_bytes(SYMBOL) ‖ salt ‖ var_bytes(lock of the commit's output 0))``;
* :func:`review_sig_digest` / :func:`reply_sig_digest` /
  :func:`reward_sig_digest` / :func:`item_sig_digest` /
  :func:`consent_sig_digest` / :func:`revoke_sig_digest` — what a signer
  signs, bound to the chain id like every signature (the reward, item and
  consent digests also to the carrying transaction's inputs).

Adding a payload family
-----------------------

Write one module here, say ``core/payloads/disclosure.py``, with a frozen,
slotted dataclass per payload type that subclasses :class:`PayloadType`,
declares each field with :func:`~.spec.wire` and a codec from :mod:`.spec`
(:class:`~.spec.Fixed`, :class:`~.spec.Signature`, :class:`~.spec.U8` /
``U32`` / ``U64``, :class:`~.spec.Bytes` with its cap, :class:`~.spec.Flag`,
:class:`~.spec.Optional`, :class:`~.spec.Pair`, :class:`~.spec.List` with its
cap), and is decorated ``@register(<free tag>)`` above ``@dataclass``::

    @register(0x70)
    @dataclass(frozen=True, slots=True)
    class Disclosure(PayloadType):
        merchant: bytes = wire(Fixed(20, "disclosure merchant"))
        text: bytes = wire(Bytes(1024, "disclosure text"))
        pubkey: bytes = wire(Fixed(33, "disclosure pubkey"))
        signature: bytes = wire(Signature("disclosure signature"))

Fields are encoded in declaration order; ``what`` names the field in decode
errors; :meth:`~.spec.Record.signed_body` is the body without its signatures.
List its public names in the module's ``__all__``, then add it below (its
star import, and the module in ``FAMILIES``) so that importing this package
registers it and re-exports its names; add a row to the table above and the
byte layout to ``docs/protocol.rst``.  A tag registered twice is a
``ValueError`` at import; a tag nobody registered stays a
:class:`~o2ocli.core.encoding.DecodeError` (``unknown payload type 0x50``) on
decode.  Tests that need a family of their own use :func:`registered`, which
removes it again.  Add a vector of the new type to
``tests/unit/core/payload_vectors.py`` (a test checks that every registered
tag has one); the bytes of existing tags never change (those vectors and
``tests/data/golden/core_vectors.json`` pin them).
"""

from __future__ import annotations

from . import base, consent, gov, profile, review, token, trace
from .base import *  # noqa: F403 - each module's __all__ is what it exports
from .consent import *  # noqa: F403
from .gov import *  # noqa: F403
from .profile import *  # noqa: F403
from .review import *  # noqa: F403
from .token import *  # noqa: F403
from .trace import *  # noqa: F403

FAMILIES = (base, token, review, trace, consent, gov, profile)
"""The modules that register payload types, in tag order."""

Payload = base.PayloadType
"""The type of every payload (each registered type subclasses :class:`PayloadType`)."""

__all__ = ["Payload", *(name for module in FAMILIES for name in module.__all__)]
