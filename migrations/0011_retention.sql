-- Retention (issue 12): the engine deletes events older than
-- retention.events_days in small batches; this index finds them without
-- reading the whole log.
CREATE INDEX crm_delivery_logs_event_time_idx ON crm_delivery_logs (occurred_at, id)
    WHERE kind = 'event';
