-- What several gateway processes on one database must agree on besides devices: operator
-- logins, failed dashboard logins and the requests each tenant and API key made.
-- Times are Unix milliseconds.

-- Operator (admin) logins, keyed by the SHA-256 of the cookie's token, so a copy of the
-- database lets nobody in. `admin_token_hash` is the SHA-256 of the admin token the login was
-- opened with: once the gateway runs with another admin token, the login no longer counts.
CREATE TABLE admin_sessions (
    token_hash TEXT PRIMARY KEY,
    admin_token_hash TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX admin_sessions_expires ON admin_sessions (expires_at);

-- Failed dashboard logins, counted over a window that starts with the first failure. `key`
-- is the SHA-256 of what is counted (an account with an address, an address, an account), so
-- what a visitor typed as the account is not kept.
CREATE TABLE login_failures (
    key TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    since INTEGER NOT NULL
);
CREATE INDEX login_failures_since ON login_failures (since);

-- The request-rate token bucket of each owner for all processes together. Kept for the same
-- schema on both databases: a SQLite database has one process, which keeps its buckets in
-- memory and never writes here.
CREATE TABLE rate_buckets (
    owner TEXT PRIMARY KEY,
    tokens REAL NOT NULL,
    per_minute REAL NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX rate_buckets_updated ON rate_buckets (updated_at);
