-- Personal data at rest (issue 17, item 12): the client's name and the
-- message context are stored encrypted, as email and phone already were.
--
-- The keys live outside the database, so this migration cannot encrypt
-- what is stored: it adds the encrypted columns and lets the clear ones be
-- empty. New writes fill only the *_enc column (the field encryption
-- envelope of core/crypto, fields "name" and "context"); readers take the
-- *_enc column when it is set and the clear one otherwise, so rows written
-- before this migration keep working until `herald rekey` encrypts them
-- (it moves each clear value into its *_enc column and empties the clear
-- one, in small batches, while the server runs). `herald check` counts the
-- rows still in clear.
--
-- All of it is catalog-only (no table rewrite, no long lock): a new
-- nullable column without a default, DROP NOT NULL, and CHECKs added NOT
-- VALID (enforced for every new or updated row; old rows are valid by
-- construction since their *_enc is NULL).
ALTER TABLE crm_client_preferences ADD COLUMN name_enc text;
ALTER TABLE crm_client_preferences ADD CONSTRAINT crm_client_preferences_name_once
    CHECK (name IS NULL OR name_enc IS NULL) NOT VALID;

-- context stays the jsonb it was for old rows; an encrypted row has
-- context NULL and context_enc set (the JSON text, encrypted whole: one
-- AEAD per message).
ALTER TABLE crm_communications ADD COLUMN context_enc text;
ALTER TABLE crm_communications ALTER COLUMN context DROP NOT NULL;
ALTER TABLE crm_communications ALTER COLUMN context DROP DEFAULT;
ALTER TABLE crm_communications ADD CONSTRAINT crm_communications_context_once
    CHECK (context IS NULL OR context_enc IS NULL) NOT VALID;
