//! Faults in the stores while the service runs.

use std::time::{Duration, Instant};

use serde_json::json;
use tenant_jwt::types::ids::UserId;

use tenant_jwt::startup::Application;

use crate::helpers::{PASSWORD, TcpProxy, serve, service_key, spawn_app_with, test_settings};

const LOOKUPS: &str = "tenant_jwt_key_record_cache_lookups_total";

#[tokio::test]
async fn a_silent_redis_is_skipped_after_a_few_timeouts_and_asked_again_once_back() {
    let proxy = TcpProxy::to_redis().await;
    let mut settings = test_settings();
    settings.redis.url = proxy.redis_url();
    // Every verification asks Redis: no in-process level.
    settings.redis.local.capacity = 0;
    let app = spawn_app_with(settings).await;
    let alice = app.tenant_with_user("acme", "alice").await;
    let lookups = |result: &'static str| {
        let app = &app;
        async move {
            app.counter(&format!("{LOOKUPS}{{result=\"{result}\"}}"))
                .await
                .unwrap_or(0.0)
        }
    };

    // Redis keeps its connections open but answers nothing.
    proxy.freeze();
    for _ in 0..6 {
        assert_eq!(app.me(&alice.token).await.status(), 200, "Postgres answers");
    }
    assert!(
        lookups("circuit_open").await >= 1.0,
        "after a few timeouts Redis is not asked at all"
    );

    proxy.restore();
    let hits_before = lookups("hit").await;
    let mut asked_again = false;
    for _ in 0..50 {
        assert_eq!(app.me(&alice.token).await.status(), 200);
        if lookups("hit").await > hits_before {
            asked_again = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(asked_again, "Redis is used again after the cool-down");
}

/// Asserts a 503 problem with `Retry-After`, the documented answer while a
/// store is unreachable.
async fn assert_unavailable(response: reqwest::Response, what: &str) {
    assert_eq!(response.status(), 503, "{what}");
    assert!(
        response.headers().contains_key("retry-after"),
        "{what}: Retry-After"
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "unavailable", "{what}: {body}");
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Connections reset, new ones refused.
    Cut,
    /// Connections stay open, nothing answers: a silent partition.
    Freeze,
}

#[tokio::test]
async fn while_postgres_is_cut_off_cached_users_verify_and_the_rest_answers_503_until_it_returns() {
    postgres_down(Fault::Cut).await;
}

#[tokio::test]
async fn while_postgres_is_silent_cached_users_verify_and_the_rest_answers_503_until_it_returns() {
    postgres_down(Fault::Freeze).await;
}

async fn postgres_down(fault: Fault) {
    let proxy = TcpProxy::to_postgres().await;
    let mut settings = test_settings();
    settings.database.url = proxy.postgres_url(&settings.database.url);
    settings.database.timeout = Duration::from_secs(1);
    let app = spawn_app_with(settings).await;
    let alice = app.tenant_with_user("acme", "alice").await;
    let login: serde_json::Value = app
        .login("acme", "alice", PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    let refresh_token = login["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(app.me(&alice.token).await.status(), 200);
    let carol_id = UserId::parse(
        app.create_user("acme", "carol", "member").await["id"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let carol = app.token("acme", "carol").await;

    match fault {
        Fault::Cut => proxy.cut(),
        Fault::Freeze => proxy.freeze(),
    }
    let started = Instant::now();
    assert_eq!(
        app.me(&alice.token).await.status(),
        200,
        "a cached user still verifies"
    );
    assert_eq!(app.introspect(&alice.token).await.status(), 200);
    // Carol's record is in no cache: whether her token is good cannot be told.
    app.flush_redis().await;
    app.announce(carol_id).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_unavailable(app.me(&carol).await, "an uncached user's token").await;
    assert_unavailable(app.login("acme", "alice", PASSWORD).await, "login").await;
    let refresh = app
        .client
        .post(app.url("/v1/token/refresh"))
        .json(&json!({ "refresh_token": refresh_token }))
        .send()
        .await
        .unwrap();
    assert_unavailable(refresh, "refresh").await;
    let create = app
        .client
        .post(app.url("/v1/tenants/acme/users"))
        .bearer_auth(service_key())
        .json(&json!({ "username": "bob", "password": PASSWORD, "role": "member" }))
        .send()
        .await
        .unwrap();
    assert_unavailable(create, "admin").await;
    assert_eq!(app.readyz().await, 503, "not ready without Postgres");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "every answer came quickly: {:?}",
        started.elapsed()
    );

    proxy.restore();
    let mut recovered = false;
    for _ in 0..50 {
        if app.login("acme", "alice", PASSWORD).await.status() == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "logins work again once Postgres is back");
    assert_eq!(app.readyz().await, 200);
}

#[tokio::test]
async fn a_query_that_outlives_the_database_timeout_is_abandoned_and_the_pool_goes_on() {
    use diesel_async::RunQueryDsl;
    use tenant_jwt::db::{self, DbError};

    let mut settings = test_settings();
    settings.database.pool_size = 1;
    settings.database.timeout = Duration::from_millis(300);
    let db = db::prepare_pool(&settings.database).await.unwrap();

    let started = Instant::now();
    let stuck = db
        .query(async |conn| diesel::sql_query("SELECT pg_sleep(30)").execute(conn).await)
        .await;
    assert!(matches!(stuck, Err(DbError::TimedOut(_))), "{stuck:?}");
    assert!(started.elapsed() < Duration::from_secs(10));

    // The one connection was replaced, not queued behind the abandoned query,
    // and the query itself was cancelled on the server.
    let mut sleeping = i64::MAX;
    for _ in 0..50 {
        let counted = db
            .query(async |conn| {
                diesel::sql_query(
                    "SELECT count(*) AS n FROM pg_stat_activity \
                     WHERE datname = current_database() AND query LIKE 'SELECT pg_sleep%'",
                )
                .get_result::<Count>(conn)
                .await
            })
            .await;
        sleeping = counted.expect("the pool answers after a timeout").n;
        if sleeping == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(sleeping, 0, "the abandoned query is cancelled");
}

#[tokio::test]
async fn a_pooled_connection_postgres_closed_is_replaced_not_handed_out() {
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
    use tenant_jwt::db;

    // What a Postgres restart or failover does to every idle pooled connection.
    let mut settings = test_settings();
    settings.database.pool_size = 1;
    let db = db::prepare_pool(&settings.database).await.unwrap();
    let backend = async || backend_pid(&db).await;
    let first = backend().await.unwrap().n;
    let mut admin = AsyncPgConnection::establish(settings.database.url.as_str())
        .await
        .unwrap();
    diesel::sql_query(format!("SELECT pg_terminate_backend({first})"))
        .execute(&mut admin)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The pool hands out connections without a test query first, so it must
    // have seen the socket close: the next call gets a new connection, not
    // an error.
    let next = backend()
        .await
        .expect("a closed connection is not handed out");
    assert_ne!(next.n, first);
}

#[tokio::test]
async fn a_connection_that_finds_itself_read_only_is_dropped_not_reused() {
    use diesel_async::RunQueryDsl;
    use tenant_jwt::db::{self, DbError};

    // What a demoted primary answers a write with (SQLSTATE 25006). Here the
    // session itself is made read-only, so handing the connection out again
    // would fail the next write too.
    let mut settings = test_settings();
    settings.database.pool_size = 1;
    let db = db::prepare_pool(&settings.database).await.unwrap();
    let backend = async || backend_pid(&db).await;
    let write = "UPDATE tenants SET slug = slug WHERE false";
    let first = backend().await.unwrap().n;
    let refused = db
        .query(async |conn| {
            diesel::sql_query("SET default_transaction_read_only = on")
                .execute(conn)
                .await?;
            diesel::sql_query(write).execute(conn).await
        })
        .await;
    match refused {
        Err(DbError::Query(e)) => assert!(db::connection::lost(&e), "{e}"),
        other => panic!("the write is refused as read-only: {other:?}"),
    }

    let next = backend().await.unwrap();
    assert_ne!(
        next.n, first,
        "the read-only connection is not handed out again"
    );
    db.query(async |conn| diesel::sql_query(write).execute(conn).await)
        .await
        .expect("the next write goes through a read-write session");
}

/// The server process of the connection `db` hands out next.
async fn backend_pid(db: &tenant_jwt::db::Db) -> Result<Count, tenant_jwt::db::DbError> {
    use diesel_async::RunQueryDsl;
    db.query(async |conn| {
        diesel::sql_query("SELECT pg_backend_pid()::bigint AS n")
            .get_result::<Count>(conn)
            .await
    })
    .await
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

#[tokio::test]
async fn start_up_waits_for_postgres_and_redis_answering_probes_meanwhile() {
    let postgres = TcpProxy::to_postgres().await;
    let redis = TcpProxy::to_redis().await;
    postgres.cut();
    redis.cut();
    let mut settings = test_settings();
    settings.database.url = postgres.postgres_url(&settings.database.url);
    settings.redis.url = redis.redis_url();

    let starting = Application::bind(settings.clone()).await.unwrap();
    let base = format!("http://127.0.0.1:{}", starting.port());
    let connecting = tokio::spawn(starting.connect());
    let client = reqwest::Client::new();
    let get = |path: &'static str| {
        let (client, base) = (&client, &base);
        async move { client.get(format!("{base}{path}")).send().await.unwrap() }
    };
    let checks = async |expected: serde_json::Value| {
        for _ in 0..100 {
            let ready = get("/readyz").await;
            assert_eq!(ready.status(), 503, "not ready while starting");
            let body: serde_json::Value = ready.json().await.unwrap();
            if body["checks"] == expected {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("/readyz never showed {expected}");
    };

    assert_eq!(get("/healthz").await.status(), 200, "alive while waiting");
    checks(json!({ "postgres": "unreachable", "redis": "unreachable" })).await;
    assert_unavailable(get("/v1/me").await, "any other route").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!connecting.is_finished(), "still waiting, not crashed");

    postgres.restore();
    checks(json!({ "postgres": "ok", "redis": "unreachable" })).await;
    redis.restore();
    let app = tokio::time::timeout(Duration::from_secs(10), connecting)
        .await
        .expect("start-up finishes soon after both are back")
        .unwrap()
        .unwrap()
        .expect("not stopped");
    let app = serve(app, settings);
    assert_eq!(app.readyz().await, 200);
    let alice = app.tenant_with_user("acme", "alice").await;
    assert_eq!(app.me(&alice.token).await.status(), 200);
}

#[tokio::test]
async fn a_query_postgres_terminates_mid_flight_is_unavailable_not_internal() {
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
    use tenant_jwt::db;
    use tenant_jwt::domain::DomainError;

    // What a Postgres restart does to a query that is running at that moment.
    let settings = test_settings();
    let db = db::prepare_pool(&settings.database).await.unwrap();
    let slow = tokio::spawn({
        let db = db.clone();
        async move {
            db.run(async |conn| {
                diesel::sql_query("SELECT pg_sleep(3)")
                    .execute(conn)
                    .await
                    .map_err(DomainError::from)
            })
            .await
        }
    });
    let mut admin = AsyncPgConnection::establish(settings.database.url.as_str())
        .await
        .unwrap();
    let mut terminated = 0;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        terminated = diesel::sql_query(
            "SELECT count(pg_terminate_backend(pid))::bigint AS n FROM pg_stat_activity \
             WHERE query = 'SELECT pg_sleep(3)' AND pid <> pg_backend_pid()",
        )
        .get_result::<Count>(&mut admin)
        .await
        .unwrap()
        .n;
        if terminated > 0 {
            break;
        }
    }
    assert_eq!(terminated, 1, "the query was seen running");
    let outcome = slow.await.unwrap();
    assert!(
        matches!(outcome, Err(DomainError::Unavailable(_))),
        "a terminated query is a 503 (retry), not a 500: {outcome:?}"
    );
}
