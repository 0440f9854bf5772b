//! The `users` table.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::schema::{tenants, users};

#[declare_sql_function]
extern "SQL" {
    /// Postgres `lower(text)`; matches the `users_tenant_username_key` index.
    fn lower(value: Text) -> Text;
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
pub struct UserRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub username: String,
    pub password_hash: String,
    pub role: String,
    pub record_version: i64,
    pub created_at: DateTime<Utc>,
    pub disabled_at: Option<DateTime<Utc>>,
}

#[derive(Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub username: &'a str,
    pub password_hash: &'a str,
    pub role: &'a str,
}

pub async fn insert(conn: &mut AsyncPgConnection, new: NewUser<'_>) -> QueryResult<UserRow> {
    diesel::insert_into(users::table)
        .values(new)
        .returning(UserRow::as_returning())
        .get_result(conn)
        .await
}

/// The user a login names: by tenant slug and username, ignoring case.
pub async fn find_by_login(
    conn: &mut AsyncPgConnection,
    tenant_slug: &str,
    username: &str,
) -> QueryResult<Option<UserRow>> {
    users::table
        .inner_join(tenants::table)
        .filter(tenants::slug.eq(tenant_slug))
        .filter(lower(users::username).eq(username.to_ascii_lowercase()))
        .select(UserRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// A user with their tenant's slug: what a key record is built from.
pub async fn find_with_tenant_slug(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
) -> QueryResult<Option<(UserRow, String)>> {
    users::table
        .inner_join(tenants::table)
        .filter(users::id.eq(user_id))
        .select((UserRow::as_select(), tenants::slug))
        .first(conn)
        .await
        .optional()
}
