-- Refund lookups (issue 19): a refund still pending at the provider (its answer or its
-- notification lost) is looked up there by the refund check duty on a schedule of its
-- own. ``checks`` counts the lookups done, ``next_check_at`` is when the next is due
-- (NULL: not looked up yet, due once the refund is older than the first wait); the duty
-- leases the refund's order (orders.lease_owner / lease_until) while it asks.
ALTER TABLE refunds ADD COLUMN checks INTEGER NOT NULL DEFAULT 0;
ALTER TABLE refunds ADD COLUMN next_check_at {ts};
CREATE INDEX refunds_check_due ON refunds (next_check_at, created_at) WHERE state = 'pending';
