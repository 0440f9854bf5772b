DROP TABLE user_roles;
DROP TABLE roles;
ALTER TABLE tenants DROP COLUMN authz_version;
