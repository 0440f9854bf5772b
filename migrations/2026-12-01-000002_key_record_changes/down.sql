DROP TRIGGER key_record_changed ON users;
DROP FUNCTION key_record_changed();
DROP TABLE key_record_changes;
