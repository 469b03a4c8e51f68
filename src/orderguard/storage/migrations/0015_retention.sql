-- Retention (`orderguard prune`, the worker's retention duty): delivered outbox rows are
-- deleted and processed webhook bodies cleared after a configurable time. A cleared webhook
-- keeps its row, so its (provider, event_id) still refuses a late duplicate; `pruned_at`
-- says when its body and headers went. Orders, attempts, the timeline and refunds are kept.
ALTER TABLE webhook_events ADD COLUMN pruned_at {ts};
-- The few rows retention looks for, oldest first, without reading the whole table.
CREATE INDEX webhook_events_prunable ON webhook_events (processed_at)
    WHERE processed_at IS NOT NULL AND pruned_at IS NULL;
CREATE INDEX outbox_deliveries_delivered ON outbox_deliveries (delivered_at)
    WHERE state = 'delivered';
