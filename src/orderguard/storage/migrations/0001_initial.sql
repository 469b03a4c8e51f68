-- orderguard schema, version 1. One text for both databases: {ts} is a UTC timestamp,
-- {serial} an auto-incrementing primary key; triggers are in the per-dialect files.

CREATE TABLE orders (
    id                  TEXT PRIMARY KEY,
    merchant_reference  TEXT UNIQUE,
    state               TEXT NOT NULL,
    currency            TEXT NOT NULL,
    amount_total        BIGINT NOT NULL CHECK (amount_total >= 0),
    customer_email      TEXT NOT NULL,
    customer_name       TEXT NOT NULL,
    customer_phone      TEXT,
    ship_line1          TEXT NOT NULL,
    ship_line2          TEXT,
    ship_city           TEXT NOT NULL,
    ship_postal_code    TEXT NOT NULL,
    ship_country        TEXT NOT NULL,
    locale              TEXT NOT NULL,
    status_token        TEXT NOT NULL,
    flag_reason         TEXT,
    version             INTEGER NOT NULL,
    created_at          {ts} NOT NULL,
    updated_at          {ts} NOT NULL
);
CREATE INDEX orders_newest ON orders (created_at DESC, id DESC);
CREATE INDEX orders_state_newest ON orders (state, created_at DESC, id DESC);
CREATE INDEX orders_flagged ON orders (flag_reason) WHERE flag_reason IS NOT NULL;

CREATE TABLE order_lines (
    order_id     TEXT NOT NULL REFERENCES orders (id),
    position     INTEGER NOT NULL,
    sku          TEXT NOT NULL,
    name         TEXT NOT NULL,
    quantity     INTEGER NOT NULL CHECK (quantity >= 1),
    unit_amount  BIGINT NOT NULL CHECK (unit_amount >= 0),
    PRIMARY KEY (order_id, position)
);

CREATE TABLE payment_attempts (
    id               TEXT PRIMARY KEY,
    order_id         TEXT NOT NULL REFERENCES orders (id),
    seq              INTEGER NOT NULL,
    provider         TEXT NOT NULL,
    method           TEXT NOT NULL,
    state            TEXT NOT NULL,
    amount           BIGINT NOT NULL,
    currency         TEXT NOT NULL,
    idempotency_key  TEXT NOT NULL UNIQUE,
    provider_ref     TEXT,
    decline_code     TEXT,
    redirect_url     TEXT,
    created_at       {ts} NOT NULL,
    updated_at       {ts} NOT NULL,
    UNIQUE (order_id, seq)
);
CREATE INDEX payment_attempts_provider_ref ON payment_attempts (provider_ref);

-- Append-only (triggers refuse UPDATE and DELETE): the order's history, G7.
CREATE TABLE timeline (
    seq         {serial},
    id          TEXT NOT NULL UNIQUE,
    order_id    TEXT NOT NULL REFERENCES orders (id),
    at          {ts} NOT NULL,
    kind        TEXT NOT NULL,
    from_state  TEXT,
    to_state    TEXT NOT NULL,
    cause       TEXT NOT NULL,
    actor       TEXT,
    note        TEXT NOT NULL,
    request_id  TEXT
);
CREATE INDEX timeline_order ON timeline (order_id, seq);

-- Events committed with the change that caused them, for the relay (G8).
CREATE TABLE outbox (
    seq         {serial},
    id          TEXT NOT NULL UNIQUE,
    order_id    TEXT NOT NULL REFERENCES orders (id),
    type        TEXT NOT NULL,
    payload     TEXT NOT NULL,
    created_at  {ts} NOT NULL
);
CREATE INDEX outbox_order ON outbox (order_id, seq);

CREATE TABLE idempotency_keys (
    scope            TEXT NOT NULL,
    key              TEXT NOT NULL,
    fingerprint      TEXT NOT NULL,
    order_id         TEXT,
    response_status  INTEGER,
    response_body    TEXT,
    locked_until     {ts},
    created_at       {ts} NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    secret_hash  TEXT NOT NULL UNIQUE,
    created_at   {ts} NOT NULL,
    revoked_at   {ts}
);
