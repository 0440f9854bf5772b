//! The OpenAPI document describes exactly the routes the service registers.

use std::collections::BTreeSet;

use serde_json::Value;
use tenant_jwt::http::routes::ROUTES;

use crate::helpers::spawn_app;

#[tokio::test]
async fn the_spec_lists_every_registered_route_and_nothing_else() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let spec: Value = response.json().await.unwrap();
    assert!(
        spec["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        spec["openapi"]
    );

    // A tail segment (`{path:.*}`) is documented as a plain parameter.
    let registered: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(method, path)| (method.to_string(), path.replace(":.*}", "}")))
        .collect();
    let documented: BTreeSet<(String, String)> = spec["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |method| (method.clone(), path.clone()))
        })
        .collect();
    let undocumented: Vec<_> = registered.difference(&documented).collect();
    let phantom: Vec<_> = documented.difference(&registered).collect();
    assert!(
        undocumented.is_empty(),
        "registered but missing from the spec: {undocumented:?}"
    );
    assert!(
        phantom.is_empty(),
        "in the spec but not registered: {phantom:?}"
    );

    let mut ids = BTreeSet::new();
    for (method, path) in &registered {
        let id = spec["paths"][path][method]["operationId"].as_str();
        let id = id.unwrap_or_else(|| panic!("{method} {path}: no operationId"));
        assert!(ids.insert(id.to_owned()), "operationId {id} is not unique");
    }

    let schemes = &spec["components"]["securitySchemes"];
    assert_eq!(schemes["service_key"]["scheme"], "bearer");
    assert_eq!(schemes["access_token"]["bearerFormat"], "JWT");
    for (method, path) in &registered {
        let operation = &spec["paths"][path][method];
        let responses = operation["responses"].as_object().unwrap();
        assert!(!responses.is_empty(), "{method} {path}: no responses");
        let public = ["/healthz", "/readyz", "/metrics", "/openapi.json"].contains(&path.as_str())
            || path.ends_with("/login")
            || path.ends_with("/token/refresh");
        if !public {
            assert!(
                operation["security"]
                    .as_array()
                    .is_some_and(|s| !s.is_empty()),
                "{method} {path}: no security"
            );
            let unauthorized =
                &responses["401"]["content"]["application/problem+json"]["schema"]["$ref"];
            assert_eq!(
                unauthorized, "#/components/schemas/Problem",
                "{method} {path}: 401 is a problem"
            );
        }
    }
}

#[tokio::test]
async fn every_registered_route_answers_with_something_other_than_404() {
    // ROUTES really is what the router serves: each path answers, if only
    // with 401 or 400, and never with the router's 404 or 405.
    let app = spawn_app().await;
    for (method, path) in ROUTES {
        let path = path
            .replace("{tenant}", "acme")
            .replace("{user_id}", &uuid::Uuid::nil().to_string())
            .replace("{path:.*}", "orders/7");
        let response = app
            .client
            .request(method.to_uppercase().parse().unwrap(), app.url(&path))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert!(
            status != 405 && !(status == 404 && body["detail"] == "route not found"),
            "{method} {path}: {status} {body}"
        );
    }
}

/// The document's request schemas accept exactly what the server does: a
/// name, username or password the pattern and lengths allow is valid, and
/// one they refuse is refused (schemathesis holds the whole API to this in
/// CI; these are the rules it is easiest to get subtly wrong).
mod request_rules {
    use proptest::prelude::*;
    use serde_json::Value;
    use tenant_jwt::domain::accounts::password::Password;
    use tenant_jwt::types::ids::{TenantName, Username};
    use utoipa::OpenApi;

    /// A string property's rules, as the document states them.
    struct Rule {
        pattern: Option<regex::Regex>,
        min: Option<u64>,
        max: Option<u64>,
    }

    static SPEC: std::sync::LazyLock<Value> = std::sync::LazyLock::new(|| {
        serde_json::to_value(tenant_jwt::http::routes::ApiDoc::openapi()).unwrap()
    });

    fn property(schema: &str, name: &str) -> Rule {
        rule(&SPEC["components"]["schemas"][schema]["properties"][name])
    }

    /// The rule of each item of an array property (through its `$ref`).
    fn items(schema: &str, name: &str) -> Rule {
        let items = &SPEC["components"]["schemas"][schema]["properties"][name]["items"];
        match items["$ref"].as_str() {
            Some(reference) => {
                let name = reference.trim_start_matches("#/components/schemas/");
                rule(&SPEC["components"]["schemas"][name])
            }
            None => rule(items),
        }
    }

    fn rule(property: &Value) -> Rule {
        Rule {
            pattern: property["pattern"]
                .as_str()
                .map(|p| regex::Regex::new(p).unwrap()),
            min: property["minLength"].as_u64(),
            max: property["maxLength"].as_u64(),
        }
    }

    /// Whether `value` meets the rule's pattern and character bounds.
    fn allows(rule: &Rule, value: &str) -> bool {
        let chars = value.chars().count() as u64;
        rule.pattern.as_ref().is_none_or(|p| p.is_match(value))
            && rule.min.is_none_or(|min| chars >= min)
            && rule.max.is_none_or(|max| chars <= max)
    }

    /// Short strings over the characters the rules are about: letters,
    /// digits, the username's punctuation, spaces of several kinds, control
    /// characters and a few beyond ASCII.
    fn edgy(max: usize) -> impl Strategy<Value = String> {
        let pieces = prop::sample::select(vec![
            'a', 'Z', '0', '.', '_', '@', '+', '-', ' ', '\t', '\n', '\u{0}', '\u{7f}', '\u{85}',
            '\u{a0}', '\u{3000}', '\u{2028}', '\u{feff}', 'é', '😀', '/', '"',
        ]);
        prop::collection::vec(pieces, 0..max).prop_map(|c| c.into_iter().collect())
    }

    use std::sync::LazyLock;

    static TENANT_NAME: LazyLock<Rule> = LazyLock::new(|| property("CreateTenant", "name"));
    static USERNAME: LazyLock<Rule> = LazyLock::new(|| property("CreateUser", "username"));
    static PASSWORD: LazyLock<Rule> = LazyLock::new(|| property("CreateUser", "password"));
    static ROLE_NAME: LazyLock<Rule> = LazyLock::new(|| property("CreateRole", "name"));
    static HELD_ROLE: LazyLock<Rule> = LazyLock::new(|| items("SetUserRoles", "roles"));
    static ASKED: LazyLock<Rule> = LazyLock::new(|| items("CheckRequest", "permissions"));
    static PATTERNS: [LazyLock<Rule>; 2] = [
        LazyLock::new(|| items("CreateRole", "permissions")),
        LazyLock::new(|| items("PatchRole", "permissions")),
    ];

    /// Short strings over the characters of the permission grammar and a
    /// few just outside it.
    fn grammar_edgy(max: usize) -> impl Strategy<Value = String> {
        let pieces = prop::sample::select(vec![
            'a', 'b', '0', '_', '.', '-', ':', ':', '*', 'A', ' ', '\n', 'é',
        ]);
        prop::collection::vec(pieces, 0..max).prop_map(|c| c.into_iter().collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            failure_persistence: None,
            ..ProptestConfig::with_cases(1000)
        })]

        #[test]
        fn tenant_names(name in edgy(12)) {
            prop_assert_eq!(allows(&TENANT_NAME, &name), TenantName::parse(&name).is_ok(), "{:?}", name);
        }

        #[test]
        fn usernames(name in edgy(12)) {
            prop_assert_eq!(allows(&USERNAME, &name), Username::parse(&name).is_ok(), "{:?}", name);
        }

        #[test]
        fn role_names(name in grammar_edgy(8)) {
            let server = tenant_jwt::domain::authz::grammar::RoleName::parse(&name).is_ok();
            prop_assert_eq!(allows(&ROLE_NAME, &name), server, "{:?}", name);
            prop_assert_eq!(allows(&HELD_ROLE, &name), server, "{:?}", name);
        }

        #[test]
        fn permission_patterns(pattern in grammar_edgy(10)) {
            let server = tenant_jwt::domain::authz::grammar::Pattern::parse(&pattern).is_ok();
            for documented in &PATTERNS {
                prop_assert_eq!(allows(documented, &pattern), server, "{:?}", pattern);
            }
            let asked = tenant_jwt::domain::authz::grammar::Permission::parse(&pattern).is_ok();
            prop_assert_eq!(allows(&ASKED, &pattern), asked, "asked {:?}", pattern);
        }

        #[test]
        fn passwords(password in edgy(12)) {
            let server = Password::parse_new(password.clone()).is_ok();
            prop_assert_eq!(allows(&PASSWORD, &password), server, "{:?}", password);
        }
    }

    /// A credential's name follows a tenant name's rule (`display_name`):
    /// utoipa takes a pattern only as a literal, so the document states it
    /// three times; they must stay one rule, which the properties above test.
    #[test]
    fn credential_names_state_the_tenant_name_rule() {
        let stated = |rule: &Rule| {
            (
                rule.pattern.as_ref().map(|p| p.as_str().to_owned()),
                rule.min,
                rule.max,
            )
        };
        for schema in ["CreateCredential", "CreateTenantCredential"] {
            assert_eq!(
                stated(&property(schema, "name")),
                stated(&TENANT_NAME),
                "{schema}"
            );
        }
    }

    #[test]
    fn long_values_at_their_bounds() {
        for n in [199, 200, 201] {
            let value = "é".repeat(n);
            assert_eq!(
                allows(&TENANT_NAME, &value),
                TenantName::parse(&value).is_ok(),
                "{n}"
            );
        }
        for n in [1023, 1024, 1025] {
            let value = "😀".repeat(n);
            let server = Password::parse_new(value.clone()).is_ok();
            assert_eq!(allows(&PASSWORD, &value), server, "{n}");
        }
    }
}
