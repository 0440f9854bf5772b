-- Sealed secrets now start with the id of the master key that sealed them
-- (`tjk1` and 8 bytes): 84 bytes. Values sealed before (72 bytes) stay
-- valid until `tenant-jwt keys rewrap` re-seals them.
ALTER TABLE user_secrets DROP CONSTRAINT user_secrets_ciphertext_check;
ALTER TABLE user_secrets ADD CONSTRAINT user_secrets_ciphertext_check
    CHECK (length(ciphertext) IN (24 + 32 + 16, 12 + 24 + 32 + 16));
