"""Stripe's settlement reports, for ``orderguard reconcile --format stripe``.

From Stripe's published description of the reports: the balance transactions export and
the itemized reports (``balance_change_from_activity`` and
``payout_reconciliation.itemized``: balance_transaction_id, created_utc, currency, gross,
fee, net, reporting_category, source_id, charge_id, payment_intent_id,
``payment_metadata[KEY]``): https://docs.stripe.com/reports/payout-reconciliation.md,
https://docs.stripe.com/reports/balance, https://pastebin.com/B928d03g (report columns),
https://stripe.dev/stripe-java/com/stripe/model/BalanceTransaction.html (gross/fee/net).
"""

from __future__ import annotations

from orderguard.providers.settlement import (
    CHARGE,
    CHARGEBACK,
    FEE,
    PAYOUT,
    REFUND,
    SettlementFormat,
    any_of,
    first,
)

#: Itemized reports (payout reconciliation, balance change from activity); see
#: https://docs.stripe.com/reports/payout-reconciliation.md and the report columns in
#: https://pastebin.com/B928d03g (``balance_change_from_activity.itemized.3``).
ITEMIZED = SettlementFormat(
    name="stripe",
    provider="stripe",
    signature=frozenset(
        {"balance_transaction_id", "reporting_category", "gross", "fee", "currency"}
    ),
    ref=any_of("payment_intent_id", "charge_id", "source_id"),
    order_ref=any_of("payment_metadata[order_id]", "payment_metadata[orderguard_order]"),
    kind=first("reporting_category"),
    kinds={
        CHARGE: ("charge",),
        REFUND: ("refund", "refund_failure"),
        CHARGEBACK: ("dispute", "dispute_reversal"),
        FEE: ("fee", "network_cost"),
        PAYOUT: ("payout", "payout_reversal"),
    },
    credit=first("gross"),
    fees=(first("fee"),),
    currency=first("currency"),
    at=first("created_utc", "created"),
)

#: The balance transactions export (Dashboard CSV: id, Type, Source, Amount, Fee, Net,
#: Currency, Created (UTC), metadata as ``KEY (metadata)``); see
#: https://docs.stripe.com/reports/balance and
#: https://stripe.dev/stripe-java/com/stripe/model/BalanceTransaction.html.
BALANCE = SettlementFormat(
    name="stripe",
    provider="stripe",
    signature=frozenset({"id", "type", "amount", "fee", "net", "currency", "created (utc)"}),
    ref=any_of("payment_intent_id", "Payment Intent ID", "Source", "source_id"),
    order_ref=any_of("order_id (metadata)", "payment_metadata[order_id]"),
    kind=first("Type"),
    kinds={
        CHARGE: ("charge", "payment"),
        REFUND: ("refund", "payment_refund"),
        CHARGEBACK: ("dispute", "dispute_reversal", "adjustment"),
        FEE: ("stripe_fee", "application_fee", "tax_fee", "fee"),
        PAYOUT: ("payout",),
    },
    credit=first("Amount"),
    fees=(first("Fee"),),
    currency=first("Currency"),
    at=first("Created (UTC)", "Created"),
)

#: Both, the itemized reports first (as they are recognised).
FORMATS = (ITEMIZED, BALANCE)
