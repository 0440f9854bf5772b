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

/// What a listing of a tenant's log is narrowed to.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub action: Option<String>,
    /// Events about this user.
    pub user: Option<UserId>,
}

/// A page of `tenant`'s events, newest first: those before `page.after`
/// (an event id), as `filter` narrows them.
pub async fn newest(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    filter: &AuditFilter,
    page: Keyset,
) -> QueryResult<Vec<AuditRow>> {
    let mut query = audit_events::table
        .select(AuditRow::as_select())
        .filter(audit_events::tenant_id.eq(tenant))
        .order(audit_events::id.desc())
        .limit(page.limit)
        .into_boxed();
    if let Some(before) = page.after {
        query = query.filter(audit_events::id.lt(before));
    }
    if let Some(action) = &filter.action {
        query = query.filter(audit_events::action.eq(action));
    }
    if let Some(user) = filter.user {
        query = query.filter(audit_events::target_user_id.eq(user));
    }
    query.load(conn).await
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
