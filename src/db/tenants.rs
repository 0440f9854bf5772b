//! The `tenants` table.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::schema::tenants;
use crate::types::ids::{TenantId, TenantName, TenantSlug};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = tenants, check_for_backend(diesel::pg::Pg))]
pub struct TenantRow {
    pub id: TenantId,
    pub slug: TenantSlug,
    pub name: TenantName,
    pub created_at: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = tenants)]
pub struct NewTenant<'a> {
    pub id: TenantId,
    pub slug: &'a TenantSlug,
    pub name: &'a TenantName,
}

pub async fn insert(conn: &mut AsyncPgConnection, new: NewTenant<'_>) -> QueryResult<TenantRow> {
    diesel::insert_into(tenants::table)
        .values(new)
        .returning(TenantRow::as_returning())
        .get_result(conn)
        .await
}

pub async fn find_by_slug(
    conn: &mut AsyncPgConnection,
    slug: &TenantSlug,
) -> QueryResult<Option<TenantRow>> {
    tenants::table
        .filter(tenants::slug.eq(slug))
        .select(TenantRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// Locks a tenant's row until the transaction ends: changes that could remove
/// its last admin take turns.
pub async fn lock(conn: &mut AsyncPgConnection, tenant: TenantId) -> QueryResult<()> {
    tenants::table
        .find(tenant)
        .select(tenants::id)
        .for_update()
        .first::<TenantId>(conn)
        .await
        .map(drop)
}
