-- Finds the messages whose details (mentions, the quoted message's author) still name someone
-- by LID, so learning the number behind a LID rewrites them without reading every message of
-- the device. A message leaves the index once no LID is left in its details.
CREATE INDEX messages_details_lid ON messages (device_id, id) WHERE details LIKE '%@lid%';
