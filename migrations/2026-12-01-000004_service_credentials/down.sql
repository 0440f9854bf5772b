DROP INDEX audit_events_root;
DELETE FROM audit_events WHERE tenant_id IS NULL OR actor_kind = 'credential';
ALTER TABLE audit_events DROP CONSTRAINT audit_events_actor_kind_check;
ALTER TABLE audit_events ADD CONSTRAINT audit_events_actor_kind_check
    CHECK (actor_kind IN ('service', 'user', 'operator', 'system'));
ALTER TABLE audit_events ALTER COLUMN tenant_id SET NOT NULL;
DROP TABLE service_credential_changes;
DROP TRIGGER service_credentials_changed ON service_credentials;
DROP FUNCTION service_credentials_changed();
DROP TABLE service_credentials;
