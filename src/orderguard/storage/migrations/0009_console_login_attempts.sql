-- Console log-in attempts, counted per user name tried (existing or not) and per client
-- address, under the SHA-256 of the name or address: how many since the count began, and
-- when the count (and any lock-out it caused) expires. Expired rows are deleted as new
-- attempts arrive, so unknown names do not pile up.
CREATE TABLE console_login_attempts (
    key_hash    TEXT PRIMARY KEY,
    attempts    INTEGER NOT NULL,
    expires_at  {ts} NOT NULL
);
CREATE INDEX console_login_attempts_expiry ON console_login_attempts (expires_at);
