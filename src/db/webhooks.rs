//! The `webhook_endpoints`, `webhook_messages` and `webhook_attempts`
//! tables. Times are Postgres's own clock.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bytea, Int4, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::page::{Keyset, keyset};
use super::schema::{webhook_attempts, webhook_endpoints, webhook_messages};
use crate::types::ids::{MessageId, TenantId, WebhookId};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhook_endpoints, check_for_backend(diesel::pg::Pg))]
pub struct EndpointRow {
    pub id: WebhookId,
    pub tenant_id: TenantId,
    pub url: String,
    pub events: Vec<String>,
    pub description: String,
    pub disabled: bool,
    pub secret: Vec<u8>,
    pub previous_secret: Option<Vec<u8>>,
    pub previous_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a `PATCH` changes; `None` leaves it.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = webhook_endpoints)]
pub struct EndpointChanges<'a> {
    pub url: Option<&'a str>,
    pub events: Option<&'a [String]>,
    pub description: Option<&'a str>,
    pub disabled: Option<bool>,
}

pub async fn insert_endpoint(conn: &mut AsyncPgConnection, row: &EndpointRow) -> QueryResult<()> {
    diesel::insert_into(webhook_endpoints::table)
        .values(row)
        .execute(conn)
        .await
        .map(drop)
}

/// `tenant`'s endpoint `id`, locked for the transaction when `lock`.
pub async fn endpoint(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    id: WebhookId,
    lock: bool,
) -> QueryResult<Option<EndpointRow>> {
    let query = webhook_endpoints::table
        .filter(webhook_endpoints::id.eq(id))
        .filter(webhook_endpoints::tenant_id.eq(tenant))
        .select(EndpointRow::as_select());
    if lock {
        query.for_update().first(conn).await.optional()
    } else {
        query.first(conn).await.optional()
    }
}

pub async fn endpoints(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    page: Keyset,
) -> QueryResult<Vec<EndpointRow>> {
    let query = webhook_endpoints::table
        .filter(webhook_endpoints::tenant_id.eq(tenant))
        .select(EndpointRow::as_select())
        .into_boxed();
    keyset!(query, webhook_endpoints::id, page).load(conn).await
}

pub async fn update_endpoint(
    conn: &mut AsyncPgConnection,
    id: WebhookId,
    changes: EndpointChanges<'_>,
) -> QueryResult<EndpointRow> {
    diesel::update(webhook_endpoints::table.find(id))
        .set((changes, webhook_endpoints::updated_at.eq(diesel::dsl::now)))
        .returning(EndpointRow::as_returning())
        .get_result(conn)
        .await
}

/// Replaces the secret; the one before signs too until `previous_until`.
pub async fn rotate_secret(
    conn: &mut AsyncPgConnection,
    id: WebhookId,
    secret: &[u8],
    previous: &[u8],
    previous_until: DateTime<Utc>,
) -> QueryResult<usize> {
    diesel::update(webhook_endpoints::table.find(id))
        .set((
            webhook_endpoints::secret.eq(secret),
            webhook_endpoints::previous_secret.eq(previous),
            webhook_endpoints::previous_until.eq(previous_until),
            webhook_endpoints::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await
}

pub async fn delete_endpoint(conn: &mut AsyncPgConnection, id: WebhookId) -> QueryResult<usize> {
    diesel::delete(webhook_endpoints::table.find(id))
        .execute(conn)
        .await
}

/// The enabled endpoints of `tenant` and what each subscribes to.
pub async fn subscribers(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
) -> QueryResult<Vec<(WebhookId, Vec<String>)>> {
    webhook_endpoints::table
        .filter(webhook_endpoints::tenant_id.eq(tenant))
        .filter(webhook_endpoints::disabled.eq(false))
        .select((webhook_endpoints::id, webhook_endpoints::events))
        .load(conn)
        .await
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = webhook_messages)]
pub struct NewMessage {
    pub id: MessageId,
    pub tenant_id: TenantId,
    pub endpoint_id: WebhookId,
    pub event_type: String,
    pub body: String,
}

pub async fn insert_messages(conn: &mut AsyncPgConnection, rows: &[NewMessage]) -> QueryResult<()> {
    diesel::insert_into(webhook_messages::table)
        .values(rows)
        .execute(conn)
        .await
        .map(drop)
}

/// A message claimed for one attempt, with what the attempt needs.
#[derive(Debug, Clone, QueryableByName)]
pub struct Claimed {
    #[diesel(sql_type = SqlUuid)]
    pub id: MessageId,
    #[diesel(sql_type = SqlUuid)]
    pub endpoint_id: WebhookId,
    #[diesel(sql_type = Text)]
    pub event_type: String,
    #[diesel(sql_type = Text)]
    pub body: String,
    #[diesel(sql_type = Int4)]
    pub attempts: i32,
    #[diesel(sql_type = Int4)]
    pub step: i32,
    #[diesel(sql_type = Text)]
    pub url: String,
    #[diesel(sql_type = Bytea)]
    pub secret: Vec<u8>,
    #[diesel(sql_type = Nullable<Bytea>)]
    pub previous_secret: Option<Vec<u8>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub previous_until: Option<DateTime<Utc>>,
    #[diesel(sql_type = Timestamptz)]
    pub now: DateTime<Utc>,
}

/// Leases up to `limit` due messages of enabled endpoints to `lease` for
/// `lease_ms`: pending, their time come, and no live lease on them. Rows
/// another transaction holds are skipped, so instances share the work and
/// never take the same attempt.
pub async fn claim_due(
    conn: &mut AsyncPgConnection,
    lease: Uuid,
    lease_ms: i64,
    limit: i64,
) -> QueryResult<Vec<Claimed>> {
    diesel::sql_query(
        "UPDATE webhook_messages m SET lease_id = $1, \
             lease_until = now() + $2 * interval '1 millisecond' \
         FROM (SELECT m2.id, e.url, e.secret, e.previous_secret, e.previous_until \
               FROM webhook_messages m2 JOIN webhook_endpoints e ON e.id = m2.endpoint_id \
               WHERE m2.status = 'pending' AND m2.next_attempt_at <= now() \
                 AND (m2.lease_until IS NULL OR m2.lease_until < now()) AND NOT e.disabled \
               ORDER BY m2.next_attempt_at LIMIT $3 FOR UPDATE OF m2 SKIP LOCKED) due \
         WHERE m.id = due.id \
         RETURNING m.id, m.endpoint_id, m.event_type, m.body, m.attempts, m.step, \
             due.url, due.secret, due.previous_secret, due.previous_until, now() AS now",
    )
    .bind::<SqlUuid, _>(lease)
    .bind::<BigInt, _>(lease_ms)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await
}

/// What an attempt leaves the message as.
#[derive(Debug, Clone, Copy)]
pub enum After {
    Delivered,
    Retry { wait_ms: i64, step: i32 },
    Failed,
}

/// Records attempt `attempt` of `message` and what follows it, if `lease`
/// still holds the message (false: it was taken over; nothing written).
#[allow(clippy::too_many_arguments)]
pub async fn finish(
    conn: &mut AsyncPgConnection,
    message: MessageId,
    lease: Uuid,
    attempt: i32,
    attempted_at: DateTime<Utc>,
    status_code: Option<i32>,
    error: Option<&str>,
    duration_ms: i32,
    after: After,
) -> QueryResult<bool> {
    let (status, wait_ms, step) = match after {
        After::Delivered => ("delivered", 0, None),
        After::Retry { wait_ms, step } => ("pending", wait_ms, Some(step)),
        After::Failed => ("failed", 0, None),
    };
    let updated = diesel::sql_query(
        "UPDATE webhook_messages SET status = $3, attempts = $4, step = coalesce($5, step), \
             next_attempt_at = now() + $6 * interval '1 millisecond', \
             lease_id = NULL, lease_until = NULL, \
             finished_at = CASE WHEN $3 = 'pending' THEN NULL ELSE now() END \
         WHERE id = $1 AND lease_id = $2",
    )
    .bind::<SqlUuid, _>(message)
    .bind::<SqlUuid, _>(lease)
    .bind::<Text, _>(status)
    .bind::<Int4, _>(attempt)
    .bind::<Nullable<Int4>, _>(step)
    .bind::<BigInt, _>(wait_ms)
    .execute(conn)
    .await?;
    if updated == 0 {
        return Ok(false);
    }
    diesel::insert_into(webhook_attempts::table)
        .values((
            webhook_attempts::message_id.eq(message),
            webhook_attempts::attempt.eq(attempt),
            webhook_attempts::attempted_at.eq(attempted_at),
            webhook_attempts::status_code.eq(status_code),
            webhook_attempts::error.eq(error),
            webhook_attempts::duration_ms.eq(duration_ms),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(true)
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = webhook_messages, check_for_backend(diesel::pg::Pg))]
pub struct MessageRow {
    pub id: MessageId,
    pub event_type: String,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = webhook_attempts, check_for_backend(diesel::pg::Pg))]
pub struct AttemptRow {
    pub message_id: MessageId,
    pub attempt: i32,
    pub attempted_at: DateTime<Utc>,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub duration_ms: i32,
}

/// A page of an endpoint's messages (of one status, if given), oldest first.
pub async fn messages(
    conn: &mut AsyncPgConnection,
    endpoint: WebhookId,
    status: Option<&str>,
    page: Keyset,
) -> QueryResult<Vec<MessageRow>> {
    let mut query = webhook_messages::table
        .filter(webhook_messages::endpoint_id.eq(endpoint))
        .select(MessageRow::as_select())
        .into_boxed();
    if let Some(status) = status {
        query = query.filter(webhook_messages::status.eq(status.to_owned()));
    }
    keyset!(query, webhook_messages::id, page).load(conn).await
}

pub async fn attempts(
    conn: &mut AsyncPgConnection,
    messages: &[MessageId],
) -> QueryResult<Vec<AttemptRow>> {
    webhook_attempts::table
        .filter(webhook_attempts::message_id.eq_any(messages))
        .order((webhook_attempts::message_id, webhook_attempts::attempt))
        .select(AttemptRow::as_select())
        .load(conn)
        .await
}

/// Sends `message` of `endpoint` again from the start of the schedule, with
/// the same id. False if there is no such message.
pub async fn retry(
    conn: &mut AsyncPgConnection,
    endpoint: WebhookId,
    message: MessageId,
) -> QueryResult<bool> {
    diesel::update(
        webhook_messages::table
            .filter(webhook_messages::id.eq(message))
            .filter(webhook_messages::endpoint_id.eq(endpoint)),
    )
    .set((
        webhook_messages::status.eq("pending"),
        webhook_messages::step.eq(0),
        webhook_messages::next_attempt_at.eq(diesel::dsl::now),
        webhook_messages::finished_at.eq(None::<DateTime<Utc>>),
    ))
    .execute(conn)
    .await
    .map(|n| n > 0)
}

/// Disables an endpoint (it answered 410); false if it already was.
pub async fn disable(conn: &mut AsyncPgConnection, id: WebhookId) -> QueryResult<Option<TenantId>> {
    diesel::update(
        webhook_endpoints::table
            .find(id)
            .filter(webhook_endpoints::disabled.eq(false)),
    )
    .set((
        webhook_endpoints::disabled.eq(true),
        webhook_endpoints::updated_at.eq(diesel::dsl::now),
    ))
    .returning(webhook_endpoints::tenant_id)
    .get_result(conn)
    .await
    .optional()
}

#[derive(Debug, Clone, Copy, QueryableByName)]
pub struct Backlog {
    #[diesel(sql_type = BigInt)]
    pub pending: i64,
    /// Seconds since the oldest pending message was written.
    #[diesel(sql_type = Nullable<diesel::sql_types::Double>)]
    pub oldest_age: Option<f64>,
}

/// Messages waiting, and the age of the oldest.
pub async fn backlog(conn: &mut AsyncPgConnection) -> QueryResult<Backlog> {
    diesel::sql_query(
        "SELECT count(*) AS pending, \
             extract(epoch FROM now() - min(created_at))::float8 AS oldest_age \
         FROM webhook_messages WHERE status = 'pending'",
    )
    .get_result(conn)
    .await
}
