-- Session storage of the whatsapp-web driver: what whatsapp-rust keeps through its five
-- storage traits, one set of rows per gateway device (`device_id`), gone with the device.
-- Signal records and keys are opaque bytes; the library's serde structs are JSON text.
-- `stored_at`, `expires_at`, `message_ts` and the tc-token times are Unix seconds, because the
-- library's expiry cutoffs are; `updated_at` on `wa_device` is Unix milliseconds like elsewhere.

-- The device's own keys and account (`wacore::store::Device` as JSON). `pn` is the paired
-- phone JID, NULL until pairing succeeds.
CREATE TABLE wa_device (
    device_id BIGINT PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
    pn TEXT,
    data TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE wa_identities (
    device_id BIGINT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    address TEXT NOT NULL,
    identity_key BYTEA NOT NULL,
    PRIMARY KEY (device_id, address)
);

CREATE TABLE wa_signal_sessions (
    device_id BIGINT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    address TEXT NOT NULL,
    record BYTEA NOT NULL,
    PRIMARY KEY (device_id, address)
);

CREATE TABLE wa_prekeys (
    device_id BIGINT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    prekey_id BIGINT NOT NULL,
    record BYTEA NOT NULL,
    uploaded BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (device_id, prekey_id)
);

CREATE TABLE wa_signed_prekeys (
    device_id BIGINT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    prekey_id BIGINT NOT NULL,
    record BYTEA NOT NULL,
    PRIMARY KEY (device_id, prekey_id)
);

CREATE TABLE wa_sender_keys (
    device_id BIGINT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    address TEXT NOT NULL,
    record BYTEA NOT NULL,
    PRIMARY KEY (device_id, address)
);

CREATE TABLE wa_app_state_keys (
    device_id BIGINT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    key_id BYTEA NOT NULL,
    key_data BYTEA NOT NULL,
    fingerprint BYTEA NOT NULL,
    key_timestamp BIGINT NOT NULL,
    PRIMARY KEY (device_id, key_id)
);

-- The id of the app-state sync key stored last.
CREATE TABLE wa_app_state_latest_key (
    device_id BIGINT PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
    key_id BYTEA NOT NULL
);

-- One `HashState` (JSON) per app-state collection.
CREATE TABLE wa_app_state_versions (
    device_id BIGINT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    collection TEXT NOT NULL,
    state TEXT NOT NULL,
    PRIMARY KEY (device_id, collection)
);

CREATE TABLE wa_app_state_mutation_macs (
    device_id BIGINT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    collection TEXT NOT NULL,
    index_mac BYTEA NOT NULL,
    version BIGINT NOT NULL,
    value_mac BYTEA NOT NULL,
    PRIMARY KEY (device_id, collection, index_mac)
);

CREATE TABLE wa_base_keys (
    device_id BIGINT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    address TEXT NOT NULL,
    message_id TEXT NOT NULL,
    base_key BYTEA NOT NULL,
    PRIMARY KEY (device_id, address, message_id)
);

-- Known devices of a contact (`DeviceListRecord` as JSON), keyed by the user part of its JID.
CREATE TABLE wa_device_registry (
    device_id BIGINT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    user_part TEXT NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (device_id, user_part)
);

CREATE TABLE wa_group_metadata (
    device_id BIGINT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    group_jid TEXT NOT NULL,
    metadata BYTEA NOT NULL,
    PRIMARY KEY (device_id, group_jid)
);

-- LID <-> phone number. `seq` orders the writes so a phone number resolves to the LID
-- mapped to it last.
CREATE TABLE wa_lid_pn_mappings (
    device_id BIGINT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    lid TEXT NOT NULL,
    phone_number TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    learning_source TEXT NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (device_id, lid)
);
CREATE INDEX wa_lid_pn_mappings_phone ON wa_lid_pn_mappings (device_id, phone_number, seq);

-- Which devices of a group hold our current sender key.
CREATE TABLE wa_sender_key_devices (
    device_id BIGINT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    group_jid TEXT NOT NULL,
    device_jid TEXT NOT NULL,
    has_key BOOLEAN NOT NULL,
    PRIMARY KEY (device_id, group_jid, device_jid)
);
CREATE INDEX wa_sender_key_devices_jid ON wa_sender_key_devices (device_id, device_jid);

-- Trusted-contact tokens; an empty `token` is a placeholder holding only the sender time.
CREATE TABLE wa_tc_tokens (
    device_id BIGINT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    jid TEXT NOT NULL,
    token BYTEA NOT NULL,
    token_timestamp BIGINT NOT NULL,
    sender_timestamp BIGINT,
    PRIMARY KEY (device_id, jid)
);

-- Payloads of sent messages, kept for retry receipts.
CREATE TABLE wa_sent_messages (
    device_id BIGINT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    chat_jid TEXT NOT NULL,
    message_id TEXT NOT NULL,
    payload BYTEA NOT NULL,
    stored_at BIGINT NOT NULL,
    PRIMARY KEY (device_id, chat_jid, message_id)
);
CREATE INDEX wa_sent_messages_stored ON wa_sent_messages (device_id, stored_at);

-- Decrypted inbound messages waiting for the durability hook to commit them.
CREATE TABLE wa_pending_inbound (
    device_id BIGINT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    chat TEXT NOT NULL,
    sender TEXT NOT NULL,
    message_id TEXT NOT NULL,
    message BYTEA NOT NULL,
    stored_at BIGINT NOT NULL,
    PRIMARY KEY (device_id, chat, sender, message_id)
);
CREATE INDEX wa_pending_inbound_stored ON wa_pending_inbound (device_id, stored_at);

-- Message secrets (polls, reactions, edits). `expires_at` 0 = never.
CREATE TABLE wa_msg_secrets (
    device_id BIGINT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    chat TEXT NOT NULL,
    sender TEXT NOT NULL,
    message_id TEXT NOT NULL,
    secret BYTEA NOT NULL,
    expires_at BIGINT NOT NULL,
    message_ts BIGINT NOT NULL,
    PRIMARY KEY (device_id, chat, sender, message_id)
);
CREATE INDEX wa_msg_secrets_expires ON wa_msg_secrets (device_id, expires_at);
