-- Reconciliation exceptions close: a later run that explains one (the order's charge
-- arrived, the orphan charge found its order, the duplicate was refunded) records when
-- and which run did. The console's queue and the alert read the open ones.
ALTER TABLE reconciliation_exceptions ADD COLUMN resolved_at {ts};
ALTER TABLE reconciliation_exceptions ADD COLUMN resolved_by_run TEXT
    REFERENCES reconciliation_runs (id);
CREATE INDEX reconciliation_exceptions_open
    ON reconciliation_exceptions (category) WHERE resolved_at IS NULL;
