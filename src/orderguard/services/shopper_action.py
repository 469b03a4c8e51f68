"""What the shopper must do outside the shop while an order waits on them: open a page
(3-D Secure, a wallet's cashier) or scan a code with a wallet's app.

One definition for the API's ``next_action`` and the shopper's page. Which it is, the
provider's profile says (its ``qr_methods``), never a provider's name; what is shown is
only the provider's own answer stored for the attempt, checked here first.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from orderguard.domain.order import Order, PaymentAttempt
from orderguard.domain.states import OrderState
from orderguard.services.providers import Providers

log = logging.getLogger("orderguard.payments")

#: The longest code text shown (a WeChat Pay ``code_url`` has about 40 characters).
MAX_CODE_CHARS = 512
#: The characters a URL may hold (RFC 3986): no spaces, quotes, angle brackets or controls.
_URL_CHARS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&()*+,;=%]+")


class ActionKind(StrEnum):
    """What the shopper does with the action's URL."""

    #: Open it in the browser (3-D Secure, Alipay's cashier, WeChat Pay's H5 page).
    REDIRECT = "redirect"
    #: Scan a QR code of it with the wallet's app (WeChat Pay Native's ``code_url``).
    SCAN_QR_CODE = "scan_qr_code"


@dataclass(frozen=True, slots=True)
class ShopperAction:
    """The step an order in ``action_required`` waits for."""

    kind: ActionKind
    #: The page to open, or the text of the code: the provider's, as stored for the attempt.
    url: str
    #: The payment method of the attempt waiting (``alipay_page``, ``wechatpay_native``...).
    method: str
    #: When the payment stops being payable at the provider (the order is cancelled then).
    expires_at: datetime


def shopper_action(
    order: Order, providers: Providers, expires_at: Callable[[PaymentAttempt], datetime]
) -> ShopperAction | None:
    """The step ``order``'s last attempt waits for, or ``None`` (nothing to do, or a code
    whose text is not its provider's kind of code: never shown, and logged)."""
    if order.state is not OrderState.ACTION_REQUIRED or not order.attempts:
        return None
    attempt = order.attempts[-1]
    url = attempt.redirect_url
    if not url:
        return None
    kind = ActionKind.REDIRECT
    if providers.shows_code(attempt.method):
        if not is_code(url, providers.code_prefixes(attempt.method)):
            log.warning("attempt %s: its code is not its provider's; not shown", attempt.id)
            return None
        kind = ActionKind.SCAN_QR_CODE
    return ShopperAction(kind, url, attempt.method, expires_at(attempt))


def is_code(text: str, prefixes: tuple[str, ...]) -> bool:
    """Whether ``text`` may be shown as a code to scan: a URL of at most
    :data:`MAX_CODE_CHARS` plain URL characters that starts with one of ``prefixes``."""
    return (
        bool(prefixes)
        and len(text) <= MAX_CODE_CHARS
        and _URL_CHARS.fullmatch(text) is not None
        and text.startswith(prefixes)
    )


def is_openable(url: str, *, livemode: bool) -> bool:
    """Whether the shopper's page may link ``url``: ``https://``, or ``http://`` for a test
    order (a sandbox on this machine), made of plain URL characters."""
    schemes = ("https://",) if livemode else ("https://", "http://")
    return url.startswith(schemes) and _URL_CHARS.fullmatch(url) is not None
