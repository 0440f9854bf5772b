//! The `user_secrets` table: sealed per-user signing secrets, one row per
//! generation. The database itself keeps exactly one current generation per
//! user (see the migration).

use super::schema::user_secrets;
use crate::types::ids::{Generation, UserId};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = user_secrets, check_for_backend(diesel::pg::Pg))]
pub struct SecretRow {
    pub generation: Generation,
    pub ciphertext: Vec<u8>,
    pub retired_at: Option<DateTime<Utc>>,
    pub valid_until: Option<DateTime<Utc>>,
}

#[derive(Insertable)]
#[diesel(table_name = user_secrets)]
pub struct NewSecret<'a> {
    pub user_id: UserId,
    pub generation: Generation,
    pub ciphertext: &'a [u8],
}

pub async fn insert(conn: &mut AsyncPgConnection, new: NewSecret<'_>) -> QueryResult<()> {
    diesel::insert_into(user_secrets::table)
        .values(new)
        .execute(conn)
        .await
        .map(drop)
}

/// The generations that can still verify a token: the current one, and
/// retired ones whose grace period has not ended. Newest first.
pub async fn usable(conn: &mut &AsyncPgConnection, user: UserId) -> QueryResult<Vec<SecretRow>> {
    user_secrets::table
        .filter(user_secrets::user_id.eq(user))
        .filter(
            user_secrets::retired_at
                .is_null()
                .or(user_secrets::valid_until.gt(diesel::dsl::now)),
        )
        .order(user_secrets::generation.desc())
        .select(SecretRow::as_select())
        .load(conn)
        .await
}

/// The user's current generation.
pub async fn current_generation(
    conn: &mut AsyncPgConnection,
    user: UserId,
) -> QueryResult<Generation> {
    user_secrets::table
        .filter(user_secrets::user_id.eq(user))
        .filter(user_secrets::retired_at.is_null())
        .select(user_secrets::generation)
        .first(conn)
        .await
}

/// Retires a generation now; its tokens stay valid until `valid_until`.
pub async fn retire(
    conn: &mut AsyncPgConnection,
    user: UserId,
    generation: Generation,
    valid_until: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(user_secrets::table.find((user, generation)))
        .set((
            user_secrets::retired_at.eq(diesel::dsl::now),
            user_secrets::valid_until.eq(valid_until),
        ))
        .execute(conn)
        .await
        .map(drop)
}
