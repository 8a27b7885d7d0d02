-- Inbound contact (issue 12 item 3, issue 14 item 1: WhatsApp's 24-hour
-- customer-service window): when a number last wrote to us on a channel,
-- and when the provider last said the window was closed. Keyed like
-- crm_suppressions, by the blind index of the address (the phone number),
-- not by client: a message comes from a number, and a client stored under
-- another id or sent to with an inline recipient has the same number.
-- Nothing personal is kept: not the number, not the text. The policy sees
-- both times as facts before every attempt (who.last_inbound.whatsapp,
-- who.window_closed.whatsapp; Unix seconds). An erasure deletes the rows of
-- the client's number.
CREATE TABLE crm_inbound_contacts (
    channel          text        NOT NULL CHECK (channel IN ('sms', 'whatsapp')),
    address_index    text        NOT NULL CHECK (address_index ~ '^[0-9a-f]{32,128}$'),
    -- the latest message from the number; NULL: it never wrote (only a
    -- closed window is known)
    last_inbound_at  timestamptz,
    messages         bigint      NOT NULL DEFAULT 0,
    -- the provider refused free-form text as outside the window (Meta 131047)
    window_closed_at timestamptz,
    PRIMARY KEY (channel, address_index)
);
