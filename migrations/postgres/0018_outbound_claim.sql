-- The epoch of the device lease under which a queued outbound message was last taken for
-- sending. A message still queued with an older epoch than its device's current lease was in
-- flight when the device changed owner: the new owner sends it again under the same WhatsApp
-- id, never as a second message.
ALTER TABLE messages ADD COLUMN claim_epoch BIGINT;
