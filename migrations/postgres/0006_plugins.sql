-- Tenant-uploaded WebAssembly plugins and their key-value data. Timestamps are Unix
-- milliseconds.

-- One uploaded plugin. `wasm` is the component as uploaded; `compiled` is wasmtime's
-- compiled artefact and `engine` names the wasmtime version and settings that produced it,
-- so a restart loads it without compiling again (and compiles again only when they change).
-- `devices` is a JSON array of device ids; an empty array means every device of the tenant.
-- `failures` counts failed runs in a row; reaching the configured limit disables the plugin
-- with `disabled_reason`.
CREATE TABLE plugins (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    size BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    wasm BYTEA NOT NULL,
    compiled BYTEA,
    engine TEXT,
    compiled_at BIGINT,
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    devices TEXT NOT NULL DEFAULT '[]',
    run_order BIGINT NOT NULL DEFAULT 0,
    config TEXT NOT NULL DEFAULT '{}',
    failures BIGINT NOT NULL DEFAULT 0,
    disabled_reason TEXT,
    runs BIGINT NOT NULL DEFAULT 0,
    last_run_at BIGINT,
    last_outcome TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (user_id, name)
);
CREATE INDEX plugins_user_order ON plugins (user_id, run_order, id);

-- A plugin's key-value store. Scoped to (tenant, plugin): every query names both.
CREATE TABLE plugin_kv (
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    plugin_id BIGINT NOT NULL REFERENCES plugins(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value BYTEA NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, plugin_id, key)
);
