"""What the services know of a provider beyond its calls: the payment methods it takes,
what it can be asked when an answer was lost, its limits, and how its webhooks are answered.

Each provider package declares one :class:`ProviderProfile`; the registry hands it to the
slot of every account of that provider, and the services ask the slot, never a name.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True, slots=True)
class MetadataLimits:
    """How much a provider keeps in a payment's metadata."""

    #: Keys per payment.
    keys: int
    #: Characters per key.
    key_chars: int
    #: Characters per value.
    value_chars: int


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a provider can be asked while rechecking, sweeping and refunding."""

    #: The payment as it stands, by the provider's own reference (``retrieve_payment``).
    retrieve_by_reference: bool
    #: Every payment whose metadata names an order id (``find_payments``).
    find_by_order_id: bool
    #: The successful charges of a time window (``list_successful_charges``): the sweeps.
    list_recent_charges: bool
    #: How long after a request a repeat with the same idempotency key is still recognised
    #: as the same request (with a margin): a resend after that could charge or refund twice.
    key_retention: timedelta
    #: How much of the order snapshot its metadata can carry.
    metadata: MetadataLimits


@dataclass(frozen=True, slots=True)
class WebhookReply:
    """The answer to an accepted webhook, in the form the provider expects."""

    status: int
    media_type: str
    body: bytes


def json_ack(*, duplicate: bool) -> WebhookReply:
    """``200 {"received": true, "duplicate": ...}``: the event is stored (or was already)."""
    body = json.dumps({"received": True, "duplicate": duplicate}, separators=(",", ":")).encode()
    return WebhookReply(200, "application/json", body)


def plain_ack(text: str) -> Callable[..., WebhookReply]:
    """A reply of ``200`` and the plain body ``text`` (a provider that retries until it
    reads exactly, say, ``success``), duplicate or not."""

    def reply(*, duplicate: bool) -> WebhookReply:
        return WebhookReply(200, "text/plain", text.encode())

    return reply


#: Answers an accepted webhook, given whether it had been stored already.
WebhookReplies = Callable[..., WebhookReply]


@dataclass(frozen=True, slots=True)
class ProviderProfile:
    """One provider's methods, capabilities and webhook reply."""

    #: Prefixes of the payment methods it takes (``pm_card_`` for cards).
    methods: tuple[str, ...]
    capabilities: Capabilities
    #: The test payment methods it understands, offered on the shopper's page in test mode.
    test_methods: tuple[str, ...] = ()
    #: How an accepted webhook is answered (called with ``duplicate=``).
    reply: WebhookReplies = json_ack
    #: Methods whose next action is a code for the shopper to scan (its text in
    #: ``redirect_url``) rather than a page to open: shown as a QR code, never followed.
    qr_methods: tuple[str, ...] = ()
    #: What the text of such a code starts with (the provider's own URL scheme and path,
    #: e.g. ``weixin://wxpay/``): a code whose text does not is never shown.
    code_prefixes: tuple[str, ...] = ()

    def takes(self, method: str) -> bool:
        """Whether a payment with ``method`` may be sent to this provider."""
        return method.startswith(self.methods)

    def shows_code(self, method: str) -> bool:
        """Whether a ``method`` payment's next action is a code to scan."""
        return method in self.qr_methods


#: Card payment methods (``pm_card_visa``, ...), as every card provider here names them.
CARD_METHODS = ("pm_card_",)
#: ``alipay_*`` and ``wechatpay_*`` belong to the wallet packages: while their account is
#: not configured, a payment with one is refused before anything is stored, like any
#: method no configured provider takes.

#: The profile of a card provider that declares none (the in-memory fake, test wrappers):
#: every capability, and the most cautious limits of the providers registered here.
CARD_PROFILE = ProviderProfile(
    methods=CARD_METHODS,
    capabilities=Capabilities(
        retrieve_by_reference=True,
        find_by_order_id=True,
        list_recent_charges=True,
        key_retention=timedelta(hours=23),
        metadata=MetadataLimits(keys=50, key_chars=40, value_chars=500),
    ),
)
