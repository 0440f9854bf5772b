//! The `master_key_check` table: one value sealed under the master key, so a
//! start-up with the wrong key is caught before any request is served.

use diesel::prelude::*;
use diesel::upsert::on_constraint;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::schema::master_key_check;

/// Stores `sealed` unless a value is there already; returns the stored value.
pub async fn get_or_insert(conn: &mut AsyncPgConnection, sealed: &[u8]) -> QueryResult<Vec<u8>> {
    diesel::insert_into(master_key_check::table)
        .values((
            master_key_check::id.eq(true),
            master_key_check::ciphertext.eq(sealed),
        ))
        .on_conflict(on_constraint("master_key_check_pkey"))
        .do_nothing()
        .execute(conn)
        .await?;
    master_key_check::table
        .select(master_key_check::ciphertext)
        .first(conn)
        .await
}
