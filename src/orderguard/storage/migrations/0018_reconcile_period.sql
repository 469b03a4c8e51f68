-- Reconciliation reads a report's period, not every order (issue 20): the attempts that
-- paid, by when they were last updated (the time the engine takes as the payment's), so a
-- day's report reads a few days of payments however many years of orders lie behind them.
-- Partial: attempts that never paid (declined, abandoned, pending) are not in it.
-- The report's references are looked up by payment_attempts_provider_ref (0001), the
-- orders by their primary key and the unique merchant_reference.
CREATE INDEX payment_attempts_paid ON payment_attempts (updated_at, id)
    WHERE state IN ('succeeded', 'refunded');
