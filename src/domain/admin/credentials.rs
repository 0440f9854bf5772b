//! Service credentials: creating, listing and revoking them. A credential
//! is as narrow as its creator: never more scopes than the creator holds,
//! never outside the creator's tenant, `tenants:write` only at the root level
//! (asking for more is 403 `insufficient_scope`, naming the scope).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Admin;
use crate::db;
use crate::db::credentials::{Among, CredentialRow, Revoked};
use crate::domain::audit::{self, Actor, AuditContext};
use crate::domain::error::DomainError;
use crate::domain::page::{self, Page};
use crate::types::ids::{CredentialId, CredentialName, InvalidInput, TenantId, TenantSlug};
use crate::types::scopes::Scopes;
use crate::types::service_keys::NewServiceKey;

/// Longest lifetime a credential may be given: ten years.
const MAX_EXPIRES_IN: u64 = 10 * 365 * 24 * 3600;

/// What a caller asks for.
#[derive(Debug)]
pub struct NewCredential {
    pub name: CredentialName,
    pub scopes: Scopes,
    /// Seconds from now; `None`: never expires.
    pub expires_in: Option<u64>,
}

/// A credential as listed: never its key.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Credential {
    pub id: CredentialId,
    pub name: CredentialName,
    pub tenant: Option<TenantSlug>,
    pub scopes: Scopes,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    /// Who created it: an actor kind and id, as in the audit log.
    pub created_by: String,
}

/// A new credential and its key, which exists only in this value.
#[derive(Debug)]
pub struct CreatedCredential {
    pub credential: Credential,
    pub key: NewServiceKey,
}

impl From<(CredentialRow, Option<TenantSlug>)> for Credential {
    fn from((row, tenant): (CredentialRow, Option<TenantSlug>)) -> Self {
        Self {
            id: row.id,
            name: row.name,
            tenant,
            scopes: Scopes::from_stored(&row.scopes),
            created_at: row.created_at,
            expires_at: row.expires_at,
            last_used_at: row.last_used_at,
            created_by: format!("{}:{}", row.created_by_kind, row.created_by_id),
        }
    }
}

/// Whether `actor` may create a credential for `tenant` (`None`: the root
/// level) with `scopes`: a tenant's caller only in its tenant, and no scope
/// beyond what the actor holds, nor beyond tenant scopes in a tenant
/// (`tenants:write` is the root level's). The tenant itself was found
/// through the actor, so it is one the actor may manage.
pub(crate) fn may_grant(
    actor: &Actor,
    tenant: Option<TenantId>,
    scopes: Scopes,
) -> Result<(), DomainError> {
    if tenant.is_none() && actor.tenant().is_some() {
        return Err(DomainError::Forbidden(
            "tenant_caller_creating_root_credential",
        ));
    }
    let grantable = match tenant {
        Some(_) => actor.scopes().and(Scopes::TENANT),
        None => actor.scopes(),
    };
    match scopes.first_outside(grantable) {
        Some(missing) => Err(DomainError::InsufficientScope(missing)),
        None => Ok(()),
    }
}

/// When a credential asked for at `now` expires: `expires_in` seconds from
/// now (1 s to ten years), and never after its creator, if the creator is a
/// credential that expires (a credential cannot outlive the one that made it).
fn expiry(
    expires_in: Option<u64>,
    creator: &Actor,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, DomainError> {
    let asked = match expires_in {
        None => None,
        Some(seconds) if (1..=MAX_EXPIRES_IN).contains(&seconds) => {
            Some(now + chrono::Duration::seconds(i64::try_from(seconds).expect("bounded above")))
        }
        Some(_) => {
            return Err(InvalidInput::new(
                "expires_in",
                "must be 1 to 315360000 seconds (ten years)",
            )
            .into());
        }
    };
    let creators = match creator {
        Actor::Credential { expires_at, .. } => *expires_at,
        _ => None,
    };
    Ok(match (asked, creators) {
        (Some(asked), Some(creators)) => Some(asked.min(creators)),
        (asked, creators) => asked.or(creators),
    })
}

impl Admin {
    /// Creates a credential in `tenant` (a slug; `None`: the root level).
    pub async fn create_credential(
        &self,
        ctx: &AuditContext,
        tenant: Option<&str>,
        new: NewCredential,
    ) -> Result<CreatedCredential, DomainError> {
        let tenant = match tenant {
            Some(slug) => Some(self.tenant(ctx, slug).await?),
            None => None,
        };
        let tenant_id = tenant.as_ref().map(|t| t.id);
        may_grant(&ctx.actor, tenant_id, new.scopes)?;
        let expires_at = expiry(new.expires_in, &ctx.actor, Utc::now())?;
        let key = NewServiceKey::generate().map_err(DomainError::internal)?;
        let digest = key.digest();
        let (kind, by) = (ctx.actor.kind(), ctx.actor.id());
        let row = self
            .db
            .transaction(async |conn| {
                let row = db::credentials::insert(
                    conn,
                    db::credentials::NewCredential {
                        id: CredentialId::generate(),
                        name: &new.name,
                        tenant_id,
                        scopes: new.scopes.names(),
                        key_digest: digest.as_bytes(),
                        expires_at,
                        created_by_kind: kind,
                        created_by_id: &by,
                    },
                )
                .await?;
                audit::record(
                    conn,
                    ctx,
                    tenant_id,
                    "credential_created",
                    None,
                    serde_json::json!({
                        "credential_id": row.id,
                        "name": row.name,
                        "scopes": new.scopes.names(),
                        "expires_at": row.expires_at,
                        "key_id": digest.id().to_string(),
                    }),
                )
                .await?;
                Ok::<_, DomainError>(row)
            })
            .await?;
        tracing::info!(
            credential_id = %row.id,
            key_id = %digest.id(),
            tenant = tenant.as_ref().map(|t| t.slug.as_str()),
            scopes = ?new.scopes,
            "service credential created"
        );
        Ok(CreatedCredential {
            credential: Credential::from((row, tenant.map(|t| t.slug))),
            key,
        })
    }

    /// The live credentials of `tenant` (`None`: every one the actor may
    /// see: all of them at the root level, its own tenant's otherwise).
    pub async fn credentials(
        &self,
        ctx: &AuditContext,
        tenant: Option<&str>,
        after: Option<Uuid>,
        limit: Option<u32>,
    ) -> Result<Page<Credential>, DomainError> {
        let asked = page::request(after, limit)?;
        let among = self.among(ctx, tenant).await?;
        let rows = self
            .db
            .query(async |conn| db::credentials::page(conn, among, asked).await)
            .await?;
        Ok(Page::from_rows(rows, asked, |(row, _)| row.id.as_uuid()))
    }

    /// Revokes a credential of `tenant` (`None`: any the actor may see).
    /// Once this returns it fails here; everywhere within a second. Revoking
    /// a revoked one again succeeds (a retry is safe) and audits nothing.
    pub async fn revoke_credential(
        &self,
        ctx: &AuditContext,
        tenant: Option<&str>,
        id: CredentialId,
    ) -> Result<(), DomainError> {
        let among = self.among(ctx, tenant).await?;
        let revoked = self
            .db
            .transaction(async |conn| {
                let row = match db::credentials::revoke(conn, id, among).await? {
                    Revoked::Now(row) => row,
                    Revoked::Already => return Ok(false),
                    Revoked::NotFound => return Err(DomainError::NotFound("credential")),
                };
                audit::record(
                    conn,
                    ctx,
                    row.tenant_id,
                    "credential_revoked",
                    None,
                    serde_json::json!({ "credential_id": row.id, "name": row.name }),
                )
                .await?;
                Ok(true)
            })
            .await?;
        self.credentials.forget();
        if revoked {
            tracing::info!(credential_id = %id, "service credential revoked");
        }
        Ok(())
    }

    /// Which credentials the actor reaches through `tenant`.
    async fn among(&self, ctx: &AuditContext, tenant: Option<&str>) -> Result<Among, DomainError> {
        Ok(match (tenant, ctx.actor.tenant()) {
            (Some(slug), _) => Among::Tenant(self.tenant(ctx, slug).await?.id),
            (None, Some(own)) => Among::Tenant(own),
            (None, None) => Among::All,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::scopes::Scope;

    fn credential(tenant: Option<TenantId>, scopes: &[&str]) -> Actor {
        Actor::Credential {
            id: CredentialId::generate(),
            tenant,
            scopes: Scopes::parse(scopes).unwrap(),
            expires_at: None,
        }
    }

    #[test]
    fn no_credential_is_wider_than_its_creator() {
        let tenant = Some(TenantId::generate());
        let creator = credential(tenant, &["credentials:write", "introspect"]);
        let introspect = Scopes::parse(&["introspect"]).unwrap();
        assert!(may_grant(&creator, tenant, introspect).is_ok());
        let wider = Scopes::parse(&["introspect", "users:write"]).unwrap();
        assert!(matches!(
            may_grant(&creator, tenant, wider),
            Err(DomainError::InsufficientScope(Scope::UsersWrite))
        ));
    }

    #[test]
    fn tenant_callers_stay_in_their_tenant() {
        let tenant = TenantId::generate();
        let introspect = Scopes::parse(&["introspect"]).unwrap();
        let admin = Actor::Admin {
            user: crate::types::ids::UserId::generate(),
            tenant,
        };
        assert!(may_grant(&admin, Some(tenant), introspect).is_ok());
        assert!(matches!(
            may_grant(&admin, None, introspect),
            Err(DomainError::Forbidden(_))
        ));
        let bound = credential(Some(tenant), &["credentials:write", "introspect"]);
        assert!(matches!(
            may_grant(&bound, None, introspect),
            Err(DomainError::Forbidden(_))
        ));
    }

    #[test]
    fn tenants_write_is_root_level_only() {
        let root = Actor::Service(crate::types::service_keys::KeyDigest::of("k").id());
        let tenants = Scopes::parse(&["tenants:write"]).unwrap();
        assert!(may_grant(&root, None, tenants).is_ok());
        assert!(matches!(
            may_grant(&root, Some(TenantId::generate()), tenants),
            Err(DomainError::InsufficientScope(Scope::TenantsWrite))
        ));
        let admin = Actor::Admin {
            user: crate::types::ids::UserId::generate(),
            tenant: TenantId::generate(),
        };
        assert!(matches!(
            may_grant(&admin, None, tenants),
            Err(DomainError::Forbidden(_))
        ));
    }

    #[test]
    fn lifetimes_are_bounded_and_never_outlast_the_creator() {
        let now = Utc::now();
        let root = Actor::Operator;
        assert_eq!(expiry(None, &root, now).unwrap(), None);
        let minute = now + chrono::Duration::seconds(60);
        assert_eq!(expiry(Some(60), &root, now).unwrap(), Some(minute));
        assert!(expiry(Some(0), &root, now).is_err());
        assert!(expiry(Some(MAX_EXPIRES_IN + 1), &root, now).is_err());
        let creator = Actor::Credential {
            id: CredentialId::generate(),
            tenant: None,
            scopes: Scopes::ALL,
            expires_at: Some(minute),
        };
        assert_eq!(expiry(None, &creator, now).unwrap(), Some(minute));
        assert_eq!(expiry(Some(3600), &creator, now).unwrap(), Some(minute));
        assert_eq!(
            expiry(Some(30), &creator, now).unwrap(),
            Some(now + chrono::Duration::seconds(30))
        );
    }
}
