//! Connections to the primary, and only the primary. Every connection asks
//! for a read-write session (`target_session_attrs=read-write`, whatever
//! `DATABASE_URL` says): of the hosts it names, the first that is a primary
//! is used, so after a failover new connections find the promoted server.
//! A pooled connection that failed in a way that says its server is gone or
//! is no longer the primary (`lost`) is dropped, never handed out again.

use std::time::Duration;

use diesel::ConnectionResult;
use diesel::connection::{Instrumentation, InstrumentationEvent};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::AsyncPgConnection;
use diesel_async::pooled_connection::{ManagerConfig, RecyclingMethod};
use futures_util::FutureExt;
use tokio_postgres::config::TargetSessionAttrs;

use crate::telemetry::otel;
use crate::types::database_url::DatabaseUrl;

/// The shortest time one host is given to accept a connection when
/// `DATABASE_URL` sets no `connect_timeout`.
const MIN_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// What the service connects with: `url`'s settings, a read-write session,
/// and (unless the URL sets one) a connect timeout that leaves every host
/// its turn within `timeout`, so a host that does not answer at all cannot
/// use up the time the next one needs.
pub fn client_config(url: &DatabaseUrl, timeout: Duration) -> tokio_postgres::Config {
    let mut config = url.config().clone();
    config.target_session_attrs(TargetSessionAttrs::ReadWrite);
    if config.get_application_name().is_none() {
        // So operators can tell the service's sessions apart.
        config.application_name("tenant-jwt");
    }
    if config.get_connect_timeout().is_none() {
        let hosts = u32::try_from(url.host_count().max(1)).unwrap_or(u32::MAX);
        config.connect_timeout((timeout / hosts).max(MIN_CONNECT_TIMEOUT));
    }
    config
}

/// A connection to the first host in `config` that is a primary.
pub async fn connect(config: &tokio_postgres::Config) -> ConnectionResult<AsyncPgConnection> {
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))?;
    let mut conn = AsyncPgConnection::try_from_client_and_connection(client, connection).await?;
    diesel_async::AsyncConnection::set_instrumentation(&mut conn, Health::default());
    Ok(conn)
}

/// How the pool opens and re-checks connections: through `connect`, and
/// without a test query (a second round trip for every one-query call); a
/// connection is dropped instead of reused if its socket closed, a
/// transaction broke on it, or a query on it said it is `lost`.
pub fn manager_config(config: tokio_postgres::Config) -> ManagerConfig<AsyncPgConnection> {
    let mut manager = ManagerConfig::default();
    manager.custom_setup = Box::new(move |_| {
        let config = config.clone();
        async move { connect(&config).await }.boxed()
    });
    manager.recycling_method = RecyclingMethod::CustomFunction(Box::new(|conn| {
        let lost = Health::of(conn).is_some_and(|health| health.lost);
        async move {
            match lost {
                true => Err(DieselError::BrokenTransactionManager),
                false => Ok(()),
            }
        }
        .boxed()
    }));
    manager
}

/// Whether `error` says the server is gone, going, or not a primary (a
/// standby after a failover answers writes with SQLSTATE 25006): Postgres
/// is unavailable for now, a retry may reach the new primary, and the
/// connection it came from is of no further use.
pub fn lost(error: &DieselError) -> bool {
    match error {
        DieselError::DatabaseError(kind, info) => match kind {
            // diesel-async reports an I/O error or a closed socket as
            // "unable to send".
            DatabaseErrorKind::ClosedConnection
            | DatabaseErrorKind::UnableToSendCommand
            | DatabaseErrorKind::ReadOnlyTransaction => true,
            DatabaseErrorKind::Unknown => is_server_going(info.message()),
            _ => false,
        },
        DieselError::BrokenTransactionManager => true,
        // The commit failed and so did the rollback after it: the
        // connection broke while committing.
        DieselError::RollbackErrorOnCommit { commit_error, .. } => lost(commit_error),
        _ => false,
    }
}

/// Whether Postgres's message is one of SQLSTATE class 57 (operator
/// intervention: a shutdown, a crash, the server starting up or in
/// recovery, the postmaster gone) or the connection was ended for it.
/// diesel reports these as `Unknown` without the code, so the message
/// decides.
fn is_server_going(message: &str) -> bool {
    message.starts_with("terminating connection") || message.starts_with("the database system is")
}

/// Remembers whether a query on this connection failed because its server
/// is lost (see `lost`), for the pool's re-check; and, while traces are
/// exported, makes a client span of each statement.
#[derive(Debug, Default)]
pub struct Health {
    pub lost: bool,
    statement: Option<tracing::Span>,
}

impl Health {
    fn of(conn: &mut AsyncPgConnection) -> Option<&Health> {
        diesel_async::AsyncConnection::instrumentation(conn).downcast_ref::<Health>()
    }
}

impl Instrumentation for Health {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        match event {
            InstrumentationEvent::StartQuery { query, .. } if otel::traced() => {
                self.statement = Some(statement_span(&query.to_string()));
            }
            InstrumentationEvent::FinishQuery { error, .. } => {
                if let Some(span) = self.statement.take()
                    && error.is_some()
                {
                    span.record("otel.status_code", "ERROR");
                }
                if error.is_some_and(lost) {
                    self.lost = true;
                }
            }
            _ => {}
        }
    }
}

/// A span of one statement, named as the conventions say (`SELECT users`):
/// the operation and the table, never the parameters (diesel prints them
/// after `-- binds:`; they are cut off before anything is read).
fn statement_span(text: &str) -> tracing::Span {
    let sql = text.split(" -- binds").next().unwrap_or_default();
    let (operation, table) = operation_and_table(sql);
    let name = format!("{operation} {table}");
    tracing::info_span!(
        target: otel::TARGET,
        "postgres",
        otel.name = name.trim(),
        otel.kind = "client",
        db.system.name = "postgresql",
        db.operation.name = operation,
        db.collection.name = table,
        otel.status_code = tracing::field::Empty,
    )
}

/// The statement's first word, and the table after FROM, INTO or UPDATE
/// (unquoted), if any.
fn operation_and_table(sql: &str) -> (String, String) {
    let words: Vec<&str> = sql.split_whitespace().take(64).collect();
    let operation = words
        .first()
        .map(|w| w.to_ascii_uppercase())
        .unwrap_or_default();
    let table = words
        .windows(2)
        .find(|w| ["FROM", "INTO", "UPDATE"].contains(&w[0].to_ascii_uppercase().as_str()))
        .map(|w| {
            let name = w[1].trim_matches(|c: char| c == '"' || c == '(' || c == ',');
            name.rsplit('.')
                .next()
                .unwrap_or(name)
                .trim_matches('"')
                .to_owned()
        })
        .unwrap_or_default();
    (operation, table)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database_error(kind: DatabaseErrorKind, message: &str) -> DieselError {
        DieselError::DatabaseError(kind, Box::new(message.to_owned()))
    }

    #[test]
    fn a_gone_or_demoted_server_is_lost() {
        for (kind, message) in [
            (DatabaseErrorKind::ClosedConnection, "closed"),
            (DatabaseErrorKind::UnableToSendCommand, "connection closed"),
            (
                DatabaseErrorKind::ReadOnlyTransaction,
                "cannot execute UPDATE in a read-only transaction",
            ),
            (
                DatabaseErrorKind::Unknown,
                "terminating connection due to unexpected postmaster exit",
            ),
            (
                DatabaseErrorKind::Unknown,
                "terminating connection due to administrator command",
            ),
            (
                DatabaseErrorKind::Unknown,
                "terminating connection because of crash of another server process",
            ),
            (
                DatabaseErrorKind::Unknown,
                "the database system is starting up",
            ),
            (
                DatabaseErrorKind::Unknown,
                "the database system is in recovery mode",
            ),
        ] {
            assert!(lost(&database_error(kind, message)), "{message}");
        }
        let commit = DieselError::RollbackErrorOnCommit {
            rollback_error: Box::new(database_error(DatabaseErrorKind::UnableToSendCommand, "x")),
            commit_error: Box::new(database_error(DatabaseErrorKind::UnableToSendCommand, "x")),
        };
        assert!(lost(&commit), "a commit the connection broke under");
    }

    #[test]
    fn an_ordinary_failure_is_not_lost() {
        assert!(!lost(&DieselError::NotFound));
        assert!(!lost(&database_error(
            DatabaseErrorKind::UniqueViolation,
            "duplicate key value violates unique constraint"
        )));
        assert!(!lost(&database_error(
            DatabaseErrorKind::Unknown,
            "relation \"x\" does not exist"
        )));
        assert!(!lost(&database_error(
            DatabaseErrorKind::SerializationFailure,
            "could not serialize access"
        )));
    }

    #[test]
    fn a_statement_span_names_the_operation_and_table_only() {
        assert_eq!(
            operation_and_table(r#"SELECT "users"."id" FROM "users" WHERE "users"."id" = $1"#),
            ("SELECT".into(), "users".into())
        );
        assert_eq!(
            operation_and_table(r#"INSERT INTO "sessions" ("id") VALUES ($1)"#),
            ("INSERT".into(), "sessions".into())
        );
        assert_eq!(
            operation_and_table(r#"UPDATE "users" SET "secret" = $1"#),
            ("UPDATE".into(), "users".into())
        );
        assert_eq!(
            operation_and_table("COMMIT"),
            ("COMMIT".into(), String::new())
        );
    }

    #[test]
    fn the_client_always_asks_for_a_primary() {
        let url = DatabaseUrl::parse("postgres://app@a:5432,b:5432/db").unwrap();
        let config = client_config(&url, Duration::from_secs(5));
        assert_eq!(
            config.get_target_session_attrs(),
            TargetSessionAttrs::ReadWrite
        );
        assert_eq!(
            config.get_connect_timeout(),
            Some(&Duration::from_millis(2500))
        );
        let url = DatabaseUrl::parse("postgres://app@a/db?connect_timeout=7").unwrap();
        let config = client_config(&url, Duration::from_secs(5));
        assert_eq!(config.get_connect_timeout(), Some(&Duration::from_secs(7)));
    }
}
