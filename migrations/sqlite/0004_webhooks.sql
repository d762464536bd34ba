-- Webhooks: endpoints, the durable delivery queue, and what webhook_logs needs to point at
-- them. Timestamps are Unix milliseconds.

-- A tenant's webhook endpoint. `events` is a JSON array of event type names; `secret` is the
-- current signing secret and `old_secrets` a JSON array of {"secret", "expires_at"} still
-- signing after a rotation, every secret encrypted with the gateway's webhook key.
CREATE TABLE webhook_endpoints (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    url TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    events TEXT NOT NULL,
    mode TEXT NOT NULL DEFAULT 'notify',
    device_id INTEGER REFERENCES devices(id) ON DELETE CASCADE,
    enabled INTEGER NOT NULL DEFAULT 1,
    secret TEXT NOT NULL,
    old_secrets TEXT NOT NULL DEFAULT '[]',
    -- First failed attempt since the last success (NULL: healthy).
    failing_since INTEGER,
    last_success_at INTEGER,
    last_failure_at INTEGER,
    disabled_at INTEGER,
    disabled_reason TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX webhook_endpoints_user ON webhook_endpoints (user_id, id);

-- The delivery queue: one row per event and endpoint. `webhook_id` is the `webhook-id` header
-- (stable across retries), `payload` the exact body. A worker takes a due row by setting
-- `lease_until`; `status` is pending, delivered, failed (attempts used up) or cancelled
-- (the endpoint was disabled).
CREATE TABLE webhook_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    endpoint_id INTEGER NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    webhook_id TEXT NOT NULL,
    event TEXT NOT NULL,
    message_id INTEGER,
    payload TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    next_attempt_at INTEGER,
    lease_until INTEGER,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, status);
CREATE INDEX webhook_deliveries_done ON webhook_deliveries (updated_at) WHERE status <> 'pending';

-- Log rows point at what they record: the endpoint, the delivery (for retries) and its
-- `webhook-id`; plugin runs point at their plugin.
ALTER TABLE webhook_logs ADD COLUMN endpoint_id INTEGER;
ALTER TABLE webhook_logs ADD COLUMN delivery_id INTEGER;
ALTER TABLE webhook_logs ADD COLUMN webhook_id TEXT;
ALTER TABLE webhook_logs ADD COLUMN plugin_id INTEGER;
CREATE INDEX webhook_logs_user_endpoint ON webhook_logs (user_id, endpoint_id, id);
CREATE INDEX webhook_logs_user_plugin ON webhook_logs (user_id, plugin_id, id);

-- Message events come from the status history, which is written in the same transaction as
-- the change itself: a row is turned into webhook deliveries once (`webhooked`), so no
-- status change is lost between its commit and its event. Rows from before this migration
-- are done already.
ALTER TABLE message_status_history ADD COLUMN webhooked INTEGER NOT NULL DEFAULT 0;
UPDATE message_status_history SET webhooked = 1;
CREATE INDEX message_status_history_unhooked ON message_status_history (id) WHERE webhooked = 0;
