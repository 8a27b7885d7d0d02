-- At most one send job per message. Every path already keeps to it (a
-- retry or the next channel reuses the message's job; a receipt or a
-- no-receipt timer makes a resend only when none is left), but two of them
-- racing (a failure receipt and a timer due at the same moment) could each
-- see "none" in their own snapshot: the index makes the second one fail
-- instead of sending the fallback twice.
CREATE UNIQUE INDEX crm_jobs_one_send_idx ON crm_jobs (communication_id)
    WHERE kind = 'send';

-- What a message carries besides its text ({"attachments": [...]}, e.g. the
-- blueprint PDF), kept with the message rather than its first job: a resend
-- made by a receipt or a timer, long after that job is gone, still has it.
ALTER TABLE crm_communications ADD COLUMN payload jsonb
    CHECK (payload IS NULL OR jsonb_typeof(payload) = 'object');
