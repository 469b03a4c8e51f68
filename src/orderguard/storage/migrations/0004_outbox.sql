-- The outbox relay: where each event stands at each sink, every delivery attempt, and
-- the merchant webhook endpoints with their signing secrets.

-- A sink (``email``, ``stream``, ``webhook:<endpoint id>``) the relay has delivered to:
-- it receives events committed at or after ``since``; every event up to ``floor_seq`` has
-- been considered for it (the relay looks only above).
CREATE TABLE outbox_sinks (
    sink       TEXT PRIMARY KEY,
    since      {ts} NOT NULL,
    floor_seq  BIGINT NOT NULL DEFAULT 0
);

-- One event at one sink: pending (with its next try and lease), delivered or dead.
CREATE TABLE outbox_deliveries (
    id               {serial},
    event_id         TEXT NOT NULL REFERENCES outbox (id),
    sink             TEXT NOT NULL,
    order_id         TEXT NOT NULL,
    event_seq        BIGINT NOT NULL,
    state            TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  {ts} NOT NULL,
    last_error       TEXT,
    delivered_at     {ts},
    dead_at          {ts},
    lease_owner      TEXT,
    lease_until      {ts},
    UNIQUE (event_id, sink)
);
CREATE INDEX outbox_deliveries_due ON outbox_deliveries (sink, state, next_attempt_at);
CREATE INDEX outbox_deliveries_order ON outbox_deliveries (sink, order_id, event_seq);

-- Every try at delivering an event to a sink, for support: when, where, how it went.
CREATE TABLE outbox_attempts (
    id           {serial},
    event_id     TEXT NOT NULL,
    sink         TEXT NOT NULL,
    at           {ts} NOT NULL,
    outcome      TEXT NOT NULL,
    error        TEXT,
    relay        TEXT NOT NULL,
    duration_ms  INTEGER NOT NULL
);
CREATE INDEX outbox_attempts_event ON outbox_attempts (event_id, id);

-- Merchant endpoints that receive signed webhooks.
CREATE TABLE webhook_endpoints (
    id           TEXT PRIMARY KEY,
    url          TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    created_at   {ts} NOT NULL,
    removed_at   {ts}
);

-- Their secrets: several are valid during a rotation's overlap, each signature is sent.
CREATE TABLE webhook_secrets (
    id           TEXT PRIMARY KEY,
    endpoint_id  TEXT NOT NULL REFERENCES webhook_endpoints (id),
    secret       TEXT NOT NULL,
    created_at   {ts} NOT NULL,
    expires_at   {ts}
);
CREATE INDEX webhook_secrets_endpoint ON webhook_secrets (endpoint_id);
