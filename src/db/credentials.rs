//! The `service_credentials` table (keys kept as digests only) and the
//! revision counter every change to it moves.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::Bool;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::page::{Keyset, keyset};
use super::schema::{service_credential_changes, service_credentials, tenants};
use crate::types::ids::{CredentialId, CredentialName, TenantId, TenantSlug};

/// A credential as listed (never its digest).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = service_credentials, check_for_backend(diesel::pg::Pg))]
pub struct CredentialRow {
    pub id: CredentialId,
    pub name: CredentialName,
    pub tenant_id: Option<TenantId>,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub created_by_kind: String,
    pub created_by_id: String,
}

/// What authentication needs of a live credential.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = service_credentials, check_for_backend(diesel::pg::Pg))]
pub struct GrantRow {
    pub id: CredentialId,
    pub tenant_id: Option<TenantId>,
    pub scopes: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Insertable)]
#[diesel(table_name = service_credentials)]
pub struct NewCredential<'a> {
    pub id: CredentialId,
    pub name: &'a CredentialName,
    pub tenant_id: Option<TenantId>,
    pub scopes: Vec<&'static str>,
    pub key_digest: &'a [u8],
    pub expires_at: Option<DateTime<Utc>>,
    pub created_by_kind: &'a str,
    pub created_by_id: &'a str,
}

/// Whose credentials a listing or a revocation may touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Among {
    /// Every credential, root-level and of every tenant.
    All,
    /// One tenant's.
    Tenant(TenantId),
}

pub async fn insert(
    conn: &mut AsyncPgConnection,
    new: NewCredential<'_>,
) -> QueryResult<CredentialRow> {
    diesel::insert_into(service_credentials::table)
        .values(new)
        .returning(CredentialRow::as_returning())
        .get_result(conn)
        .await
}

/// The live (not revoked) credential whose key has this digest. Expiry is
/// the caller's to check: it is checked at every use.
pub async fn find_live_by_digest(
    conn: &mut AsyncPgConnection,
    digest: &[u8],
) -> QueryResult<Option<GrantRow>> {
    service_credentials::table
        .filter(service_credentials::key_digest.eq(digest))
        .filter(service_credentials::revoked_at.is_null())
        .select(GrantRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// A page of live credentials with their tenant's slug, oldest first.
pub async fn page(
    conn: &mut AsyncPgConnection,
    among: Among,
    page: Keyset,
) -> QueryResult<Vec<(CredentialRow, Option<TenantSlug>)>> {
    let mut query = service_credentials::table
        .left_join(tenants::table)
        .filter(service_credentials::revoked_at.is_null())
        .select((CredentialRow::as_select(), tenants::slug.nullable()))
        .into_boxed();
    if let Among::Tenant(tenant) = among {
        query = query.filter(service_credentials::tenant_id.eq(tenant));
    }
    keyset!(query, service_credentials::id, page)
        .load(conn)
        .await
}

/// What `revoke` found.
#[derive(Debug)]
pub enum Revoked {
    /// Revoked now: the row as it is.
    Now(CredentialRow),
    /// Revoked before.
    Already,
    /// No such credential among those `among` includes.
    NotFound,
}

/// Revokes a credential, if `among` includes it.
pub async fn revoke(
    conn: &mut AsyncPgConnection,
    id: CredentialId,
    among: Among,
) -> QueryResult<Revoked> {
    let only = match among {
        Among::All => None,
        Among::Tenant(tenant) => Some(tenant),
    };
    let reachable = service_credentials::id.eq(id).and(
        only.is_none()
            .into_sql::<Bool>()
            .or(service_credentials::tenant_id.eq(only).assume_not_null()),
    );
    let revoked = diesel::update(service_credentials::table)
        .filter(reachable)
        .filter(service_credentials::revoked_at.is_null())
        .set(service_credentials::revoked_at.eq(diesel::dsl::now))
        .returning(CredentialRow::as_returning())
        .get_result(conn)
        .await
        .optional()?;
    if let Some(row) = revoked {
        return Ok(Revoked::Now(row));
    }
    let exists = diesel::select(diesel::dsl::exists(
        service_credentials::table.filter(reachable),
    ))
    .get_result::<bool>(conn)
    .await?;
    Ok(if exists {
        Revoked::Already
    } else {
        Revoked::NotFound
    })
}

/// How many changes authentication must see have been committed.
pub async fn revision(conn: &mut AsyncPgConnection) -> QueryResult<i64> {
    service_credential_changes::table
        .select(service_credential_changes::revision)
        .first(conn)
        .await
}

/// Notes that these credentials were used just now, leaving alone any
/// noted within the last minute (by this instance or another).
pub async fn note_used(conn: &mut AsyncPgConnection, ids: &[CredentialId]) -> QueryResult<usize> {
    let a_minute_ago = Utc::now() - chrono::Duration::minutes(1);
    diesel::update(service_credentials::table)
        .filter(service_credentials::id.eq_any(ids))
        .filter(
            service_credentials::last_used_at
                .is_null()
                .or(service_credentials::last_used_at.lt(a_minute_ago)),
        )
        .set(service_credentials::last_used_at.eq(diesel::dsl::now))
        .execute(conn)
        .await
}
