-- What each device learned about WhatsApp's LIDs (`…@lid`, an account id that hides the phone
-- number): the phone number (digits) behind a LID, as the device's WhatsApp session reports it.
-- Per device, because each linked account learns its own mappings.
CREATE TABLE lid_mappings (
    device_id BIGINT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    lid TEXT NOT NULL,
    phone TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (device_id, lid)
);
CREATE INDEX lid_mappings_phone ON lid_mappings (device_id, phone);

-- Finds the messages stored under a LID when its number becomes known.
CREATE INDEX messages_device_sender_lid ON messages (device_id, sender_lid) WHERE sender_lid IS NOT NULL;
