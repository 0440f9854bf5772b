//! Secret rotation, the one step every security event shares: the current
//! generation is retired and a new random one made current, inside the
//! caller's transaction.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;

use crate::db;
use crate::domain::error::DomainError;
use crate::domain::keys::secrets::{MasterKey, UserSecret};
use crate::types::ids::{Generation, UserId};

/// Longest grace period a rotation may give the previous generation.
pub const MAX_GRACE: Duration = Duration::from_secs(86_400);

#[derive(Debug, Clone)]
pub struct Rotation {
    pub user_id: UserId,
    pub generation: Generation,
    pub previous_generation_valid_until: DateTime<Utc>,
}

/// Retires the current generation (valid until now + grace) and makes a new
/// random one current. The caller holds the user's row lock.
pub async fn rotate_locked(
    conn: &mut AsyncPgConnection,
    master_key: &MasterKey,
    user: UserId,
    grace: Duration,
) -> Result<Rotation, DomainError> {
    let current = db::secrets::current_generation(conn, user).await?;
    let valid_until =
        Utc::now() + chrono::Duration::from_std(grace).map_err(DomainError::internal)?;
    db::secrets::retire(conn, user, current, valid_until).await?;
    let next = current.next();
    let sealed = master_key.seal(user, next, &UserSecret::generate()?)?;
    db::secrets::insert(
        conn,
        db::secrets::NewSecret {
            user_id: user,
            generation: next,
            ciphertext: &sealed,
        },
    )
    .await?;
    db::users::bump_version(conn, user).await?;
    Ok(Rotation {
        user_id: user,
        generation: next,
        previous_generation_valid_until: valid_until,
    })
}
