-- What the account's phone syncs as app state: how each chat shows (archived, pinned, muted
-- until when) and the names of its address book. A state change may name a chat that has no
-- stored message yet: its row is then created with `last_message_id = 0` (hidden from the chat
-- list until a message arrives), and the message upsert leaves these columns alone.
-- `muted_until` is milliseconds since the epoch (NULL: not muted; the largest BIGINT: muted
-- with no end), so whether a chat is muted is read against the clock instead of kept as a flag.
-- `archived_at`, `pinned_at` and `muted_at` are when the phone last changed that part of the
-- state (NULL: never); when the chat of a LID folds into the chat of its number, each part is
-- the one changed last.
ALTER TABLE chats DROP COLUMN muted;
ALTER TABLE chats ADD COLUMN muted_until BIGINT;
ALTER TABLE chats ADD COLUMN archived_at BIGINT;
ALTER TABLE chats ADD COLUMN pinned_at BIGINT;
ALTER TABLE chats ADD COLUMN muted_at BIGINT;

-- The name the account saved a contact under (full name, and first name when given).
ALTER TABLE contact_profiles ADD COLUMN saved_name TEXT;
ALTER TABLE contact_profiles ADD COLUMN saved_first_name TEXT;
