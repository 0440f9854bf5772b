//! The `key_record_changes` outbox: one row per committed change of a user's
//! key record, written by a trigger on `users` in the change's own
//! transaction (see the migration). Times are Postgres's own clock.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Int8, Nullable, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::schema::key_record_changes;
use crate::types::ids::UserId;

#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct Change {
    #[diesel(sql_type = Int8)]
    pub id: i64,
    #[diesel(sql_type = SqlUuid)]
    pub user_id: UserId,
    #[diesel(sql_type = Int8)]
    pub version: i64,
    #[diesel(sql_type = Bool)]
    pub deleted: bool,
}

/// Marks `user`'s changes up to `version` published.
pub async fn mark_published(
    conn: &mut AsyncPgConnection,
    user: UserId,
    version: i64,
) -> QueryResult<usize> {
    diesel::update(
        key_record_changes::table
            .filter(key_record_changes::user_id.eq(user))
            .filter(key_record_changes::version.le(version))
            .filter(key_record_changes::published_at.is_null()),
    )
    .set(key_record_changes::published_at.eq(diesel::dsl::now))
    .execute(conn)
    .await
}

/// Up to `limit` unpublished changes at least `min_age_ms` old, oldest
/// first, locked for the caller's transaction; rows another transaction has
/// locked are skipped, so instances draining at once share the work.
pub async fn claim_unpublished(
    conn: &mut AsyncPgConnection,
    min_age_ms: i64,
    limit: i64,
) -> QueryResult<Vec<Change>> {
    diesel::sql_query(
        "SELECT id, user_id, version, deleted FROM key_record_changes \
         WHERE published_at IS NULL AND created_at <= now() - $1 * interval '1 millisecond' \
         ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind::<BigInt, _>(min_age_ms)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await
}

pub async fn mark_ids_published(conn: &mut AsyncPgConnection, ids: &[i64]) -> QueryResult<usize> {
    diesel::update(key_record_changes::table.filter(key_record_changes::id.eq_any(ids)))
        .set(key_record_changes::published_at.eq(diesel::dsl::now))
        .execute(conn)
        .await
}

/// The newest change of each user published within the last `window_ms`,
/// for publishing again after Redis may have lost them (a failover).
pub async fn published_within(
    conn: &mut AsyncPgConnection,
    window_ms: i64,
) -> QueryResult<Vec<Change>> {
    diesel::sql_query(
        "SELECT DISTINCT ON (user_id) id, user_id, version, deleted FROM key_record_changes \
         WHERE published_at IS NOT NULL AND published_at >= now() - $1 * interval '1 millisecond' \
         ORDER BY user_id, version DESC",
    )
    .bind::<BigInt, _>(window_ms)
    .load(conn)
    .await
}

#[derive(Debug, Clone, Copy, QueryableByName)]
pub struct Backlog {
    #[diesel(sql_type = BigInt)]
    pub unpublished: i64,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub oldest: Option<DateTime<Utc>>,
    #[diesel(sql_type = Timestamptz)]
    pub now: DateTime<Utc>,
}

/// How many changes wait to be published, and since when.
pub async fn backlog(conn: &mut AsyncPgConnection) -> QueryResult<Backlog> {
    diesel::sql_query(
        "SELECT count(*) AS unpublished, min(created_at) AS oldest, now() AS now \
         FROM key_record_changes WHERE published_at IS NULL",
    )
    .get_result(conn)
    .await
}

/// Deletes changes published more than `age_ms` ago.
pub async fn prune(conn: &mut AsyncPgConnection, age_ms: i64) -> QueryResult<usize> {
    diesel::sql_query(
        "DELETE FROM key_record_changes \
         WHERE published_at IS NOT NULL AND published_at < now() - $1 * interval '1 millisecond'",
    )
    .bind::<BigInt, _>(age_ms)
    .execute(conn)
    .await
}
