-- One row per conversation of a device (a contact or a group), kept in the same transaction as
-- each stored message: the chat list reads a page of these instead of grouping the history.
-- `unread` counts inbound messages after `read_upto` (the last message id marked read).
CREATE TABLE chats (
    device_id BIGINT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    chat TEXT NOT NULL,
    user_id BIGINT NOT NULL,
    is_group INTEGER NOT NULL DEFAULT 0,
    last_message_id BIGINT NOT NULL,
    last_at BIGINT NOT NULL,
    unread INTEGER NOT NULL DEFAULT 0,
    read_upto BIGINT NOT NULL DEFAULT 0,
    -- The contact's WhatsApp name from its latest message (direct chats).
    name TEXT,
    archived INTEGER NOT NULL DEFAULT 0,
    muted INTEGER NOT NULL DEFAULT 0,
    pinned INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (device_id, chat)
);
-- The chat list: the latest message first (message ids grow with time).
CREATE INDEX chats_user_last ON chats (user_id, last_message_id);
CREATE INDEX chats_user_device_last ON chats (user_id, device_id, last_message_id);

-- The conversations already in the history; what was read before is unknown, so nothing counts
-- as unread.
INSERT INTO chats (device_id, chat, user_id, is_group, last_message_id, last_at, unread, read_upto, name)
SELECT m.device_id, m.chat, m.user_id, m.is_group, m.id, m.created_at, 0, m.id,
       (SELECT n.push_name FROM messages n WHERE n.device_id = m.device_id AND n.chat = m.chat
          AND n.direction = 'in' AND n.push_name IS NOT NULL ORDER BY n.id DESC LIMIT 1)
FROM messages m
WHERE m.id = (SELECT MAX(l.id) FROM messages l WHERE l.device_id = m.device_id AND l.chat = m.chat);
