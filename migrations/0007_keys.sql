-- Revoked access tokens (issue 17, item 14): the durable record of the deny
-- list that Redis holds for fast checks (herald:deny:v1:*). A row names a
-- token by its jti and lives as long as the token could: once expires_at
-- (the token's exp) is past, the token is refused anyway and the row is
-- only history (purged an hour later by the next revocation).
CREATE TABLE crm_revoked_tokens (
    jti         text        PRIMARY KEY,
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz NOT NULL DEFAULT now(),
    actor       text        NOT NULL   -- JWT sub, "cli"
);
-- the live rows are loaded into Redis when its copy is missing (a restart),
-- and the dead ones purged: both select by expiry
CREATE INDEX crm_revoked_tokens_expires_idx ON crm_revoked_tokens (expires_at);
