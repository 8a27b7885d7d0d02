-- GDPR erasure (Art. 17, DELETE /api/crm/clients/{client_id}): a message
-- whose personal data (context, recipient override, tracked links, log texts)
-- was erased keeps its row, so analytics stay correct, and says when.
ALTER TABLE crm_communications ADD COLUMN erased_at timestamptz;
