-- Refunds as records of their own (issue 16): one row per refund asked for through
-- orderguard or reported by the provider, stored with its order in one transaction. A
-- refund is created pending before the provider is called, so a crash loses nothing; it
-- sends the provider its own idempotency key (derived from its id). One request key (the
-- client's Idempotency-Key, scoped to the caller) makes exactly one refund of an order.
CREATE TABLE refunds (
    id              TEXT PRIMARY KEY,
    order_id        TEXT NOT NULL REFERENCES orders (id),
    attempt_id      TEXT NOT NULL REFERENCES payment_attempts (id),
    amount          BIGINT NOT NULL CHECK (amount > 0),
    currency        TEXT NOT NULL,
    reason          TEXT NOT NULL,
    requester       TEXT NOT NULL,
    request_key     TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'succeeded', 'failed')),
    provider_ref    TEXT,
    failure_reason  TEXT,
    created_at      {ts} NOT NULL,
    updated_at      {ts} NOT NULL,
    UNIQUE (order_id, request_key)
);
CREATE INDEX refunds_order ON refunds (order_id, created_at);
CREATE INDEX refunds_pending ON refunds (updated_at) WHERE state = 'pending';
