//! The `audit_events` table.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::page::{Keyset, keyset};
use super::schema::audit_events;
use crate::types::ids::{TenantId, UserId};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_events, check_for_backend(diesel::pg::Pg))]
pub struct AuditRow {
    pub id: Uuid,
    /// `None`: a root-level event (a credential with no tenant).
    pub tenant_id: Option<TenantId>,
    pub actor_kind: String,
    pub actor_id: String,
    pub action: String,
    pub target_user_id: Option<UserId>,
    pub details: serde_json::Value,
    pub request_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

pub async fn insert(conn: &mut AsyncPgConnection, row: &AuditRow) -> QueryResult<()> {
    diesel::insert_into(audit_events::table)
        .values(row)
        .execute(conn)
        .await
        .map(drop)
}

/// A page of a tenant's events (`None`: the root-level ones), oldest first.
pub async fn page(
    conn: &mut AsyncPgConnection,
    tenant: Option<TenantId>,
    page: Keyset,
) -> QueryResult<Vec<AuditRow>> {
    let query = audit_events::table
        .select(AuditRow::as_select())
        .into_boxed();
    let query = match tenant {
        Some(tenant) => query.filter(audit_events::tenant_id.eq(tenant)),
        None => query.filter(audit_events::tenant_id.is_null()),
    };
    keyset!(query, audit_events::id, page).load(conn).await
}

/// Whether `tenant`'s log has an `action` on `user` within the last `within_ms`.
pub async fn recently(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    user: UserId,
    action: &str,
    within_ms: i64,
) -> QueryResult<bool> {
    let since = Utc::now() - chrono::Duration::milliseconds(within_ms);
    diesel::select(diesel::dsl::exists(
        audit_events::table
            .filter(audit_events::tenant_id.eq(tenant))
            .filter(audit_events::target_user_id.eq(user))
            .filter(audit_events::action.eq(action))
            .filter(audit_events::created_at.ge(since)),
    ))
    .get_result(conn)
    .await
}
