-- Tenant-uploaded WebAssembly plugins and their key-value data. Timestamps are Unix
-- milliseconds.

-- One uploaded plugin. `wasm` is the component as uploaded; `compiled` is wasmtime's
-- compiled artefact and `engine` names the wasmtime version and settings that produced it,
-- so a restart loads it without compiling again (and compiles again only when they change).
-- `devices` is a JSON array of device ids; an empty array means every device of the tenant.
-- `failures` counts failed runs in a row; reaching the configured limit disables the plugin
-- with `disabled_reason`.
CREATE TABLE plugins (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    wasm BLOB NOT NULL,
    compiled BLOB,
    engine TEXT,
    compiled_at INTEGER,
    enabled INTEGER NOT NULL DEFAULT 1,
    devices TEXT NOT NULL DEFAULT '[]',
    run_order INTEGER NOT NULL DEFAULT 0,
    config TEXT NOT NULL DEFAULT '{}',
    failures INTEGER NOT NULL DEFAULT 0,
    disabled_reason TEXT,
    runs INTEGER NOT NULL DEFAULT 0,
    last_run_at INTEGER,
    last_outcome TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (user_id, name)
);
CREATE INDEX plugins_user_order ON plugins (user_id, run_order, id);

-- A plugin's key-value store. Scoped to (tenant, plugin): every query names both.
CREATE TABLE plugin_kv (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    plugin_id INTEGER NOT NULL REFERENCES plugins(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, plugin_id, key)
);
