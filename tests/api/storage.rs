//! What the stores hold, and what survives: Redis flushes, restarts, the
//! master key, and the database's own guarantee of one current secret.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;
use futures_util::StreamExt;
use redis::AsyncCommands;
use tenant_jwt::cache::{CacheError, Cached, RecordCache};
use tenant_jwt::config::MasterKeySource;
use tenant_jwt::domain::keys::secrets::MasterKey;
use tenant_jwt::startup::Application;
use tenant_jwt::types::ids::UserId;

use crate::helpers::{spawn_app, spawn_app_with, test_settings};

#[tokio::test]
async fn verification_survives_a_redis_flush() {
    // Redis and Postgres alone: the in-process level would hide the flush.
    let mut settings = test_settings();
    settings.redis.local.capacity = 0;
    let app = spawn_app_with(settings).await;
    let m = app.tenant_with_user("acme", "alice").await;
    assert_eq!(app.me(&m.token).await.status(), 200);
    assert!(!app.redis_keys().await.is_empty(), "the record was cached");

    app.flush_redis().await;
    assert!(app.redis_keys().await.is_empty());
    assert_eq!(app.me(&m.token).await.status(), 200, "served from Postgres");
    assert_eq!(app.redis_keys().await.len(), 1, "and cached again");
    assert_eq!(app.me(&m.token).await.status(), 200);
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = diesel::sql_types::Text)]
    row: String,
}

#[tokio::test]
async fn no_store_holds_the_plaintext_secret() {
    let app = spawn_app().await;
    let m = app.tenant_with_user("acme", "alice").await;
    assert_eq!(app.me(&m.token).await.status(), 200);
    let secret = app.secret_of(m.id, 1).await;
    // It is the real secret: it signs a token the service accepts.
    let token = crate::helpers::sign(
        &crate::helpers::claims_for(m.id, &m.tenant_id),
        secret.expose(),
        "1",
    );
    assert_eq!(app.me(&token).await.status(), 200);

    let hex: String = secret.expose().iter().map(|b| format!("{b:02x}")).collect();
    let forms = [
        hex,
        STANDARD.encode(secret.expose()),
        URL_SAFE_NO_PAD.encode(secret.expose()),
    ];

    // Every row of every table, as text (bytea shows as hex).
    let mut conn = app.db().await;
    let tables: Vec<Row> = diesel::sql_query(
        "SELECT table_name::text AS row FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .load(&mut conn)
    .await
    .unwrap();
    assert!(tables.len() >= 4);
    let mut dump = String::new();
    for table in tables {
        let rows: Vec<Row> =
            diesel::sql_query(format!("SELECT t::text AS row FROM \"{}\" t", table.row))
                .load(&mut conn)
                .await
                .unwrap();
        rows.into_iter().for_each(|r| dump.push_str(&r.row));
    }
    assert!(
        dump.contains(&m.id.to_string()),
        "the dump saw the user's rows"
    );

    let mut redis = app.redis().await;
    let keys = app.redis_keys().await;
    assert!(!keys.is_empty());
    let mut cached = Vec::new();
    for key in keys {
        let value: Vec<u8> = redis.get(&key).await.unwrap();
        cached.extend_from_slice(&value);
    }
    let cached_text = String::from_utf8_lossy(&cached);
    assert!(
        cached_text.contains(&m.id.to_string()),
        "Redis holds the user's record"
    );

    for form in &forms {
        assert!(
            !dump.to_lowercase().contains(&form.to_lowercase()),
            "Postgres holds the secret"
        );
        assert!(
            !cached_text.contains(form.as_str()),
            "Redis holds the secret"
        );
    }
    assert!(
        !cached.windows(32).any(|w| w == secret.expose()),
        "Redis holds the raw secret bytes"
    );
}

#[tokio::test]
async fn a_token_stays_valid_across_a_restart() {
    let settings = test_settings();
    let app = spawn_app_with(settings.clone()).await;
    let m = app.tenant_with_user("acme", "alice").await;
    app.stop().await;

    let restarted = spawn_app_with(settings).await;
    assert_eq!(restarted.me(&m.token).await.status(), 200);
}

#[tokio::test]
async fn the_key_file_is_created_once_and_reused_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys/master.key");
    let mut settings = test_settings();
    settings.master_key = MasterKeySource::File(path.clone());

    let app = spawn_app_with(settings.clone()).await;
    let m = app.tenant_with_user("acme", "alice").await;
    let written = std::fs::read_to_string(&path).unwrap();
    app.stop().await;

    let restarted = spawn_app_with(settings).await;
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        written,
        "the key file was not replaced"
    );
    assert_eq!(restarted.me(&m.token).await.status(), 200);
}

#[tokio::test]
async fn a_wrong_master_key_stops_start_up() {
    let settings = test_settings();
    let app = spawn_app_with(settings.clone()).await;
    app.tenant_with_user("acme", "alice").await;
    app.stop().await;

    let mut wrong = settings;
    wrong.master_key = MasterKeySource::Inline(MasterKey::generate_base64().unwrap());
    let error = Application::build(wrong)
        .await
        .err()
        .expect("start-up must fail");
    assert!(
        format!("{error:#}").contains("which is not listed")
            && format!("{error:#}").contains("refusing to start"),
        "{error:#}"
    );
}

#[tokio::test]
async fn the_database_keeps_exactly_one_current_secret_per_user() {
    let app = spawn_app().await;
    let m = app.tenant_with_user("acme", "alice").await;
    let mut conn = app.db().await;
    let id = m.id.as_uuid();
    let sealed = "decode(repeat('00', 72), 'hex')";

    let second_current = diesel::sql_query(format!(
        "INSERT INTO user_secrets (user_id, generation, ciphertext) VALUES ('{id}', 2, {sealed})"
    ))
    .execute(&mut conn)
    .await;
    assert!(second_current.is_err(), "a second current generation");

    let none_current = diesel::sql_query(format!(
        "UPDATE user_secrets SET retired_at = now() WHERE user_id = '{id}'"
    ))
    .execute(&mut conn)
    .await;
    assert!(none_current.is_err(), "no current generation");

    let orphan = diesel::sql_query(format!(
        "INSERT INTO users (id, tenant_id, username, password_hash, role) \
         VALUES ('{}', '{}', 'bob', '$argon2id$x', 'member')",
        uuid::Uuid::now_v7(),
        m.tenant_id
    ))
    .execute(&mut conn)
    .await;
    assert!(orphan.is_err(), "a user without any secret");

    assert_eq!(app.me(&m.token).await.status(), 200, "nothing changed");
}

#[tokio::test]
async fn a_stale_cache_write_never_replaces_a_newer_record() {
    let settings = test_settings();
    let cache = RecordCache::new(&settings.redis).unwrap();
    let user = UserId::generate();

    cache.put_record(user, 2, b"{\"v\":2}").await.unwrap();
    cache.put_record(user, 1, b"{\"v\":1}").await.unwrap();
    cache.put_absent(user, 0).await.unwrap();
    assert_eq!(
        cache.get(user).await.unwrap(),
        Some(Cached::Record(b"{\"v\":2}".to_vec()))
    );

    cache.put_record(user, 3, b"{\"v\":3}").await.unwrap();
    assert_eq!(
        cache.get(user).await.unwrap(),
        Some(Cached::Record(b"{\"v\":3}".to_vec()))
    );

    // A deletion's tombstone outranks the record it replaces.
    cache.put_absent(user, 4).await.unwrap();
    cache.put_record(user, 3, b"{\"v\":3}").await.unwrap();
    assert_eq!(cache.get(user).await.unwrap(), Some(Cached::Absent));
    cache.remove(user).await.unwrap();
    assert_eq!(cache.get(user).await.unwrap(), None);
}

#[tokio::test]
async fn an_announcement_no_subscriber_hears_is_a_failure_while_listening() {
    let settings = test_settings();
    let cache = RecordCache::new(&settings.redis).unwrap();
    let user = UserId::generate();

    // This instance listens, yet nobody on that server heard it: the pooled
    // connection leads elsewhere, and every pooled connection is closed.
    let unheard = cache.announce(user, true).await;
    assert!(matches!(unheard, Err(CacheError::Unheard)), "{unheard:?}");
    assert_eq!(cache.pool().status().size, 0, "pooled connections closed");
    // Not listening (subscription down): nobody is expected to hear it.
    cache.announce(user, false).await.unwrap();

    let client = redis::Client::open(settings.redis.url.as_str()).unwrap();
    let mut subscriber = client.get_async_pubsub().await.unwrap();
    subscriber
        .subscribe(cache.invalidation_channel())
        .await
        .unwrap();
    cache.announce(user, true).await.unwrap();
    let message = subscriber.on_message().next().await.unwrap();
    assert_eq!(message.get_payload::<String>().unwrap(), user.to_string());
}
