-- What each device learned about a contact beyond its messages: the profile WhatsApp shows
-- (about text, picture URL, business), fetched on demand and kept for a while, and whether
-- the device blocked it. `jid` is the contact's user JID.
CREATE TABLE contact_profiles (
    device_id BIGINT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    jid TEXT NOT NULL,
    about TEXT,
    picture_url TEXT,
    business BOOLEAN NOT NULL DEFAULT FALSE,
    business_name TEXT,
    lid TEXT,
    blocked BOOLEAN NOT NULL DEFAULT FALSE,
    -- When the profile was last read from WhatsApp (NULL: never).
    fetched_at BIGINT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (device_id, jid)
);

-- Plugins run for group messages too unless the tenant says direct chats only.
ALTER TABLE plugins ADD COLUMN in_groups BOOLEAN NOT NULL DEFAULT TRUE;
