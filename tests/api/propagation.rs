//! A committed change reaches every instance, whatever fails between the
//! commit and Redis: the instance that saved it dying, or Redis refusing it.

use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use tenant_jwt::types::ids::UserId;

use crate::helpers::binary::Running;
use crate::helpers::{TcpProxy, TestApp, service_key, spawn_app_with, test_settings};

async fn record_version(app: &TestApp, user: UserId) -> i64 {
    use tenant_jwt::db::schema::users;
    let mut conn = app.db().await;
    users::table
        .find(user)
        .select(users::record_version)
        .get_result(&mut conn)
        .await
        .unwrap()
}

/// How long `app` takes to refuse `token` (`limit` at most).
async fn refused_within(app: &TestApp, token: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    while start.elapsed() < limit {
        if app.me(token).await.status() == 401 {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the revoked token was still accepted after {limit:?}");
}

#[tokio::test]
async fn a_change_whose_instance_died_before_redis_is_enforced_by_the_others() {
    let settings = test_settings();
    let b = spawn_app_with(settings.clone()).await;
    let alice = b.tenant_with_user("acme", "alice").await;
    assert_eq!(b.me(&alice.token).await.status(), 200, "cached on B");

    // A: the real binary, its Redis behind a proxy that will hold everything.
    let proxy = TcpProxy::to_redis().await;
    let mut a_settings = settings.clone();
    a_settings.redis.url = proxy.redis_url();
    a_settings.redis.command_timeout = Duration::from_secs(30);
    let mut a = Running::start(&a_settings);
    assert!(a.readyz_answers(200).await, "A became ready");

    let before = record_version(&b, alice.id).await;
    proxy.freeze();
    let rotation = {
        let (client, url) = (
            a.client.clone(),
            a.url(&format!(
                "/v1/tenants/acme/users/{}/rotate-secret",
                alice.id
            )),
        );
        tokio::spawn(async move { client.post(url).bearer_auth(service_key()).send().await })
    };
    // The rotation commits, then A waits on Redis: kill it there.
    let deadline = Instant::now() + Duration::from_secs(5);
    while record_version(&b, alice.id).await == before {
        assert!(Instant::now() < deadline, "the rotation never committed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    a.child.start_kill().unwrap();
    a.child.wait().await.unwrap();
    assert!(rotation.await.unwrap().is_err(), "A died before answering");

    let took = refused_within(&b, &alice.token, Duration::from_secs(5)).await;
    eprintln!("revoked token refused by B {took:?} after A was killed");
    // Counted once the drain's transaction has committed, just after.
    crate::helpers::redis_servers::eventually(Duration::from_secs(2), "counted", || async {
        let drained = b
            .counter("tenant_jwt_key_record_changes_published_total{by=\"drain\"}")
            .await;
        drained.unwrap_or(0.0) >= 1.0
    })
    .await;
    b.stop().await;
}

#[tokio::test]
async fn a_change_saved_while_redis_refused_it_reaches_every_instance_without_a_retry() {
    let proxy = TcpProxy::to_redis().await;
    let direct = test_settings();
    let mut via_proxy = direct.clone();
    via_proxy.redis.url = proxy.redis_url();
    let a = spawn_app_with(via_proxy).await;
    let b = spawn_app_with(direct).await;
    b.wait_for_local_cache().await;
    let alice = b.tenant_with_user("acme", "alice").await;
    assert_eq!(b.me(&alice.token).await.status(), 200, "cached on B");

    proxy.cut();
    let response = a.rotate_secret("acme", alice.id).await;
    assert_eq!(response.status(), 503, "saved, not yet published");
    assert!(response.headers().contains_key("retry-after"));

    // Nobody retries; B publishes it.
    let took = refused_within(&b, &alice.token, Duration::from_secs(5)).await;
    eprintln!("revoked token refused by B {took:?} after A's 503");
    proxy.restore();
    a.wait_for_local_cache().await;
    assert_eq!(a.me(&alice.token).await.status(), 401, "and by A");
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_change_a_failover_lost_is_written_again_on_the_new_master() {
    use crate::helpers::redis_servers::{SentinelSet, eventually};

    let mut set = SentinelSet::start().await;
    let mut settings = test_settings();
    settings.redis.url = set.url();
    let a = spawn_app_with(settings.clone()).await;
    let b = spawn_app_with(settings).await;
    a.wait_for_local_cache().await;
    b.wait_for_local_cache().await;
    let alice = a.tenant_with_user("acme", "alice").await;
    for app in [&a, &b] {
        assert_eq!(app.me(&alice.token).await.status(), 200);
    }
    let key = format!("{}{{{}}}:record", a.settings.redis.key_prefix, alice.id);
    let replica_has = || async {
        let mut replica = set.replica.connect().await.unwrap();
        redis::AsyncCommands::get::<_, Option<Vec<u8>>>(&mut replica, &key)
            .await
            .unwrap()
    };
    eventually(Duration::from_secs(5), "record replicated", || async {
        replica_has().await.is_some()
    })
    .await;
    let before = replica_has().await.unwrap();

    let rotated = a.rotate_secret("acme", alice.id).await;
    assert_eq!(rotated.status(), 200);
    assert!(b.me_becomes(&alice.token, 401).await);
    // Replication is asynchronous: a master may die before its replica has
    // a write. That write is lost here on purpose, by putting the replica's
    // copy back as it was (a stalled link cannot be staged with a Sentinel
    // watching: it points the replica back at the master).
    let mut replica = set.replica.connect().await.unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("replica-read-only")
        .arg("no")
        .query_async(&mut replica)
        .await
        .unwrap();
    let _: () = redis::AsyncCommands::set(&mut replica, &key, before)
        .await
        .unwrap();

    // The master dies; the Sentinel promotes the replica, which never got
    // the new record: without a replay the old token would pass again.
    set.master.kill();
    let killed = Instant::now();
    eventually(Duration::from_secs(20), "replica promoted", || async {
        set.master_port().await == Some(set.replica.port)
    })
    .await;
    let promoted = Instant::now();
    for app in [&a, &b] {
        app.wait_for_local_cache().await;
    }
    // Once both follow the new master, the old token is refused for good.
    let settled = Instant::now() + Duration::from_secs(2);
    eventually(
        Duration::from_secs(10),
        "refused on the new master",
        || async {
            let now_refused = a.me(&alice.token).await.status() == 401
                && b.me(&alice.token).await.status() == 401;
            now_refused && Instant::now() > settled
        },
    )
    .await;
    eprintln!(
        "old token refused on both (and 2 s on) {:?} after the master was killed, {:?} after the promotion",
        killed.elapsed(),
        promoted.elapsed()
    );
    assert!(promoted.elapsed() < Duration::from_secs(10) + Duration::from_secs(2));
    for app in [&a, &b] {
        assert_eq!(app.me(&alice.token).await.status(), 401);
    }
    a.stop().await;
    b.stop().await;
}
