-- Several gateway processes on one database: a row per live process, renewed every few
-- seconds against the database's clock, and a row per device naming the process that may open
-- its WhatsApp session. `epoch` grows on every change of holder and fences a stale holder's
-- writes. Times are Unix milliseconds from the database's own clock.

CREATE TABLE gateway_nodes (
    node_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    renewed_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    draining BOOLEAN NOT NULL DEFAULT FALSE
);

-- No foreign key to gateway_nodes: a lease whose node row is gone or expired is free.
CREATE TABLE device_leases (
    device_id BIGINT PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
    node_id TEXT,
    epoch BIGINT NOT NULL,
    acquired_at BIGINT NOT NULL
);
CREATE INDEX device_leases_node ON device_leases (node_id);
