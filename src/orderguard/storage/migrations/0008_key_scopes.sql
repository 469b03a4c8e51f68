-- What each merchant API key may do: a space-separated list of scopes (orders:read,
-- orders:write, payments:refund, admin). Keys created before scopes existed could do
-- everything the API offers, so they get `admin`: they keep working exactly as before.
-- `orderguard keys create --scope` chooses the scopes of new keys.
ALTER TABLE api_keys ADD COLUMN scopes TEXT NOT NULL DEFAULT 'admin';
