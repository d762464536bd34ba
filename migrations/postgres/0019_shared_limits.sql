-- What several gateway processes on one database must agree on besides devices: operator
-- logins, failed dashboard logins and the requests each tenant and API key made.
-- Times are Unix milliseconds.

-- Operator (admin) logins, keyed by the SHA-256 of the cookie's token, so a copy of the
-- database lets nobody in. `admin_token_hash` is the SHA-256 of the admin token the login was
-- opened with: once the gateway runs with another admin token, the login no longer counts.
CREATE TABLE admin_sessions (
    token_hash TEXT PRIMARY KEY,
    admin_token_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX admin_sessions_expires ON admin_sessions (expires_at);

-- Failed dashboard logins, counted over a window that starts with the first failure. `key`
-- is the SHA-256 of what is counted (an account with an address, an address, an account), so
-- what a visitor typed as the account is not kept.
CREATE TABLE login_failures (
    key TEXT PRIMARY KEY,
    failures BIGINT NOT NULL,
    since BIGINT NOT NULL
);
CREATE INDEX login_failures_since ON login_failures (since);

-- The request-rate token bucket of each owner (`tenant:<id>` or `key:<id>`) for all processes
-- together: `tokens` left at `updated_at` (the database's clock, Unix milliseconds), refilling
-- at `per_minute` a minute up to `per_minute`. Every process keeps a copy in memory, spends
-- from it, and every half second adds what it spent here and reads the level back. Negative
-- while the processes together took more than was there. A bucket idle for a few minutes is
-- full again, so its row can go; losing the rows in a crash is as harmless, so the table skips
-- the write-ahead log.
CREATE UNLOGGED TABLE rate_buckets (
    owner TEXT PRIMARY KEY,
    tokens DOUBLE PRECISION NOT NULL,
    per_minute DOUBLE PRECISION NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX rate_buckets_updated ON rate_buckets (updated_at);
