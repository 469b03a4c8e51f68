-- PostgreSQL keeps the webhook inbox's counters (received, processed, attempts per provider)
-- as a ledger of deltas written by a trigger with each change: appending a row never waits
-- on another transaction, and /metrics sums a few rows instead of counting the whole inbox.
-- The reader folds the rows into one per provider as it goes (ops_stats.py). Deleting a row
-- of the inbox (retention) writes no delta: the counters count what was received, ever.
CREATE TABLE webhook_tallies (
    provider   TEXT NOT NULL,
    received   BIGINT NOT NULL,
    processed  BIGINT NOT NULL,
    attempts   BIGINT NOT NULL
);

CREATE FUNCTION orderguard_webhook_tally() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO webhook_tallies VALUES (NEW.provider, 1,
            (NEW.processed_at IS NOT NULL)::int, NEW.attempts);
    ELSIF (NEW.processed_at IS NOT NULL) <> (OLD.processed_at IS NOT NULL)
          OR NEW.attempts <> OLD.attempts OR NEW.provider <> OLD.provider THEN
        INSERT INTO webhook_tallies VALUES
            (OLD.provider, -1, -(OLD.processed_at IS NOT NULL)::int, -OLD.attempts),
            (NEW.provider, 1, (NEW.processed_at IS NOT NULL)::int, NEW.attempts);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER webhook_events_tally AFTER INSERT OR UPDATE ON webhook_events
    FOR EACH ROW EXECUTE FUNCTION orderguard_webhook_tally();

INSERT INTO webhook_tallies (provider, received, processed, attempts)
SELECT provider, COUNT(*), COUNT(processed_at), COALESCE(SUM(attempts), 0)
FROM webhook_events GROUP BY provider;
