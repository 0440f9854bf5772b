ALTER TABLE user_secrets DROP CONSTRAINT user_secrets_ciphertext_check;
ALTER TABLE user_secrets ADD CONSTRAINT user_secrets_ciphertext_check
    CHECK (length(ciphertext) = 24 + 32 + 16);
