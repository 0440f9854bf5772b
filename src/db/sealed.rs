//! Every sealed value by the master key that sealed it (`user_secrets`, and
//! the one `master_key_check` value): counted for `keys status` and start-up,
//! re-sealed in batches by `keys rewrap`.

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bytea, Int8, Nullable, Text, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::schema::master_key_check;
use crate::types::ids::{Generation, UserId, WebhookId};

/// The key-id header of a sealed value in hex, or NULL for a value without
/// one (sealed before key ids): see `domain::keys::secrets`.
const KEY_ID_SQL: &str = "CASE WHEN length(ciphertext) = 84 AND substring(ciphertext from 1 for 4) = '\\x746a6b31'::bytea \
     THEN encode(substring(ciphertext from 5 for 8), 'hex') END";

#[derive(Debug, Clone, QueryableByName)]
pub struct KeyCount {
    /// Hex key id; `None` for values without one.
    #[diesel(sql_type = Nullable<Text>)]
    pub key_id: Option<String>,
    #[diesel(sql_type = BigInt)]
    pub secrets: i64,
}

/// How many secrets (users' and webhook endpoints', the current and the
/// previous) each key sealed (a scan of both tables).
pub async fn secrets_by_key(conn: &mut AsyncPgConnection) -> QueryResult<Vec<KeyCount>> {
    diesel::sql_query(format!(
        "SELECT {KEY_ID_SQL} AS key_id, count(*) AS secrets FROM ( \
             SELECT ciphertext FROM user_secrets \
             UNION ALL SELECT secret FROM webhook_endpoints \
             UNION ALL SELECT previous_secret FROM webhook_endpoints WHERE previous_secret IS NOT NULL \
         ) AS sealed (ciphertext) GROUP BY 1 ORDER BY 1"
    ))
    .load(conn)
    .await
}

/// One user secret sealed without a key id, if any remain.
pub async fn one_without_key_id(conn: &mut AsyncPgConnection) -> QueryResult<Option<SealedSecret>> {
    diesel::sql_query(format!(
        "SELECT user_id, generation, ciphertext FROM user_secrets WHERE {KEY_ID_SQL} IS NULL LIMIT 1"
    ))
    .get_result(conn)
    .await
    .optional()
}

#[derive(Debug, Clone, QueryableByName)]
pub struct SealedSecret {
    #[diesel(sql_type = SqlUuid)]
    pub user_id: UserId,
    #[diesel(sql_type = Int8)]
    pub generation: Generation,
    #[diesel(sql_type = Bytea)]
    pub ciphertext: Vec<u8>,
}

/// Up to `limit` user secrets after `after` (in primary-key order) not
/// sealed under the key whose header is `header`, locked for the caller's
/// transaction (rows others hold are skipped).
pub async fn claim_not_sealed_under(
    conn: &mut AsyncPgConnection,
    header: &[u8],
    after: Option<(UserId, Generation)>,
    limit: i64,
) -> QueryResult<Vec<SealedSecret>> {
    diesel::sql_query(
        "SELECT user_id, generation, ciphertext FROM user_secrets \
         WHERE ($1::uuid IS NULL OR (user_id, generation) > ($1, $2)) \
         AND substring(ciphertext from 1 for 12) <> $3 \
         ORDER BY user_id, generation LIMIT $4 FOR UPDATE SKIP LOCKED",
    )
    .bind::<Nullable<SqlUuid>, _>(after.map(|a| a.0))
    .bind::<Nullable<Int8>, _>(after.map(|a| a.1))
    .bind::<Bytea, _>(header)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await
}

/// Replaces the ciphertexts of the given secrets, `(user, generation,
/// ciphertext)` each, in one statement.
pub async fn replace_secrets(
    conn: &mut AsyncPgConnection,
    resealed: &[(UserId, Generation, Vec<u8>)],
) -> QueryResult<usize> {
    let users: Vec<UserId> = resealed.iter().map(|r| r.0).collect();
    let generations: Vec<Generation> = resealed.iter().map(|r| r.1).collect();
    let ciphertexts: Vec<&[u8]> = resealed.iter().map(|r| r.2.as_slice()).collect();
    diesel::sql_query(
        "UPDATE user_secrets AS s SET ciphertext = v.ciphertext \
         FROM unnest($1::uuid[], $2::int8[], $3::bytea[]) AS v(user_id, generation, ciphertext) \
         WHERE s.user_id = v.user_id AND s.generation = v.generation",
    )
    .bind::<Array<SqlUuid>, _>(users)
    .bind::<Array<Int8>, _>(generations)
    .bind::<Array<Bytea>, _>(ciphertexts)
    .execute(conn)
    .await
}

pub async fn check_value(conn: &mut AsyncPgConnection) -> QueryResult<Option<Vec<u8>>> {
    master_key_check::table
        .select(master_key_check::ciphertext)
        .first(conn)
        .await
        .optional()
}

pub async fn replace_check_value(
    conn: &mut AsyncPgConnection,
    sealed: &[u8],
) -> QueryResult<usize> {
    diesel::update(master_key_check::table)
        .set(master_key_check::ciphertext.eq(sealed))
        .execute(conn)
        .await
}

#[derive(Debug, Clone, QueryableByName)]
pub struct SealedEndpoint {
    #[diesel(sql_type = SqlUuid)]
    pub id: WebhookId,
    #[diesel(sql_type = Bytea)]
    pub secret: Vec<u8>,
    #[diesel(sql_type = Nullable<Bytea>)]
    pub previous_secret: Option<Vec<u8>>,
}

/// Up to `limit` webhook endpoints with a secret not sealed under the key
/// whose header is `header`, locked for the caller's transaction.
pub async fn claim_endpoints_not_sealed_under(
    conn: &mut AsyncPgConnection,
    header: &[u8],
    limit: i64,
) -> QueryResult<Vec<SealedEndpoint>> {
    diesel::sql_query(
        "SELECT id, secret, previous_secret FROM webhook_endpoints \
         WHERE substring(secret from 1 for 12) <> $1 \
            OR substring(previous_secret from 1 for 12) <> $1 \
         ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind::<Bytea, _>(header)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await
}

pub async fn replace_endpoint_secrets(
    conn: &mut AsyncPgConnection,
    id: WebhookId,
    secret: &[u8],
    previous_secret: Option<&[u8]>,
) -> QueryResult<usize> {
    use super::schema::webhook_endpoints;
    diesel::update(webhook_endpoints::table.find(id))
        .set((
            webhook_endpoints::secret.eq(secret),
            webhook_endpoints::previous_secret.eq(previous_secret),
        ))
        .execute(conn)
        .await
}
