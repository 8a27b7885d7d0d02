-- Click tracking: the links of a tracked email, by index, as rendered. A
-- click token carries (message, index, hash of the URL) under an HMAC, and
-- /t/c/{token} redirects to tracked_links[index] only when its hash matches:
-- the token binds the URL without carrying it (tokens stay 64 characters).
-- Written with the message's `sending` mark, so no extra write per email.
ALTER TABLE crm_communications ADD COLUMN tracked_links jsonb
    CHECK (tracked_links IS NULL OR jsonb_typeof(tracked_links) = 'array');
