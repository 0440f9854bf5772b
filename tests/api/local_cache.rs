//! The in-process level in front of Redis: never trusted while the
//! invalidation channel is down, flushed whenever it comes back.

use crate::helpers::{TcpProxy, TestApp, spawn_app_with, test_settings};

const CHANNEL_UP: &str = "tenant_jwt_invalidation_channel_up";

/// Waits (5 s at most) until `app` reports its channel down.
async fn wait_for_channel_down(app: &TestApp) {
    for _ in 0..100 {
        if app.metric(CHANNEL_UP).await == 0.0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the invalidation channel was never seen down");
}

/// A (through `proxy`) and B (direct) share Postgres and Redis; alice's
/// token is in A's in-process cache.
async fn two_instances(proxy: &TcpProxy) -> (TestApp, TestApp, crate::helpers::Member) {
    let direct = test_settings();
    let mut via_proxy = direct.clone();
    via_proxy.redis.url = proxy.redis_url();
    let a = spawn_app_with(via_proxy).await;
    let b = spawn_app_with(direct).await;
    a.wait_for_local_cache().await;
    let alice = b.tenant_with_user("acme", "alice").await;
    for _ in 0..2 {
        assert_eq!(a.me(&alice.token).await.status(), 200);
    }
    (a, b, alice)
}

#[tokio::test]
async fn a_change_made_while_the_channel_is_down_is_not_missed() {
    let proxy = TcpProxy::to_redis().await;
    let (a, b, alice) = two_instances(&proxy).await;

    proxy.cut();
    wait_for_channel_down(&a).await;
    // Loaded while the channel is down: must not be kept, since the
    // announcement of the next change cannot arrive.
    assert_eq!(a.me(&alice.token).await.status(), 200);
    assert_eq!(b.rotate_secret("acme", alice.id).await.status(), 200);
    assert_eq!(
        a.me(&alice.token).await.status(),
        401,
        "A bypasses its in-process level and reads Postgres"
    );

    proxy.restore();
    a.wait_for_local_cache().await;
    assert_eq!(
        a.me(&alice.token).await.status(),
        401,
        "nothing from before the outage is served after it"
    );
    let fresh = a.token("acme", "alice").await;
    assert_eq!(a.me(&fresh).await.status(), 200);
}

#[tokio::test]
async fn a_silent_partition_is_caught_by_the_heartbeat() {
    let proxy = TcpProxy::to_redis().await;
    let (a, b, alice) = two_instances(&proxy).await;

    // The connection stays open but carries nothing: the announcement of
    // the rotation never reaches A, and only the unanswered ping tells.
    proxy.freeze();
    assert_eq!(b.rotate_secret("acme", alice.id).await.status(), 200);
    // Heartbeat 200 ms + Redis timeout 500 ms in tests, far below the 30 s TTL.
    assert!(
        a.me_becomes(&alice.token, 401).await,
        "A stops trusting its in-process level within a heartbeat"
    );
    assert_eq!(a.metric(CHANNEL_UP).await, 0.0);

    proxy.restore();
    a.wait_for_local_cache().await;
    assert_eq!(a.me(&alice.token).await.status(), 401);
}

#[tokio::test]
async fn a_stopped_application_leaves_no_subscriber_behind() {
    let settings = test_settings();
    let channel = format!("{}invalidations", settings.redis.key_prefix);
    let app = spawn_app_with(settings).await;
    app.wait_for_local_cache().await;
    let mut redis = app.redis().await;
    let subscribers = async |redis: &mut redis::aio::MultiplexedConnection| {
        let (_, count): (String, i64) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(&channel)
            .query_async(redis)
            .await
            .unwrap();
        count
    };
    assert_eq!(subscribers(&mut redis).await, 1, "the running app listens");

    app.stop().await;
    assert_eq!(
        subscribers(&mut redis).await,
        0,
        "the invalidation subscriber stops with the application"
    );
}
