-- The sender's LID (`…@lid`) of an inbound message, kept next to the phone number stored as
-- `sender` when WhatsApp addressed the message by LID and the number is known; the LID itself
-- is the sender when no number is known. NULL for everything else.
ALTER TABLE messages ADD COLUMN sender_lid TEXT;
