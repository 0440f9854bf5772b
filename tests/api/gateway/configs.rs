//! The gateway configurations that cannot run here (Traefik and Envoy are
//! not Debian packages): parsed, and the fields that decide whether they
//! protect anything checked. And every configuration in `examples/` stands
//! in the README word for word, so the text people copy is the one tested.

use yaml_rust2::{Yaml, YamlLoader};

/// The identity headers every gateway must copy from the answer, replacing
/// whatever the client sent under those names.
const IDENTITY: [&str; 7] = [
    "X-Auth-User-Id",
    "X-Auth-Tenant-Id",
    "X-Auth-Tenant",
    "X-Auth-Username",
    "X-Auth-Role",
    "X-Auth-Session-Id",
    "X-Auth-Roles",
];

fn read(file: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml(file: &str) -> Yaml {
    let mut documents = YamlLoader::load_from_str(&read(file))
        .unwrap_or_else(|e| panic!("{file} is not valid YAML: {e}"));
    assert_eq!(documents.len(), 1, "{file}: one document");
    documents.remove(0)
}

fn strings(list: &Yaml) -> Vec<&str> {
    list.as_vec()
        .expect("a list")
        .iter()
        .map(|item| item.as_str().expect("a string"))
        .collect()
}

#[test]
fn traefik_forward_auth_asks_the_service_and_copies_the_identity() {
    let config = yaml("examples/traefik/dynamic.yml");
    let middlewares = &config["http"]["middlewares"];
    for (name, address) in [
        ("tenant-jwt", "http://tenant-jwt:8080/v1/forward-auth"),
        (
            "tenant-jwt-admin",
            "http://tenant-jwt:8080/v1/forward-auth?role=admin",
        ),
    ] {
        let forward = &middlewares[name]["forwardAuth"];
        assert_eq!(forward["address"].as_str(), Some(address), "{name}");
        assert_eq!(
            strings(&forward["authResponseHeaders"]),
            IDENTITY,
            "{name}: the identity replaces the client's headers"
        );
        assert_eq!(
            forward["trustForwardHeader"].as_bool(),
            Some(true),
            "{name}"
        );
    }
    let routers = &config["http"]["routers"];
    assert_eq!(strings(&routers["app"]["middlewares"]), ["tenant-jwt"]);
    assert_eq!(
        strings(&routers["admin"]["middlewares"]),
        ["tenant-jwt-admin"]
    );
    assert_eq!(
        routers["admin"]["rule"].as_str(),
        Some("PathPrefix(`/admin/`)")
    );
}

#[test]
fn envoy_ext_authz_asks_the_service_and_copies_the_identity() {
    let config = yaml("examples/envoy/envoy.yaml");
    let manager = &config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
    let filters = manager["http_filters"].as_vec().expect("http_filters");
    assert_eq!(
        filters[0]["name"].as_str(),
        Some("envoy.filters.http.ext_authz"),
        "ext_authz runs first"
    );
    assert_eq!(
        filters.last().unwrap()["name"].as_str(),
        Some("envoy.filters.http.router")
    );
    let authz = &filters[0]["typed_config"];
    assert_eq!(
        authz["failure_mode_allow"].as_bool(),
        Some(false),
        "fails closed"
    );
    let service = &authz["http_service"];
    assert_eq!(
        service["server_uri"]["uri"].as_str(),
        Some("http://tenant-jwt:8080")
    );
    let cluster = service["server_uri"]["cluster"].as_str().unwrap();
    assert_eq!(service["path_prefix"].as_str(), Some("/v1/forward-auth"));
    let exact = |patterns: &Yaml| -> Vec<String> {
        patterns
            .as_vec()
            .expect("patterns")
            .iter()
            .map(|p| p["exact"].as_str().expect("exact").to_owned())
            .collect()
    };
    assert_eq!(
        exact(&service["authorization_request"]["allowed_headers"]["patterns"]),
        [
            "authorization",
            "cookie",
            "x-forwarded-for",
            "x-auth-min-version"
        ],
        "the credential (and a client's read-your-writes) reaches the service"
    );
    let identity: Vec<String> = IDENTITY.iter().map(|h| h.to_ascii_lowercase()).collect();
    assert_eq!(
        exact(&service["authorization_response"]["allowed_upstream_headers"]["patterns"]),
        identity,
        "the identity replaces the client's headers"
    );
    let clusters = config["static_resources"]["clusters"].as_vec().unwrap();
    assert!(
        clusters.iter().any(|c| c["name"].as_str() == Some(cluster)),
        "the cluster {cluster} is defined"
    );
}

#[test]
fn every_example_configuration_stands_in_the_readme_as_it_is() {
    let readme = read("README.md");
    for file in [
        "examples/caddy/Caddyfile",
        "examples/traefik/dynamic.yml",
        "examples/envoy/envoy.yaml",
        "examples/nginx/tenant-jwt.conf",
    ] {
        let text = read(file);
        assert!(
            readme.contains(text.trim_end()),
            "README.md does not hold {file} as it is"
        );
    }
}
