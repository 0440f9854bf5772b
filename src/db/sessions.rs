//! The `sessions` and `refresh_tokens` tables.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::schema::{refresh_tokens, sessions};
use crate::types::ids::{SessionId, UserId};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = sessions, check_for_backend(diesel::pg::Pg))]
pub struct SessionRow {
    pub id: SessionId,
    pub user_id: UserId,
    pub access_valid_until: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = refresh_tokens, check_for_backend(diesel::pg::Pg))]
pub struct RefreshRow {
    pub session_id: SessionId,
    pub user_id: UserId,
    pub expires_at: DateTime<Utc>,
    pub spent_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A session as its user sees it in their list.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = sessions, check_for_backend(diesel::pg::Pg))]
pub struct SessionListing {
    pub id: SessionId,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

/// Where a session was used from, recorded at login and at each refresh.
#[derive(Debug, Clone, Copy, Default)]
pub struct SessionUse<'a> {
    pub user_agent: Option<&'a str>,
    pub ip: Option<&'a str>,
}

/// Which sessions a revocation ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sessions {
    One(SessionId),
    /// Every session of the user.
    AllOf(UserId),
}

pub async fn insert_session(
    conn: &mut AsyncPgConnection,
    id: SessionId,
    user: UserId,
    access_valid_until: DateTime<Utc>,
    used: SessionUse<'_>,
) -> QueryResult<()> {
    diesel::insert_into(sessions::table)
        .values((
            sessions::id.eq(id),
            sessions::user_id.eq(user),
            sessions::access_valid_until.eq(access_valid_until),
            sessions::last_used_at.eq(diesel::dsl::now),
            sessions::user_agent.eq(used.user_agent),
            sessions::ip.eq(used.ip),
        ))
        .execute(conn)
        .await
        .map(drop)
}

pub async fn lock_session(
    conn: &mut AsyncPgConnection,
    id: SessionId,
) -> QueryResult<Option<SessionRow>> {
    sessions::table
        .find(id)
        .select(SessionRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()
}

/// Records that an access token valid until `until` was issued in the
/// session, now, to the client `used` describes.
pub async fn extend_session(
    conn: &mut AsyncPgConnection,
    id: SessionId,
    until: DateTime<Utc>,
    used: SessionUse<'_>,
) -> QueryResult<()> {
    diesel::update(sessions::table.find(id))
        .set((
            sessions::access_valid_until.eq(until),
            sessions::last_used_at.eq(diesel::dsl::now),
            sessions::user_agent.eq(used.user_agent),
            sessions::ip.eq(used.ip),
        ))
        .execute(conn)
        .await
        .map(drop)
}

/// The user's session `id`, if it is theirs.
pub async fn find_session(
    conn: &mut AsyncPgConnection,
    user: UserId,
    id: SessionId,
) -> QueryResult<Option<SessionRow>> {
    sessions::table
        .find(id)
        .filter(sessions::user_id.eq(user))
        .select(SessionRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// The user's live sessions, most recently used first, at most `limit`: not
/// revoked, and with an access token or a usable refresh token left.
pub async fn live(
    conn: &mut AsyncPgConnection,
    user: UserId,
    limit: i64,
) -> QueryResult<Vec<SessionListing>> {
    let usable_refresh = refresh_tokens::table
        .filter(refresh_tokens::session_id.eq(sessions::id))
        .filter(refresh_tokens::spent_at.is_null())
        .filter(refresh_tokens::revoked_at.is_null())
        .filter(refresh_tokens::expires_at.gt(diesel::dsl::now));
    sessions::table
        .filter(sessions::user_id.eq(user))
        .filter(sessions::revoked_at.is_null())
        .filter(
            sessions::access_valid_until
                .gt(diesel::dsl::now)
                .or(diesel::dsl::exists(usable_refresh)),
        )
        .order((
            diesel::dsl::sql::<diesel::sql_types::Timestamptz>(
                "coalesce(last_used_at, created_at)",
            )
            .desc(),
            sessions::id.desc(),
        ))
        .limit(limit)
        .select(SessionListing::as_select())
        .load(conn)
        .await
}

/// Revokes sessions that are not revoked yet, and their refresh tokens;
/// returns how many sessions it revoked.
pub async fn revoke(
    conn: &mut AsyncPgConnection,
    which: Sessions,
    reason: &str,
) -> QueryResult<usize> {
    let mut revoke_sessions = diesel::update(sessions::table)
        .filter(sessions::revoked_at.is_null())
        .into_boxed();
    let mut revoke_tokens = diesel::update(refresh_tokens::table)
        .filter(refresh_tokens::revoked_at.is_null())
        .into_boxed();
    match which {
        Sessions::One(id) => {
            revoke_sessions = revoke_sessions.filter(sessions::id.eq(id));
            revoke_tokens = revoke_tokens.filter(refresh_tokens::session_id.eq(id));
        }
        Sessions::AllOf(user) => {
            revoke_sessions = revoke_sessions.filter(sessions::user_id.eq(user));
            revoke_tokens = revoke_tokens.filter(refresh_tokens::user_id.eq(user));
        }
    }
    let revoked = revoke_sessions
        .set((
            sessions::revoked_at.eq(diesel::dsl::now),
            sessions::revoke_reason.eq(reason),
        ))
        .execute(conn)
        .await?;
    revoke_tokens
        .set(refresh_tokens::revoked_at.eq(diesel::dsl::now))
        .execute(conn)
        .await?;
    Ok(revoked)
}

/// Revoked sessions of a user whose access tokens may not all have expired.
pub async fn revoked_and_live(
    conn: &mut &AsyncPgConnection,
    user: UserId,
) -> QueryResult<Vec<SessionId>> {
    sessions::table
        .filter(sessions::user_id.eq(user))
        .filter(sessions::revoked_at.is_not_null())
        .filter(sessions::access_valid_until.gt(diesel::dsl::now))
        .select(sessions::id)
        .load(conn)
        .await
}

/// A refresh token to record, by the hash of its value.
pub struct NewRefresh<'a> {
    pub token_hash: &'a [u8],
    pub session: SessionId,
    pub user: UserId,
    pub expires_at: DateTime<Utc>,
}

pub async fn insert_refresh(conn: &mut AsyncPgConnection, new: NewRefresh<'_>) -> QueryResult<()> {
    diesel::insert_into(refresh_tokens::table)
        .values((
            refresh_tokens::token_hash.eq(new.token_hash),
            refresh_tokens::session_id.eq(new.session),
            refresh_tokens::user_id.eq(new.user),
            refresh_tokens::expires_at.eq(new.expires_at),
        ))
        .execute(conn)
        .await
        .map(drop)
}

pub async fn find_refresh(
    conn: &mut AsyncPgConnection,
    token_hash: &[u8],
) -> QueryResult<Option<RefreshRow>> {
    refresh_tokens::table
        .find(token_hash)
        .select(RefreshRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// Spends a refresh token if it is unspent, unrevoked and unexpired, in one
/// statement: of two concurrent attempts, at most one gets the row.
pub async fn spend_refresh(
    conn: &mut AsyncPgConnection,
    token_hash: &[u8],
) -> QueryResult<Option<RefreshRow>> {
    diesel::update(
        refresh_tokens::table
            .find(token_hash)
            .filter(refresh_tokens::spent_at.is_null())
            .filter(refresh_tokens::revoked_at.is_null())
            .filter(refresh_tokens::expires_at.gt(diesel::dsl::now)),
    )
    .set(refresh_tokens::spent_at.eq(diesel::dsl::now))
    .returning(RefreshRow::as_returning())
    .get_result(conn)
    .await
    .optional()
}

/// Deletes expired refresh tokens, then sessions that can no longer matter:
/// their access tokens have expired and they are revoked or have no refresh
/// token left. Returns (refresh tokens, sessions) deleted.
pub async fn prune(conn: &mut AsyncPgConnection) -> QueryResult<(usize, usize)> {
    let tokens = diesel::delete(
        refresh_tokens::table.filter(refresh_tokens::expires_at.lt(diesel::dsl::now)),
    )
    .execute(conn)
    .await?;
    let sessions = diesel::sql_query(
        "DELETE FROM sessions s WHERE s.access_valid_until < now() \
         AND (s.revoked_at IS NOT NULL \
              OR NOT EXISTS (SELECT 1 FROM refresh_tokens r WHERE r.session_id = s.id))",
    )
    .execute(conn)
    .await?;
    Ok((tokens, sessions))
}
