-- Review flags as a set with history: one row per reason raised on an order, open until a
-- person (or the state that answers it) clears it, never deleted (G7). At most one open row
-- per order and reason; position keeps the order in which they were raised. The single
-- orders.flag_reason of version 6 is copied in as one open flag, its reason read from how
-- its text starts; the column stays, written as the first open flag's text for readers
-- that still use it.
CREATE TABLE order_flags (
    id          TEXT PRIMARY KEY,
    order_id    TEXT NOT NULL REFERENCES orders (id),
    position    INTEGER NOT NULL,
    reason      TEXT NOT NULL,
    detail      TEXT NOT NULL,
    raised_by   TEXT NOT NULL,
    raised_at   {ts} NOT NULL,
    cleared_at  {ts},
    cleared_by  TEXT,
    CHECK ((cleared_at IS NULL) = (cleared_by IS NULL)),
    UNIQUE (order_id, position)
);
CREATE UNIQUE INDEX order_flags_open ON order_flags (order_id, reason) WHERE cleared_at IS NULL;
DROP INDEX orders_flagged;

INSERT INTO order_flags (id, order_id, position, reason, detail, raised_by, raised_at)
WITH labels (reason, prefix, label) AS (
    VALUES
        ('payment_unresolved', 'payment outcome still unresolved',
            'payment outcome still unresolved'),
        ('amount_mismatch', 'amount mismatch', 'amount mismatch'),
        ('duplicate_charge', 'duplicate charge', 'duplicate charge'),
        ('charge_after_cancel', 'charged after cancellation', 'charged after cancellation'),
        ('charge_on_closed_attempt', 'charge on a closed attempt', 'charge on a closed attempt'),
        ('unexplained_charge', 'unexplained charge', 'unexplained charge'),
        ('shopper_report', 'shopper reported a problem', 'shopper reported a problem'),
        ('reconciliation_amount_mismatch', 'reconciliation: amount_mismatch', 'reconciliation'),
        ('reconciliation_currency_mismatch', 'reconciliation: currency_mismatch',
            'reconciliation'),
        ('reconciliation_missing_at_provider', 'reconciliation: missing_at_provider',
            'reconciliation'),
        ('reconciliation_duplicate', 'reconciliation: duplicate', 'reconciliation')
)
SELECT
    'flg_v7_' || o.id,
    o.id,
    0,
    COALESCE(l.reason, 'other'),
    CASE WHEN l.label IS NULL THEN o.flag_reason
         ELSE LTRIM(SUBSTR(o.flag_reason, LENGTH(l.label) + 1), ': ') END,
    COALESCE(
        (SELECT COALESCE(t.actor, t.cause) FROM timeline t
         WHERE t.order_id = o.id AND t.kind = 'flagged' ORDER BY t.seq DESC LIMIT 1),
        'orderguard'),
    COALESCE(
        (SELECT MAX(t.at) FROM timeline t WHERE t.order_id = o.id AND t.kind = 'flagged'),
        o.updated_at)
FROM orders o
LEFT JOIN labels l ON SUBSTR(o.flag_reason, 1, LENGTH(l.prefix)) = l.prefix
WHERE o.flag_reason IS NOT NULL;
