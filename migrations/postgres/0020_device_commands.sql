-- What a process asks of a device whose WhatsApp session runs in another process (pairing
-- codes, QR codes, logout, reset, number checks): the holder of the device's lease takes the
-- row, does it and writes the answer, which the asking process reads. Times are Unix
-- milliseconds from the database's clock.
CREATE TABLE device_commands (
    id BIGSERIAL PRIMARY KEY,
    device_id BIGINT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    -- The command as JSON, its kind inside.
    command TEXT NOT NULL,
    -- pending, running, done, failed.
    status TEXT NOT NULL DEFAULT 'pending',
    -- The answer as JSON (done) or the error as JSON (failed).
    result TEXT,
    created_at BIGINT NOT NULL,
    finished_at BIGINT
);
CREATE INDEX device_commands_pending ON device_commands (device_id, id) WHERE status = 'pending';
