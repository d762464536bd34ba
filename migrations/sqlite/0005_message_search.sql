-- Text search of the history (`q`, a case-insensitive substring of messages.text): a trigram
-- full-text index, so a search reads the rows that contain the query's trigrams instead of
-- every row of the tenant.
--
-- `messages_search` is an FTS5 table with external content: it stores only the index and
-- reads the text from `messages` (rowid = messages.id). The trigram tokenizer indexes every
-- three-character sequence, case-folded, so a quoted phrase matches any substring of at
-- least three characters in any case; the history still checks each candidate with its LIKE,
-- which keeps the exact LIKE semantics. Queries shorter than three characters cannot use
-- the index and check the rows as before (`SEARCH_MIN_CHARS` in src/db/messages.rs).
CREATE VIRTUAL TABLE messages_search USING fts5(
    text,
    content = 'messages',
    content_rowid = 'id',
    tokenize = 'trigram'
);

-- Index the messages stored before this migration.
INSERT INTO messages_search (messages_search) VALUES ('rebuild');

-- The triggers keep the index equal to the table: an external-content FTS5 table removes a
-- row by being given the exact values it indexed, which are the old row's. Deletes by
-- foreign-key cascade (a device or tenant removed) fire them too. NULL texts index nothing.
CREATE TRIGGER messages_search_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_search (rowid, text) VALUES (new.id, new.text);
END;

CREATE TRIGGER messages_search_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_search (messages_search, rowid, text) VALUES ('delete', old.id, old.text);
END;

CREATE TRIGGER messages_search_update AFTER UPDATE OF text ON messages BEGIN
    INSERT INTO messages_search (messages_search, rowid, text) VALUES ('delete', old.id, old.text);
    INSERT INTO messages_search (rowid, text) VALUES (new.id, new.text);
END;
