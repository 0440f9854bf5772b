//! Redis with failover (Sentinel) and sharded (Cluster), on servers the tests
//! start themselves, with two application instances sharing them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tenant_jwt::types::ids::UserId;

use crate::helpers::redis_servers::{ClusterSet, SentinelSet, eventually};
use crate::helpers::{Member, TestApp, spawn_app_with, test_settings};

/// Two instances on `redis_url`, sharing Postgres and the key prefix, both
/// with their in-process level in use.
async fn two_instances(redis_url: String) -> (TestApp, TestApp) {
    let mut settings = test_settings();
    settings.redis.url = redis_url;
    let a = spawn_app_with(settings.clone()).await;
    let b = spawn_app_with(settings).await;
    a.wait_for_local_cache().await;
    b.wait_for_local_cache().await;
    (a, b)
}

/// `count` members of tenant `acme`, logged in through `app`.
async fn members(app: &TestApp, count: usize) -> Vec<Member> {
    let mut all = vec![app.tenant_with_user("acme", "user0").await];
    for i in 1..count {
        let name = format!("user{i}");
        let user = app.create_user("acme", &name, "member").await;
        all.push(Member {
            tenant_id: all[0].tenant_id.clone(),
            id: UserId::parse(user["id"].as_str().unwrap()).unwrap(),
            token: app.token("acme", &name).await,
        });
    }
    all
}

/// Rotates `member` through `from` and returns how long `to` took to refuse
/// the old token (2 s at most).
async fn rotation_seen(from: &TestApp, to: &TestApp, member: &Member) -> Duration {
    assert_eq!(to.me(&member.token).await.status(), 200);
    assert_eq!(from.rotate_secret("acme", member.id).await.status(), 200);
    let rotated = Instant::now();
    assert!(
        to.me_becomes(&member.token, 401).await,
        "the other instance still accepts the rotated token"
    );
    rotated.elapsed()
}

async fn redis_parts(app: &TestApp) -> Value {
    app.service_get("/readyz").await["checks"]["redis_parts"].clone()
}

/// Checks `/v1/me` on both instances until `stop`; the statuses that were
/// not 200, and how many checks ran.
async fn check_until(
    apps: [&TestApp; 2],
    tokens: &[String],
    stop: &AtomicBool,
) -> (Vec<u16>, usize) {
    let (mut failures, mut checks) = (Vec::new(), 0);
    while !stop.load(Ordering::SeqCst) {
        for app in apps {
            for token in tokens {
                let status = app.me(token).await.status().as_u16();
                checks += 1;
                if status != 200 {
                    failures.push(status);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (failures, checks)
}

#[tokio::test]
async fn sentinel_failover_under_traffic_loses_no_check_and_writes_recover() {
    let mut set = SentinelSet::start().await;
    let (a, b) = two_instances(set.url()).await;
    let parts = redis_parts(&a).await;
    assert_eq!(parts["topology"], "sentinel", "{parts}");
    assert_eq!(parts["invalidation"], "subscribed", "{parts}");

    let team = members(&a, 4).await;
    let seen = rotation_seen(&a, &b, &team[0]).await;
    assert!(
        seen < Duration::from_secs(1),
        "rotation seen after {seen:?}"
    );
    // team[3] is rotated during the failover; the others' tokens stay good.
    let tokens: Vec<String> = team[1..3].iter().map(|m| m.token.clone()).collect();

    let stop = AtomicBool::new(false);
    let traffic = check_until([&a, &b], &tokens, &stop);
    let failover = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        set.master.kill();
        let killed = Instant::now();
        // Changes: 503 with Retry-After until the new master is known.
        let recovered = loop {
            let response = a.rotate_secret("acme", team[3].id).await;
            let status = response.status().as_u16();
            if status == 200 {
                break killed.elapsed();
            }
            assert_eq!(status, 503, "a change during the failover");
            assert!(response.headers().contains_key("retry-after"));
            assert!(
                killed.elapsed() < Duration::from_secs(15),
                "writes never recovered"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        stop.store(true, Ordering::SeqCst);
        recovered
    };
    let ((failures, checks), recovered) = tokio::join!(traffic, failover);
    assert!(checks > 50, "too little traffic: {checks}");
    assert!(
        failures.is_empty(),
        "token checks failed: {failures:?} of {checks}"
    );
    assert!(
        recovered <= Duration::from_secs(10),
        "writes recovered after {recovered:?}"
    );
    assert_eq!(set.master_port().await, Some(set.replica.port), "promoted");
    eprintln!(
        "sentinel failover: writes back {recovered:?} after the master was killed; {checks} token checks, none failed"
    );

    // Both instances follow the new master: subscribed there again, and a
    // rotation through one is refused by the other.
    for app in [&a, &b] {
        eventually(Duration::from_secs(5), "subscribed again", || async {
            redis_parts(app).await["invalidation"] == "subscribed"
        })
        .await;
    }
    assert_eq!(set.subscribers(&set.replica).await, 2, "on the new master");
    let seen = rotation_seen(&b, &a, &team[1]).await;
    assert!(
        seen < Duration::from_secs(1),
        "after the failover: {seen:?}"
    );

    // The old master returns (the Sentinel makes it a replica), then a manual
    // failover promotes it again while the other stays up as a replica: the
    // instances notice at their heartbeat and move to the new master.
    set.master.restart().await;
    eventually(
        Duration::from_secs(20),
        "old master now a synced replica",
        || async {
            set.master
                .info("replication")
                .await
                .is_ok_and(|info| info.contains("master_link_status:up"))
        },
    )
    .await;
    set.failover().await;
    eventually(
        Duration::from_secs(10),
        "both subscribed on the promoted node",
        || async { set.subscribers(&set.master).await == 2 },
    )
    .await;
    eventually(
        Duration::from_secs(10),
        "writes after the manual failover",
        || async { a.rotate_secret("acme", team[3].id).await.status() == 200 },
    )
    .await;
    let seen = rotation_seen(&a, &b, &team[2]).await;
    assert!(
        seen < Duration::from_secs(1),
        "after the manual failover: {seen:?}"
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_master_cut_off_from_the_sentinels_is_left_for_the_one_they_promote() {
    let set = SentinelSet::start().await;
    let (a, b) = two_instances(set.url()).await;
    let team = members(&a, 2).await;
    for app in [&a, &b] {
        assert_eq!(app.me(&team[0].token).await.status(), 200);
    }
    let prefix = a.settings.redis.key_prefix.clone();

    // Split brain: the old master keeps serving the connections it has (the
    // instances'), but the Sentinel cannot talk to it any more, declares it
    // down and promotes the replica. Nothing disconnects the instances.
    set.cut_off_master_from_sentinel().await;
    eventually(Duration::from_secs(20), "replica promoted", || async {
        set.master_port().await == Some(set.replica.port)
    })
    .await;

    // The instances notice at their heartbeat: subscribed on the new master,
    // and their pooled connections lead there too.
    eventually(
        Duration::from_secs(5),
        "both subscribed on the new master",
        || async { set.subscribers(&set.replica).await == 2 },
    )
    .await;
    let seen = rotation_seen(&a, &b, &team[0]).await;
    assert!(
        seen < Duration::from_secs(1),
        "rotation seen after {seen:?}"
    );
    let key = format!("{prefix}{{{}}}:record", team[0].id);
    let mut new_master = set.replica.connect().await.unwrap();
    let written: bool = redis::cmd("EXISTS")
        .arg(&key)
        .query_async(&mut new_master)
        .await
        .unwrap();
    assert!(written, "the rotated record went to the new master");
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn cluster_spreads_records_survives_a_flush_and_the_loss_of_a_node() {
    // Slots whose node is up keep serving while another node is down.
    let mut cluster = ClusterSet::start(false).await;
    let prefix = test_settings().redis.key_prefix;
    let channel = format!("{prefix}invalidations");
    // The instances subscribe on the first listed node: one that does not own
    // the channel's slot, so that announcements still go out once it is lost.
    let channel_owner = cluster.owner_of(&channel).await;
    let first = (channel_owner + 1) % 3;
    let order = [first, (first + 1) % 3, (first + 2) % 3];
    let mut settings = test_settings();
    settings.redis.url = cluster.url_listing(&order);
    settings.redis.key_prefix = prefix.clone();
    let a = spawn_app_with(settings.clone()).await;
    let b = spawn_app_with(settings).await;
    a.wait_for_local_cache().await;
    b.wait_for_local_cache().await;
    assert_eq!(redis_parts(&a).await["topology"], "cluster");
    assert_eq!(
        a.metric("tenant_jwt_redis_topology{topology=\"cluster\"}")
            .await,
        1.0
    );
    assert_eq!(cluster.subscribers_per_node(&channel).await[first], 2);

    let team = members(&a, 24).await;
    for m in &team {
        assert_eq!(a.me(&m.token).await.status(), 200);
        assert_eq!(b.me(&m.token).await.status(), 200);
    }
    let spread = cluster.keys_per_node(&prefix).await;
    assert!(
        spread.iter().all(|&n| n > 0),
        "records on every shard: {spread:?}"
    );
    assert_eq!(spread.iter().sum::<usize>(), team.len());

    let seen = rotation_seen(&a, &b, &team[0]).await;
    assert!(
        seen < Duration::from_secs(1),
        "rotation seen after {seen:?}"
    );

    // A FLUSHALL on every node loses nothing: Postgres is the truth.
    cluster.flush_all().await;
    for app in [&a, &b] {
        assert_eq!(app.me(&team[0].token).await.status(), 401, "still revoked");
        for m in &team[1..] {
            assert_eq!(app.me(&m.token).await.status(), 200);
        }
    }
    let seen = rotation_seen(&b, &a, &team[1]).await;
    assert!(seen < Duration::from_secs(1), "after the flush: {seen:?}");

    // Lose the node both subscriptions are on, under traffic.
    let mut on_live_nodes = Vec::new();
    let mut on_lost_node = Vec::new();
    for m in &team[2..] {
        let key = format!("{prefix}{{{}}}:record", m.id);
        if cluster.owner_of(&key).await == first {
            on_lost_node.push(m.clone());
        } else {
            on_live_nodes.push(m.clone());
        }
    }
    assert!(!on_lost_node.is_empty() && on_live_nodes.len() > 1);
    let tokens: Vec<String> = team[2..].iter().map(|m| m.token.clone()).collect();
    let stop = AtomicBool::new(false);
    let traffic = check_until([&a, &b], &tokens, &stop);
    let outage = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        cluster.nodes[first].kill();
        eventually(Duration::from_secs(10), "subscriptions moved", || async {
            cluster
                .subscribers_per_node(&channel)
                .await
                .iter()
                .sum::<u64>()
                == 2
        })
        .await;
        for app in [&a, &b] {
            app.wait_for_local_cache().await;
        }
        stop.store(true, Ordering::SeqCst);
    };
    let ((failures, checks), ()) = tokio::join!(traffic, outage);
    assert!(
        failures.is_empty(),
        "token checks failed: {failures:?} of {checks}"
    );
    // Requests for the lost node's users failed just now, which may hold
    // Redis's circuit open for a second: a change may answer 503 (saved)
    // until it closes.
    let member = &on_live_nodes[0];
    assert_eq!(b.me(&member.token).await.status(), 200);
    eventually(
        Duration::from_secs(5),
        "a change published with a node down",
        || async { a.rotate_secret("acme", member.id).await.status() == 200 },
    )
    .await;
    let rotated = Instant::now();
    assert!(b.me_becomes(&member.token, 401).await);
    let seen = rotated.elapsed();
    assert!(seen < Duration::from_secs(1), "with a node down: {seen:?}");

    // The node returns: writes to its slots succeed again, no restart.
    cluster.nodes[first].restart().await;
    cluster.wait_until_ok().await;
    let lost = &on_lost_node[0];
    eventually(
        Duration::from_secs(10),
        "writes to the returned node",
        || async { a.rotate_secret("acme", lost.id).await.status() == 200 },
    )
    .await;
    assert!(b.me_becomes(&lost.token, 401).await);
    a.stop().await;
    b.stop().await;
}
