//! No key stored or logged; the CLI's credential commands.

use std::process::Stdio;

use super::*;
use crate::helpers::binary::{binary, free_port};
use crate::helpers::{captured_logs, spawn_app};

#[tokio::test]
async fn no_key_is_stored_or_logged() {
    let app = spawn_app().await;
    let alice = app.tenant_with_user("acme", "alice").await;
    let created = credential(&app, Some("acme"), &["introspect", "users:read"]).await;
    let key = key_in(&created);
    assert_eq!(introspect_with(&app, &key, &alice.token).await.0, 200);
    get(&app, &key, "/v1/tenants/acme/users").await;
    assert_eq!(revoke(&app, &service_key(), &created["id"]).await, 204);
    assert_eq!(introspect_with(&app, &key, &alice.token).await.0, 401);

    let secret_part = &key["tjs_".len()..];
    let dump = tokio::process::Command::new("pg_dump")
        .arg(app.settings.database.url.as_str())
        .output()
        .await
        .expect("pg_dump runs");
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let dump = String::from_utf8_lossy(&dump.stdout);
    assert!(
        dump.contains("service_credentials"),
        "the dump holds the table"
    );
    assert!(!dump.contains(secret_part), "pg_dump holds the key");
    let logs = captured_logs();
    assert!(
        logs.contains(created["id"].as_str().unwrap()),
        "the credential is logged by id"
    );
    assert!(!logs.contains(secret_part), "the logs hold the key");
    assert!(!app.metrics().await.contains(secret_part));
}

#[tokio::test]
async fn the_cli_creates_lists_and_revokes_credentials() {
    let app = spawn_app().await;
    let alice = app.tenant_with_user("acme", "alice").await;
    let cli = |args: &[&str]| {
        let mut command = binary(&app.settings, free_port());
        command.args(args).stdout(Stdio::piped());
        async move {
            let output = command.output().await.unwrap();
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            serde_json::from_slice::<Value>(&output.stdout).unwrap()
        }
    };
    let created = cli(&[
        "credentials",
        "create",
        "--name",
        "from the cli",
        "--tenant",
        "acme",
        "--scope",
        "introspect,users:read",
        "--expires-in",
        "30d",
    ])
    .await;
    assert_eq!(created["scopes"], json!(["introspect", "users:read"]));
    assert_eq!(created["created_by"], "operator:cli");
    let key = key_in(&created);
    assert_eq!(introspect_with(&app, &key, &alice.token).await.0, 200);
    let listed = cli(&["credentials", "list", "--tenant", "acme"]).await;
    assert_eq!(listed["credentials"][0]["id"], created["id"]);
    assert!(listed["credentials"][0].get("key").is_none());
    let id = created["id"].as_str().unwrap();
    cli(&["credentials", "revoke", id]).await;
    let revoked = Instant::now();
    while introspect_with(&app, &key, &alice.token).await.0 == 200 {
        assert!(
            revoked.elapsed() < Duration::from_secs(1),
            "still accepted after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
