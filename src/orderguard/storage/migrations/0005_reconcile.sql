-- Settlement reconciliation: each applied run (once per set of report files) and the
-- exceptions it recorded, each once however many reports repeat it.
CREATE TABLE reconciliation_runs (
    id           TEXT PRIMARY KEY,
    digest       TEXT NOT NULL UNIQUE,
    files        TEXT NOT NULL,
    provider     TEXT NOT NULL,
    period_from  {ts},
    period_to    {ts},
    summary      TEXT NOT NULL,
    applied_at   {ts} NOT NULL
);

CREATE TABLE reconciliation_exceptions (
    id                 TEXT PRIMARY KEY,
    run_id             TEXT NOT NULL REFERENCES reconciliation_runs (id),
    dedupe_key         TEXT NOT NULL UNIQUE,
    category           TEXT NOT NULL,
    order_id           TEXT,
    provider_ref       TEXT,
    amount             BIGINT,
    currency           TEXT,
    expected_amount    BIGINT,
    expected_currency  TEXT,
    file               TEXT,
    line               INTEGER,
    recorded_at        {ts} NOT NULL
);
CREATE INDEX reconciliation_exceptions_recent
    ON reconciliation_exceptions (recorded_at DESC, id DESC);
CREATE INDEX reconciliation_exceptions_category ON reconciliation_exceptions (category);
