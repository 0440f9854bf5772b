-- Where and when a session was last used, for the user's list of sessions.
-- Nullable columns without a default: adding them rewrites nothing and takes
-- only a brief lock, so this is safe on a populated table.
ALTER TABLE sessions
    ADD COLUMN last_used_at timestamptz,
    ADD COLUMN user_agent   text,
    ADD COLUMN ip           text;
