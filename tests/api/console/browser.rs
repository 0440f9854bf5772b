//! The console in a real Chromium (Debian's `chromium`, driven through
//! `chromedriver` with fantoccini, headless) against the service on real
//! Postgres and Redis: what the admin on call does at 2 a.m. Every page's
//! browser console is read for errors (a CSP refusal is one), and each main
//! page is saved as a screenshot under `target/console-screenshots/`.

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use fantoccini::Locator;
use serde_json::{Value, json};

use crate::helpers::browser::{BrowserLog, Console, Driver};
use crate::helpers::{PASSWORD, TestApp, service_key, spawn_app};

/// The `sid` claim of an access token.
fn sid(token: &str) -> String {
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    claims["sid"].as_str().unwrap().to_owned()
}

async fn setup(app: &TestApp) {
    app.create_tenant("night").await;
    app.create_user("night", "oncall", "admin").await;
    app.create_user("night", "mallory", "member").await;
}

#[tokio::test]
async fn an_admin_ends_a_stolen_laptops_sessions_in_a_real_browser() {
    let app = spawn_app().await;
    setup(&app).await;
    let driver = Driver::start().await;
    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let mut console = Console {
        browser: driver.browser().await,
        // `localhost`: a secure context, where a `Secure` cookie is kept over HTTP.
        base: app.address.replace("127.0.0.1", "localhost"),
        errors: Vec::new(),
        shots,
    };

    // Signed out, the console sends the browser to its sign-in page.
    console.open("/console/users").await;
    assert_eq!(console.path().await, "/console/sign-in");
    console.screenshot("sign-in").await;

    // A member is refused with the same words as a wrong password.
    console.fill("#tenant", "night").await;
    console.fill("#username", "mallory").await;
    console.fill("#password", PASSWORD).await;
    console.submit("form button[type=submit]").await;
    assert_eq!(console.path().await, "/console/sign-in");
    let refused = console.text("[role=alert]").await;
    assert!(refused.starts_with("Sign-in failed"), "{refused}");

    console.fill("#username", "oncall").await;
    console.fill("#password", PASSWORD).await;
    console.submit("form button[type=submit]").await;
    assert_eq!(
        console.path().await,
        "/console/users",
        "the admin is signed in"
    );
    let cookies = console.browser.get_all_cookies().await.unwrap();
    let cookie = cookies.iter().find(|c| c.name() == "__Host-tj_console");
    let cookie = cookie.expect("the browser keeps the console cookie");
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(cookie.secure(), Some(true));
    assert_eq!(format!("{:?}", cookie.same_site()), "Some(Strict)");

    // Create the user whose laptop is later stolen.
    console.fill("#new-username", "carol").await;
    console.fill("#new-password", PASSWORD).await;
    console
        .submit("form[method=post][action='/console/users'] button")
        .await;
    let at = console.path().await;
    assert!(
        at.starts_with("/console/users/"),
        "{at}: {}",
        console.browser.source().await.unwrap()
    );
    assert_eq!(console.text("h1").await, "carol");
    let carol = console.path().await.rsplit('/').next().unwrap().to_owned();

    // Find her by the start of her name: htmx swaps the list in.
    for name in ["carlos", "dave", "caroline"] {
        app.create_user("night", name, "member").await;
    }
    console.open("/console/users").await;
    console.fill("#prefix", "CAR").await;
    let listed = console.until_gone("#user-list", "dave").await;
    assert!(
        listed.contains("carol") && listed.contains("caroline"),
        "{listed}"
    );
    assert!(
        listed.contains("carlos") && !listed.contains("oncall"),
        "{listed}"
    );
    let url = console.browser.current_url().await.unwrap();
    assert_eq!(
        url.query(),
        Some("prefix=CAR"),
        "the search is in the address"
    );
    console.read_log("/console/users (search)").await;
    console.open("/console/users").await;
    console.screenshot("users").await;

    // Her laptop and her phone are signed in.
    let laptop = app.token("night", "carol").await;
    let phone = app.token("night", "carol").await;
    console.open(&format!("/console/users/{carol}")).await;
    console.screenshot("user").await;
    let end = format!(
        "form[action='/console/users/{carol}/sessions/{}/end'] button",
        sid(&laptop)
    );
    console.submit(&end).await;
    assert!(
        console
            .text("[role=status]")
            .await
            .starts_with("Session ended")
    );
    assert_eq!(
        app.me(&laptop).await.status(),
        401,
        "the laptop's token is refused"
    );
    assert_eq!(app.me(&phone).await.status(), 200, "the phone goes on");

    // Rotate her secret (no grace): the phone's token dies too.
    console
        .submit(&format!(
            "form[action='/console/users/{carol}/rotate'] button"
        ))
        .await;
    assert!(
        console
            .text("[role=status]")
            .await
            .starts_with("Secret rotated")
    );
    assert_eq!(
        app.me(&phone).await.status(),
        401,
        "rotated: every token refused"
    );

    // A credential: its key shown once.
    console.open("/console/credentials").await;
    console.fill("#credential-name", "night-batch").await;
    let introspect = console
        .browser
        .find(Locator::Css("input[name=scope][value=introspect]"))
        .await
        .unwrap();
    introspect.click().await.unwrap();
    console
        .submit("form[action='/console/credentials'] button[type=submit]")
        .await;
    let key = console.text("#new-key").await;
    assert!(key.starts_with("tjs_"), "the key is shown: {key}");
    console.screenshot("credentials").await;
    let works = app
        .client
        .post(app.url("/v1/introspect"))
        .bearer_auth(&key)
        .form(&[("token", laptop.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(works.status(), 200, "the shown key works");
    console.open("/console/credentials").await;
    let page = console.browser.source().await.unwrap();
    assert!(!page.contains(&key), "the key is never shown again");

    // A role whose description is HTML is shown as text; a bad pattern is
    // refused next to its field.
    console.open("/console/roles").await;
    console.fill("#role-name", "billing").await;
    console
        .fill("#role-description", "<img src=x onerror=alert(1)>")
        .await;
    console
        .fill("#role-permissions", "invoices:read\nnot a pattern!")
        .await;
    console
        .submit("form[action='/console/roles'] button[type=submit]")
        .await;
    let error = console.text("#permissions-error").await;
    assert!(
        error.starts_with("line 2"),
        "the refused line is named: {error}"
    );
    console
        .fill("#role-permissions", "invoices:read\ninvoices:write")
        .await;
    console
        .submit("form[action='/console/roles'] button[type=submit]")
        .await;
    assert_eq!(console.path().await, "/console/roles/billing");
    console.open("/console/roles").await;
    let table = console.text("table").await;
    assert!(
        table.contains("<img src=x onerror=alert(1)>"),
        "shown as text: {table}"
    );
    let images = console
        .browser
        .find_all(Locator::Css("main img"))
        .await
        .unwrap();
    assert!(images.is_empty(), "no element was made of it");
    console.screenshot("roles").await;
    // So is a search for markup.
    console
        .open("/console/users?prefix=%3Cscript%3Ealert(1)%3C%2Fscript%3E")
        .await;
    let none = console.text("#user-list").await;
    assert!(none.contains("<script>alert(1)</script>"), "{none}");

    console.open("/console/webhooks").await;
    console.screenshot("webhooks").await;

    // The audit log shows what the admin did, newest first.
    console.open("/console/audit").await;
    let log = console.text("table").await;
    let order: Vec<usize> = [
        "credential_created",
        "secret_rotated",
        "session_revoked",
        "user_created",
    ]
    .iter()
    .map(|action| {
        log.find(action)
            .unwrap_or_else(|| panic!("{action} in {log}"))
    })
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "newest first: {log}");
    console.screenshot("audit").await;
    console.fill("#user", "carol").await;
    console.submit("form[action='/console/audit'] button").await;
    let about = console.text("table").await;
    assert!(
        about.contains("secret_rotated") && !about.contains("credential_created"),
        "{about}"
    );

    // Narrow, as on a phone.
    console.browser.set_window_size(375, 812).await.unwrap();
    console.open(&format!("/console/users/{carol}")).await;
    console.screenshot("user-375px").await;
    console.browser.set_window_size(1280, 900).await.unwrap();

    // A cross-site form POST is refused and changes nothing.
    let evil = format!(
        "data:text/html,<form method=post action='{}/console/users'>\
         <input name=username value=eve><input name=password value='{PASSWORD}'>\
         <input name=role value=admin></form>",
        console.base
    );
    console.browser.goto(&evil).await.unwrap();
    console
        .browser
        .execute("document.forms[0].submit()", vec![])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = console.browser.issue_cmd(BrowserLog).await;
    let users = app.service_get("/v1/tenants/night/users").await.to_string();
    assert!(
        !users.contains("\"eve\""),
        "no user from a cross-site POST: {users}"
    );

    // Sign out: the server ends the session.
    console.open("/console/users").await;
    console
        .submit("form[action='/console/sign-out'] button")
        .await;
    assert_eq!(console.path().await, "/console/sign-in");
    console.open("/console/users").await;
    assert_eq!(
        console.path().await,
        "/console/sign-in",
        "signed out for good"
    );
    let sessions = app
        .client
        .get(app.url(&format!(
            "/v1/tenants/night/users/{}/sessions",
            app.service_get("/v1/tenants/night/users").await["users"][0]["id"]
                .as_str()
                .unwrap()
        )))
        .bearer_auth(service_key())
        .send()
        .await
        .unwrap();
    let sessions: Value = sessions.json().await.unwrap();
    assert_eq!(
        sessions["sessions"],
        json!([]),
        "the console's session ended"
    );

    assert!(
        console.errors.is_empty(),
        "browser console errors: {:#?}",
        console.errors
    );
    console.browser.close().await.unwrap();
    app.stop().await;
}
