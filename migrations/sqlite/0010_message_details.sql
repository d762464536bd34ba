-- What a message carries besides text and media, and what happened to it since: location,
-- contact cards, poll and votes, the quoted message, mentions, reactions, edits, deletion,
-- read mark (JSON, read by `content::Details`). NULL when there is nothing.
ALTER TABLE messages ADD COLUMN details TEXT;

-- Where the media bytes of a message are: `pending` (to download), `stored` (in the media
-- store), `failed` (the download gave up; the reason is in `media`), `expired` (deleted after
-- the retention), `skipped` (downloads are off). NULL for messages without media.
ALTER TABLE messages ADD COLUMN media_state TEXT;
CREATE INDEX messages_media_state ON messages (media_state, created_at) WHERE media_state IS NOT NULL;
