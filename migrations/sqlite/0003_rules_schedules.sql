-- Keyword auto-replies and scheduled messages. Timestamps are Unix milliseconds.

-- When a rule last answered a chat of a device: the rule's per-chat cooldown. Kept in the
-- database so a cooldown of hours survives a restart, and claimed with one conditional upsert
-- so two messages arriving together fire the rule once.
CREATE TABLE auto_reply_cooldowns (
    rule_id INTEGER NOT NULL REFERENCES auto_replies(id) ON DELETE CASCADE,
    device_id INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    chat TEXT NOT NULL,
    fired_at INTEGER NOT NULL,
    PRIMARY KEY (rule_id, device_id, chat)
);

-- The loop guard looks for recent gateway-sent messages of one chat of one device.
CREATE INDEX messages_device_chat ON messages (device_id, chat, id);

-- Scheduled messages: `media` holds {"url", "type", "filename"} as JSON when the message is
-- media fetched at send time. `message_id` is the message its last run queued; `runs` counts
-- the times a scheduler claimed it to send (exactly-once checks, diagnostics).
ALTER TABLE scheduled_messages ADD COLUMN message_id INTEGER;
ALTER TABLE scheduled_messages ADD COLUMN runs INTEGER NOT NULL DEFAULT 0;
