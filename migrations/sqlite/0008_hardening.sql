-- Inbound messages the gateway could not store after several attempts. Each is acknowledged to
-- WhatsApp (so it is not delivered again forever) and kept here with the reason, for the
-- operator; the tenant's history shows a `failed` row in its place (`message_id`).
-- `payload` is the message as JSON text. Timestamps are Unix milliseconds.
CREATE TABLE inbound_dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    device_id INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    wa_id TEXT NOT NULL,
    chat TEXT NOT NULL,
    sender TEXT NOT NULL,
    payload TEXT NOT NULL,
    reason TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    message_id INTEGER REFERENCES messages(id) ON DELETE SET NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (device_id, wa_id)
);
CREATE INDEX inbound_dead_letters_user ON inbound_dead_letters (user_id, id);

-- When a plugin was disabled for failing too often (NULL: it was not): enabling it again waits
-- for `[plugins] reenable_cooldown` after this.
ALTER TABLE plugins ADD COLUMN disabled_at INTEGER;
