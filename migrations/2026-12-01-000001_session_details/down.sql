ALTER TABLE sessions
    DROP COLUMN ip,
    DROP COLUMN user_agent,
    DROP COLUMN last_used_at;
