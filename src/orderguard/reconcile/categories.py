"""What a settlement line (or an order the report should have had) turned out to be."""

from __future__ import annotations

#: The line's charge is the order's payment: same amount and currency.
MATCHED = "matched"
#: Matched to an order, for a different amount.
AMOUNT_MISMATCH = "amount_mismatch"
#: Matched to an order, in a different currency.
CURRENCY_MISMATCH = "currency_mismatch"
#: A charge no order explains: an orphan charge, handed to the recovery sweep.
MISSING_IN_ORDERS = "missing_in_orders"
#: A paid order in the report's period that the report does not confirm.
MISSING_AT_PROVIDER = "missing_at_provider"
#: A second charge line for an order or reference already confirmed by another line.
DUPLICATE = "duplicate"
#: Money back to the shopper, a dispute, a provider fee: reported as such.
REFUND, CHARGEBACK, FEE = "refund", "chargeback", "fee"
#: Payouts, adjustments and anything else that is neither a charge nor the above.
OTHER = "other"

#: Every category, in the order reports list them.
ALL = (
    MATCHED,
    AMOUNT_MISMATCH,
    CURRENCY_MISMATCH,
    MISSING_IN_ORDERS,
    MISSING_AT_PROVIDER,
    DUPLICATE,
    REFUND,
    CHARGEBACK,
    FEE,
    OTHER,
)
#: Categories someone has to look at; ``--apply`` records these.
EXCEPTIONS = frozenset(
    {AMOUNT_MISMATCH, CURRENCY_MISMATCH, MISSING_IN_ORDERS, MISSING_AT_PROVIDER, DUPLICATE}
)
#: Exceptions that put the order they concern in the review queue.
FLAGGING = frozenset({AMOUNT_MISMATCH, CURRENCY_MISMATCH, MISSING_AT_PROVIDER, DUPLICATE})

#: The kinds a settlement line can be, after its provider's vocabulary is mapped.
CHARGE_KIND, REFUND_KIND, CHARGEBACK_KIND, FEE_KIND = "charge", "refund", "chargeback", "fee"
PAYOUT_KIND, OTHER_KIND = "payout", "other"
