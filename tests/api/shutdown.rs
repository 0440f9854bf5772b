//! The real binary, configured through its environment, shuts down
//! gracefully on SIGTERM: requests in flight finish, then it exits 0.

use std::time::Duration;

use serde_json::json;
use tokio::task::JoinSet;

use crate::helpers::binary::{Running, free_port};
use crate::helpers::{PASSWORD, service_key, test_settings};

#[tokio::test]
async fn sigterm_lets_requests_in_flight_finish() {
    let settings = test_settings();
    let binary = Running::start(&settings);
    assert!(binary.readyz_answers(200).await, "the binary became ready");
    let (client, base) = (&binary.client, binary.url(""));
    let created = client
        .post(format!("{base}/v1/tenants"))
        .bearer_auth(service_key())
        .json(&json!({ "slug": "acme", "name": "Acme" }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created = client
        .post(format!("{base}/v1/tenants/acme/users"))
        .bearer_auth(service_key())
        .json(&json!({ "username": "alice", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);

    // Sixty logins queue for the single hashing thread (over a second of
    // work, longer than actix's one-second drain poll); when the first is
    // answered the rest are in flight, and the signal arrives.
    let mut logins = JoinSet::new();
    for _ in 0..60 {
        let (client, url) = (client.clone(), format!("{base}/v1/tenants/acme/login"));
        logins.spawn(async move {
            let body = json!({ "username": "alice", "password": PASSWORD });
            client
                .post(url)
                .json(&body)
                .send()
                .await
                .map(|r| r.status().as_u16())
        });
    }
    let first = logins.join_next().await.unwrap().unwrap();
    // On a loaded machine the client may still be opening some of its
    // connections; a connection not yet accepted is not in flight. The other
    // 59 hashes take over a second, so a short pause leaves them in flight.
    tokio::time::sleep(Duration::from_millis(300)).await;
    binary.sigterm();
    assert_eq!(first.unwrap(), 200);
    while let Some(login) = logins.join_next().await {
        assert_eq!(
            login.unwrap().expect("an in-flight request was cut off"),
            200
        );
    }

    let logs = binary.exits_cleanly().await;
    assert!(logs.contains("graceful shutdown"), "{logs}");
    assert!(logs.contains("\"stopped\""), "{logs}");
}

#[tokio::test]
async fn sigterm_while_waiting_for_postgres_exits_cleanly() {
    let mut settings = test_settings();
    // Nothing listens there: Postgres is "down".
    settings.database.url = format!(
        "postgres://postgres@127.0.0.1:{}/{}",
        free_port(),
        settings.database.url.database()
    )
    .parse()
    .unwrap();
    let binary = Running::start(&settings);
    assert!(
        binary.readyz_answers(503).await,
        "the binary answers /readyz with 503 while waiting"
    );
    binary.sigterm();
    let logs = binary.exits_cleanly().await;
    assert!(
        logs.contains("Postgres unreachable; waiting for it"),
        "{logs}"
    );
    assert!(logs.contains("stopped during start-up"), "{logs}");
}
