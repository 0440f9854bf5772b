//! Whether Postgres can take the service's changes now, for `/readyz`: it
//! answers, it is a primary, and, where the settings require it
//! (`TENANT_JWT_REQUIRE_SYNC_REPLICATION`), it confirms each commit only
//! once a synchronous standby has it, so a failover cannot undo an answered
//! change.

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Bool, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostgresReadiness {
    Ready,
    /// No answer in time (down, or no host a primary).
    Unreachable,
    /// The server answering is in recovery: a standby.
    Standby,
    /// A primary, but commits are not confirmed by a synchronous standby
    /// while the settings require it.
    NoSyncStandby,
}

impl PostgresReadiness {
    pub fn is_ready(self) -> bool {
        self == PostgresReadiness::Ready
    }

    /// For `/readyz`'s `checks.postgres`.
    pub fn as_str(self) -> &'static str {
        match self {
            PostgresReadiness::Ready => "ok",
            PostgresReadiness::Unreachable => "unreachable",
            PostgresReadiness::Standby => "standby",
            PostgresReadiness::NoSyncStandby => "no_sync_standby",
        }
    }
}

#[derive(QueryableByName)]
struct Replication {
    #[diesel(sql_type = Bool)]
    standby: bool,
    #[diesel(sql_type = Text)]
    synchronous_commit: String,
    /// Standbys the primary waits for, as `pg_stat_replication` shows them
    /// (a role without `pg_monitor` sees none).
    #[diesel(sql_type = BigInt)]
    synchronous_standbys: i64,
}

/// Reads what the server says of itself.
pub async fn read(
    conn: &mut AsyncPgConnection,
    require_sync: bool,
) -> diesel::QueryResult<PostgresReadiness> {
    let state: Replication = diesel::sql_query(
        "SELECT pg_is_in_recovery() AS standby, \
         current_setting('synchronous_commit') AS synchronous_commit, \
         CASE WHEN $1 THEN (SELECT count(*) FROM pg_stat_replication \
                            WHERE sync_state IN ('sync', 'quorum')) \
              ELSE 0 END AS synchronous_standbys",
    )
    .bind::<Bool, _>(require_sync)
    .get_result(conn)
    .await?;
    Ok(judge(&state, require_sync))
}

/// Commits wait for the standby to have flushed (`on`) or applied the
/// change; `remote_write`, `local` and `off` answer before a failover-safe
/// copy exists.
fn judge(state: &Replication, require_sync: bool) -> PostgresReadiness {
    if state.standby {
        return PostgresReadiness::Standby;
    }
    let confirmed = matches!(state.synchronous_commit.as_str(), "on" | "remote_apply");
    if require_sync && !(confirmed && state.synchronous_standbys > 0) {
        return PostgresReadiness::NoSyncStandby;
    }
    PostgresReadiness::Ready
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(standby: bool, commit: &str, standbys: i64) -> Replication {
        Replication {
            standby,
            synchronous_commit: commit.into(),
            synchronous_standbys: standbys,
        }
    }

    #[test]
    fn a_primary_is_ready_unless_sync_replication_is_required_and_missing() {
        assert_eq!(
            judge(&state(false, "on", 0), false),
            PostgresReadiness::Ready
        );
        assert_eq!(
            judge(&state(false, "on", 1), true),
            PostgresReadiness::Ready
        );
        assert_eq!(
            judge(&state(false, "remote_apply", 2), true),
            PostgresReadiness::Ready
        );
        assert_eq!(
            judge(&state(false, "on", 0), true),
            PostgresReadiness::NoSyncStandby
        );
        for weak in ["off", "local", "remote_write"] {
            assert_eq!(
                judge(&state(false, weak, 1), true),
                PostgresReadiness::NoSyncStandby,
                "{weak}"
            );
        }
    }

    #[test]
    fn a_standby_is_never_ready() {
        assert_eq!(
            judge(&state(true, "on", 0), false),
            PostgresReadiness::Standby
        );
        assert_eq!(
            judge(&state(true, "on", 1), true),
            PostgresReadiness::Standby
        );
    }
}
