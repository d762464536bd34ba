-- The hosts a plugin may reach over HTTP (world 0.3.0): a JSON array of exact names, IP
-- addresses or `*.domain` patterns; empty (the default, and every plugin made before) reaches
-- none. And whether the run log keeps the bodies of those requests and responses.
ALTER TABLE plugins ADD COLUMN allowed_hosts TEXT NOT NULL DEFAULT '[]';
ALTER TABLE plugins ADD COLUMN log_http_bodies BOOLEAN NOT NULL DEFAULT FALSE;
