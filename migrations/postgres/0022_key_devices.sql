-- The devices an API key is limited to: a JSON array of device ids, or NULL for every device
-- (keys made before this could see every device, as they always could). Device ids are never
-- reused, so the id of a deleted device left in the array grants nothing.
ALTER TABLE user_api_keys ADD COLUMN devices TEXT;
-- The device an event or a pipeline run was about, so a key limited to some devices sees the
-- deliveries and log rows of its own devices only.
ALTER TABLE webhook_deliveries ADD COLUMN device_id BIGINT;
ALTER TABLE webhook_logs ADD COLUMN device_id BIGINT;
