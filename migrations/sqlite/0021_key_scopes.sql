-- What each API key may do: a JSON array of scopes (read, send, manage). Keys made before
-- scopes existed may do everything, as they always could.
ALTER TABLE user_api_keys ADD COLUMN scopes TEXT NOT NULL DEFAULT '["read","send","manage"]';
