-- A client who never stated a channel order has no preference: NULL means
-- "in the order the decision matrix gives". With a default of all three
-- channels, every client looked as if they had chosen email, sms, whatsapp,
-- which reordered fallback chains (vendor_options: whatsapp before sms) for
-- clients who had asked for nothing. An explicit list, even [] ("none"), is
-- still a preference.
ALTER TABLE crm_client_preferences ALTER COLUMN allowed_channels DROP NOT NULL;
ALTER TABLE crm_client_preferences ALTER COLUMN allowed_channels DROP DEFAULT;
UPDATE crm_client_preferences SET allowed_channels = NULL
 WHERE allowed_channels = ARRAY['email', 'sms', 'whatsapp']::text[];
