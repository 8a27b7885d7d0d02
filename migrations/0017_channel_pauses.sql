-- The operator's desk (issue 15 item 2): a channel an operator paused
-- (`pause('sms')` in the attached console, POST /api/crm/admin/channels/
-- {channel}/pause). While a row is here no message is handed to that
-- channel's provider: its jobs wait, nothing is lost, and they go once the
-- row is deleted (resume). Every process reads this table (cached for a
-- second), so a pause holds across the cluster. Both actions are audited.
CREATE TABLE crm_channel_pauses (
    channel    text        PRIMARY KEY CHECK (channel IN ('email', 'sms', 'whatsapp')),
    paused_by  text        NOT NULL,
    reason     text,
    paused_at  timestamptz NOT NULL DEFAULT now()
);
