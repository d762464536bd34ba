-- The groups each device is in, as WhatsApp last described them: the list answers from here
-- while the device is offline, and group events keep it current. `info` is the metadata as
-- JSON (subject, description, settings, participants with number, LID and role).
CREATE TABLE device_groups (
    device_id BIGINT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    jid TEXT NOT NULL,
    subject TEXT NOT NULL,
    info TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (device_id, jid)
);

-- Keyword rules answer direct chats only unless a rule says groups too.
ALTER TABLE auto_replies ADD COLUMN in_groups BOOLEAN NOT NULL DEFAULT FALSE;
