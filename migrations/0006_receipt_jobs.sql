-- Parked receipts: a failure receipt that arrives before its send is
-- recorded is stored as a 'receipt' job (payload: the receipt) and applied
-- by a worker once the send is recorded, instead of holding the webhook's
-- HTTP thread. Failure alerts are 'alert' jobs (payload {target, category,
-- reason}), one per message and target (dedup_key), retried until the
-- operations endpoint takes them.
ALTER TABLE crm_jobs DROP CONSTRAINT crm_jobs_kind_check;
ALTER TABLE crm_jobs ADD CONSTRAINT crm_jobs_kind_check
    CHECK (kind IN ('send', 'digest', 'no_receipt', 'alert', 'receipt'));
