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

    let registered: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(method, path)| (method.to_string(), path.to_string()))
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
            .replace("{user_id}", &uuid::Uuid::nil().to_string());
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
