"""Test payment methods understood by the sandbox and the in-memory fake, as at Stripe."""

from __future__ import annotations

#: Charged at once.
SUCCEEDS = "pm_card_visa"
#: Declined by the issuer (``generic_decline``).
DECLINED = "pm_card_chargeDeclined"
#: Needs 3-D Secure: ``requires_action`` until the shopper approves or refuses.
NEEDS_AUTHENTICATION = "pm_card_authenticationRequired"

#: Test payment method -> what happens to a payment made with it.
TEST_METHODS: dict[str, str] = {
    SUCCEEDS: "succeed",
    DECLINED: "decline",
    NEEDS_AUTHENTICATION: "authenticate",
}
#: The decline code test declines carry.
DECLINE_CODE = "generic_decline"
