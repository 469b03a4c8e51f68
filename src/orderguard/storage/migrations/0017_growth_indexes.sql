-- Indexes for the queries that run all the time on tables that only grow (issue 20): each
-- matches one hot query, and the ones for rows in motion are partial, so they stay as small
-- as the work waiting however many finished orders pile up. docs/data-growth.md lists them
-- with the queries they serve; bench/growth.py records their plans on generated databases.

-- The janitor's claim and backlog: orders in the states it watches (the default schedule's
-- three), in the order they fall due. Replaces an index over every order ever taken.
CREATE INDEX orders_janitor_due ON orders ((COALESCE(next_check_at, last_checked_at)))
    WHERE state IN ('action_required', 'payment_pending', 'payment_unknown');
DROP INDEX orders_janitor;

-- Expiry, abandonment, the wallet sweep, the stuck gauge and the console's stuck queue:
-- orders in a state since before (or after) a moment; paid and refunded orders are never
-- asked for this way. (The stuck queue may also read orders_janitor_due: both hold only
-- the orders in motion.)
CREATE INDEX orders_changed ON orders (state, updated_at, id)
    WHERE state NOT IN ('paid', 'refunded');

-- The console's search by email (case-insensitive), newest first.
CREATE INDEX orders_email ON orders ((LOWER(customer_email)), created_at DESC);

-- The outbox relay's claim (a sink's pending deliveries, and for each the earlier pending
-- event of the same order), the lag gauge, the dead letters per sink. Delivered rows,
-- nearly all of them, are in neither. Replaces an index over every delivery.
CREATE INDEX outbox_deliveries_pending_order ON outbox_deliveries (sink, order_id, event_seq)
    WHERE state = 'pending';
CREATE INDEX outbox_deliveries_dead ON outbox_deliveries (sink) WHERE state = 'dead';
DROP INDEX outbox_deliveries_due;

-- The console's webhooks of an order.
CREATE INDEX webhook_events_order ON webhook_events (order_id, received_at DESC)
    WHERE order_id IS NOT NULL;
