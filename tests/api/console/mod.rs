//! The admin console: its session, its guards and its headers over plain
//! HTTP here; in a real Chromium in `browser`.

mod browser;

use reqwest::header;

use crate::helpers::{PASSWORD, TestApp, spawn_app, spawn_app_with, test_settings};

const COOKIE: &str = "__Host-tj_console";

/// A console sign-in form sent as a browser on the same origin sends it.
async fn sign_in(app: &TestApp, tenant: &str, username: &str, password: &str) -> reqwest::Response {
    app.client
        .post(app.url("/console/sign-in"))
        .header(header::ORIGIN, &app.address)
        .header("sec-fetch-site", "same-origin")
        .form(&[
            ("tenant", tenant),
            ("username", username),
            ("password", password),
        ])
        .send()
        .await
        .unwrap()
}

/// The console cookie a response sets, as `name=value`.
fn console_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{COOKIE}=")) && !v.starts_with(&format!("{COOKIE}=;")))
        .map(|v| v.split(';').next().unwrap().to_owned())
}

/// The session's CSRF token and access token in a console cookie.
fn parts(cookie: &str) -> (String, String) {
    let value = cookie.split_once('=').unwrap().1;
    let (csrf, token) = value.split_once('.').unwrap();
    (csrf.to_owned(), token.to_owned())
}

/// A tenant with an admin (`root`) and a member (`mallory`); the admin's
/// console cookie.
async fn signed_in(app: &TestApp, tenant: &str) -> String {
    app.create_tenant(tenant).await;
    app.create_user(tenant, "root", "admin").await;
    app.create_user(tenant, "mallory", "member").await;
    let response = sign_in(app, tenant, "root", PASSWORD).await;
    assert_eq!(response.status(), 303, "an admin signs in");
    console_cookie(&response).expect("signing in sets the console cookie")
}

/// A console page with the session cookie: its status and `Location`.
async fn get(app: &TestApp, cookie: &str, path: &str) -> (u16, Option<String>) {
    let response = app
        .client
        .get(app.url(path))
        .header(header::COOKIE, cookie)
        .send()
        .await
        .unwrap();
    let location = response
        .headers()
        .get(header::LOCATION)
        .map(|l| l.to_str().unwrap().to_owned());
    (response.status().as_u16(), location)
}

#[tokio::test]
async fn the_session_cookie_has_every_flag_and_pages_have_the_security_headers() {
    let app = spawn_app().await;
    let response = sign_in(&app, "nosuch", "root", PASSWORD).await;
    assert!(
        console_cookie(&response).is_none(),
        "an unknown tenant is refused"
    );
    app.create_tenant("flags").await;
    app.create_user("flags", "root", "admin").await;
    let response = sign_in(&app, "flags", "root", PASSWORD).await;
    assert_eq!(response.status(), 303);
    let set = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with(COOKIE))
        .unwrap();
    for flag in ["Path=/", "Secure", "HttpOnly", "SameSite=Strict"] {
        assert!(
            set.split("; ").any(|f| f == flag),
            "cookie flag {flag} in {set}"
        );
    }
    assert!(
        !set.to_ascii_lowercase().contains("domain"),
        "no Domain: {set}"
    );
    let cookie = console_cookie(&response).unwrap();

    let page = app
        .client
        .get(app.url("/console/users"))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let headers = page.headers();
    assert_eq!(
        headers[header::CONTENT_SECURITY_POLICY],
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    );
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(headers[header::REFERRER_POLICY], "same-origin");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    let html = page.text().await.unwrap();
    assert!(!html.contains("<script>"), "no inline script");
    assert!(!html.contains(" style="), "no inline style");
    assert!(!html.contains(" on"), "no inline event handler");
    app.stop().await;
}

#[tokio::test]
async fn a_member_an_unknown_user_and_a_wrong_password_are_refused_alike() {
    let app = spawn_app().await;
    signed_in(&app, "alike").await;
    let mut pages = Vec::new();
    for (username, password) in [
        ("mallory", PASSWORD),
        ("root", "not the password at all"),
        ("nobody", PASSWORD),
    ] {
        let response = sign_in(&app, "alike", username, password).await;
        assert_eq!(response.status(), 200, "{username}: the form again");
        assert!(
            console_cookie(&response).is_none(),
            "{username} gets no session"
        );
        let html = response.text().await.unwrap();
        pages.push(html.replace(username, "USER"));
    }
    assert!(
        pages.windows(2).all(|w| w[0] == w[1]),
        "one same page for every refusal"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_cross_site_post_or_one_without_the_csrf_token_changes_nothing() {
    let app = spawn_app().await;
    let cookie = signed_in(&app, "csrf").await;
    let (csrf, _) = parts(&cookie);
    let create = |site: Option<&'static str>, origin: Option<String>, token: Option<String>| {
        let mut form = vec![
            ("username", "eve".to_owned()),
            ("password", PASSWORD.to_owned()),
            ("role", "admin".to_owned()),
        ];
        if let Some(token) = token {
            form.push(("_csrf", token));
        }
        let mut request = app
            .client
            .post(app.url("/console/users"))
            .header(header::COOKIE, &cookie)
            .form(&form);
        if let Some(site) = site {
            request = request.header("sec-fetch-site", site);
        }
        if let Some(origin) = origin {
            request = request.header(header::ORIGIN, origin);
        }
        request.send()
    };
    let refused = [
        (
            Some("cross-site"),
            Some("https://evil.example".to_owned()),
            Some(csrf.clone()),
        ),
        (Some("same-site"), None, Some(csrf.clone())),
        (
            None,
            Some("https://evil.example".to_owned()),
            Some(csrf.clone()),
        ),
        (None, None, Some(csrf.clone())),
        (Some("same-origin"), None, None),
        (Some("same-origin"), None, Some("A".repeat(43))),
    ];
    for (site, origin, token) in refused {
        let response = create(site, origin.clone(), token.clone()).await.unwrap();
        assert_eq!(
            response.status(),
            403,
            "refused: site {site:?}, origin {origin:?}, token sent {}",
            token.is_some()
        );
    }
    let users = app.service_get("/v1/tenants/csrf/users").await;
    let names: Vec<&str> = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert!(
        !names.contains(&"eve"),
        "no refused request created the user: {names:?}"
    );

    let accepted = create(Some("same-origin"), None, Some(csrf)).await.unwrap();
    assert_eq!(
        accepted.status(),
        303,
        "the same form from our own page is accepted"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_console_session_dies_with_logout_all_a_rotation_and_sign_out() {
    let app = spawn_app().await;
    let cookie = signed_in(&app, "dies").await;
    let (csrf, token) = parts(&cookie);
    assert_eq!(get(&app, &cookie, "/console/users").await.0, 200);
    let me = app.me(&token).await;
    assert_eq!(me.status(), 200, "the console's session is an ordinary one");
    let sessions = app
        .client
        .get(app.url("/v1/me/sessions"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let listed: serde_json::Value = sessions.json().await.unwrap();
    assert_eq!(
        listed["sessions"].as_array().unwrap().len(),
        1,
        "listed: {listed}"
    );

    // logout-all with the console's own token: the console is signed out.
    let out = app
        .client
        .post(app.url("/v1/logout-all"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(out.status().is_success());
    let (status, location) = get(&app, &cookie, "/console/users").await;
    assert_eq!(
        (status, location.as_deref()),
        (303, Some("/console/sign-in"))
    );

    // A rotation of the admin's secret.
    let response = sign_in(&app, "dies", "root", crate::helpers::PASSWORD).await;
    let cookie = console_cookie(&response).unwrap();
    assert_eq!(get(&app, &cookie, "/console/users").await.0, 200);
    let (_, token) = parts(&cookie);
    let root: serde_json::Value = app.me(&token).await.json().await.unwrap();
    let root = tenant_jwt::types::ids::UserId::parse(root["user_id"].as_str().unwrap()).unwrap();
    assert_eq!(app.rotate_secret("dies", root).await.status(), 200);
    assert_eq!(
        get(&app, &cookie, "/console/users").await.0,
        303,
        "rotated: signed out"
    );

    // Sign-out ends the session on the server, not only in the browser.
    let response = sign_in(&app, "dies", "root", crate::helpers::PASSWORD).await;
    let cookie = console_cookie(&response).unwrap();
    let (_, token) = parts(&cookie);
    let out = app
        .client
        .post(app.url("/console/sign-out"))
        .header(header::COOKIE, &cookie)
        .header("sec-fetch-site", "same-origin")
        .form(&[("_csrf", parts(&cookie).0)])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    let cleared = out.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(
        cleared.contains("Max-Age=0"),
        "the cookie is removed: {cleared}"
    );
    assert_eq!(
        app.me(&token).await.status(),
        401,
        "signed out: the token is dead"
    );
    assert_eq!(get(&app, &cookie, "/console/users").await.0, 303);
    drop(csrf);
    app.stop().await;
}

#[tokio::test]
async fn with_the_console_off_every_console_path_is_404() {
    let mut settings = test_settings();
    settings.http.console = false;
    let app = spawn_app_with(settings).await;
    for path in [
        "/console/",
        "/console/sign-in",
        "/console/assets/console.css",
    ] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
    }
    let response = sign_in(&app, "any", "root", PASSWORD).await;
    assert_eq!(response.status(), 404, "sign-in POST");
    app.stop().await;
}

#[tokio::test]
async fn console_sign_ins_and_api_logins_share_one_login_budget() {
    let mut settings = test_settings();
    settings.limits.login_per_account_ip = 3;
    let app = spawn_app_with(settings).await;
    app.create_tenant("budget").await;
    app.create_user("budget", "root", "admin").await;
    for _ in 0..2 {
        let refused = app.login("budget", "root", "wrong password here").await;
        assert_eq!(refused.status(), 401);
    }
    let third = sign_in(&app, "budget", "root", "still not the password").await;
    assert_eq!(
        third.status(),
        200,
        "the third attempt is the console's, refused"
    );
    let over = sign_in(&app, "budget", "root", PASSWORD).await;
    assert_eq!(
        over.status(),
        429,
        "the fourth, with the right password, is over the limit"
    );
    assert!(over.headers().contains_key(header::RETRY_AFTER));
    assert!(console_cookie(&over).is_none(), "and starts no session");
    assert_eq!(
        app.login("budget", "root", PASSWORD).await.status(),
        429,
        "for the API too"
    );
    app.stop().await;
}
