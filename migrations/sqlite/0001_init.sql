-- Tenants and everything they own. Timestamps are Unix milliseconds.

CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT,
    package TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'active',
    timezone TEXT NOT NULL DEFAULT 'Asia/Jakarta',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE user_api_keys (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at INTEGER
);
CREATE INDEX user_api_keys_user ON user_api_keys (user_id, id);

-- Per-tenant overrides of package limits (JSON object; null = unlimited) and usage counters.
CREATE TABLE user_limits (
    user_id INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    overrides TEXT NOT NULL DEFAULT '{}',
    messages_period TEXT NOT NULL DEFAULT '',
    messages_used INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL
);

CREATE TABLE devices (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    phone TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'disconnected',
    status_detail TEXT,
    jid TEXT,
    paired INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (user_id, phone)
);

-- Opaque per-device session state kept by the WhatsApp driver.
CREATE TABLE device_sessions (
    device_id INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (device_id, key)
);

CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    device_id INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    direction TEXT NOT NULL,
    chat TEXT NOT NULL,
    sender TEXT NOT NULL,
    recipient TEXT NOT NULL,
    text TEXT,
    type TEXT NOT NULL DEFAULT 'text',
    status TEXT NOT NULL,
    wa_id TEXT,
    push_name TEXT,
    is_group INTEGER NOT NULL DEFAULT 0,
    media TEXT,
    error TEXT,
    source TEXT NOT NULL DEFAULT 'api',
    idempotency_key TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    -- When the inbound pipeline finished with this message (NULL: still to run).
    processed_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (device_id, direction, wa_id),
    UNIQUE (user_id, idempotency_key)
);
-- History (newest first: created_at DESC, id DESC). Each filter has an index ending in the sort
-- order, so the first page of a filtered list reads about one page of index entries, a time
-- range (since/until) is a range of the same index, and the capped `total` (at most 1,000 rows)
-- counts index entries. The trailing columns let a second filter (status with device or
-- direction, device with direction) be checked in the index without reading the rows.
CREATE INDEX messages_user ON messages (user_id, created_at, id);
CREATE INDEX messages_user_device ON messages (user_id, device_id, created_at, id, direction);
CREATE INDEX messages_user_chat ON messages (user_id, chat, created_at, id);
CREATE INDEX messages_user_direction ON messages (user_id, direction, created_at, id);
CREATE INDEX messages_user_status ON messages (user_id, status, created_at, id, device_id, direction);
CREATE INDEX messages_unprocessed ON messages (id) WHERE processed_at IS NULL AND direction = 'in';
-- The outbound queue: queued messages per device, oldest first.
CREATE INDEX messages_queue ON messages (device_id, id) WHERE status = 'queued';

-- Bytes of outbound media waiting in the queue; deleted once the message is sent or failed.
CREATE TABLE media_blobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    data BLOB NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE message_status_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    status TEXT NOT NULL,
    detail TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX message_status_history_message ON message_status_history (message_id, id);

CREATE TABLE auto_replies (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    device_id INTEGER REFERENCES devices(id) ON DELETE CASCADE,
    keyword TEXT NOT NULL,
    match_mode TEXT NOT NULL DEFAULT 'contains',
    reply TEXT NOT NULL,
    case_sensitive INTEGER NOT NULL DEFAULT 0,
    priority INTEGER NOT NULL DEFAULT 0,
    enabled INTEGER NOT NULL DEFAULT 1,
    stop_chain INTEGER NOT NULL DEFAULT 1,
    cooldown_seconds INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX auto_replies_user ON auto_replies (user_id, priority);

CREATE TABLE scheduled_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    device_id INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    recipient TEXT NOT NULL,
    text TEXT,
    media TEXT,
    send_at INTEGER,
    cron TEXT,
    timezone TEXT NOT NULL DEFAULT 'Asia/Jakarta',
    status TEXT NOT NULL DEFAULT 'pending',
    error TEXT,
    next_run_at INTEGER,
    last_run_at INTEGER,
    claimed_until INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX scheduled_messages_user ON scheduled_messages (user_id, id);
CREATE INDEX scheduled_messages_due ON scheduled_messages (status, next_run_at);

CREATE TABLE user_activity_logs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER REFERENCES users(id) ON DELETE CASCADE,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    detail TEXT,
    ip TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX user_activity_logs_user ON user_activity_logs (user_id, id);

CREATE TABLE webhook_logs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    event TEXT NOT NULL,
    message_id INTEGER,
    attempt INTEGER NOT NULL DEFAULT 1,
    outcome TEXT NOT NULL,
    http_status INTEGER,
    latency_ms INTEGER,
    error TEXT,
    request TEXT,
    response TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX webhook_logs_user ON webhook_logs (user_id, id);
