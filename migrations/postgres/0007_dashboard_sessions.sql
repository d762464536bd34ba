-- Dashboard logins (SPEC §13). Only a SHA-256 of the random session token is stored, so a
-- copy of the database does not let anyone in. Timestamps are Unix milliseconds.
CREATE TABLE dashboard_sessions (
    token_hash TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- The token every form of this session carries (hidden field `csrf`).
    csrf_token TEXT NOT NULL,
    -- `id` or `en`.
    language TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX dashboard_sessions_user ON dashboard_sessions (user_id);
CREATE INDEX dashboard_sessions_expires ON dashboard_sessions (expires_at);
