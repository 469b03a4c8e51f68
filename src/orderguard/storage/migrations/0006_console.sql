-- The support console: its users (Argon2 password hashes, a role, failed log-ins counted
-- for lock-out) and their sessions, stored server-side by the SHA-256 of the cookie value.
CREATE TABLE console_users (
    name             TEXT PRIMARY KEY,
    password_hash    TEXT NOT NULL,
    role             TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    failed_logins    INTEGER NOT NULL DEFAULT 0,
    locked_until     {ts},
    created_at       {ts} NOT NULL
);

CREATE TABLE console_sessions (
    id_hash      TEXT PRIMARY KEY,
    user_name    TEXT NOT NULL REFERENCES console_users (name) ON DELETE CASCADE,
    csrf_token   TEXT NOT NULL,
    created_at   {ts} NOT NULL,
    expires_at   {ts} NOT NULL
);
CREATE INDEX console_sessions_user ON console_sessions (user_name);
