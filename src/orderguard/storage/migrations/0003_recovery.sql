-- Recovery: the janitor's bookkeeping and leases on orders, the webhook inbox, worker
-- heartbeats, and what the sweeps found at the providers.

-- Rechecks done in the current state, when the last one (or the state change) was, and
-- when the next is due (NULL until the first: due after the schedule's shortest wait).
ALTER TABLE orders ADD COLUMN checks INTEGER NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN last_checked_at {ts};
ALTER TABLE orders ADD COLUMN next_check_at {ts};
-- A worker's claim on the order: nobody else works on it until lease_until.
ALTER TABLE orders ADD COLUMN lease_owner TEXT;
ALTER TABLE orders ADD COLUMN lease_until {ts};
CREATE INDEX orders_janitor ON orders (state, next_check_at, last_checked_at);

-- Every webhook as received, raw, once per provider event id.
CREATE TABLE webhook_events (
    id               TEXT PRIMARY KEY,
    provider         TEXT NOT NULL,
    event_id         TEXT NOT NULL,
    type             TEXT NOT NULL,
    headers          TEXT NOT NULL,
    body             TEXT NOT NULL,
    received_at      {ts} NOT NULL,
    order_id         TEXT,
    processed_at     {ts},
    attempts         INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT,
    next_attempt_at  {ts},
    lease_owner      TEXT,
    lease_until      {ts},
    UNIQUE (provider, event_id)
);
CREATE INDEX webhook_events_pending ON webhook_events (next_attempt_at)
    WHERE processed_at IS NULL;

-- Workers say they are alive; readiness and `doctor` read this.
CREATE TABLE worker_heartbeats (
    worker_id   TEXT PRIMARY KEY,
    started_at  {ts} NOT NULL,
    seen_at     {ts} NOT NULL
);

-- Charges the sweeps found that no order explains (orphans) or that an order already
-- had (duplicates), and what was done about them.
CREATE TABLE sweep_findings (
    id            TEXT PRIMARY KEY,
    provider      TEXT NOT NULL,
    provider_ref  TEXT NOT NULL,
    kind          TEXT NOT NULL,
    amount        BIGINT NOT NULL,
    currency      TEXT NOT NULL,
    order_id      TEXT,
    resolution    TEXT NOT NULL,
    found_at      {ts} NOT NULL,
    UNIQUE (provider, provider_ref, kind)
);
