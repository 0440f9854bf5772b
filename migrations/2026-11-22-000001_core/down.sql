DROP TABLE master_key_check;
DROP TABLE user_secrets;
DROP TABLE users;
DROP TABLE tenants;
DROP FUNCTION user_secrets_check_current_secret();
DROP FUNCTION users_check_current_secret();
DROP FUNCTION assert_one_current_secret(uuid);
