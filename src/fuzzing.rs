//! What the fuzz targets (`tests/fuzz`) and the property tests beside them
//! drive: the code that reads untrusted bytes before any store is asked. Each
//! entry point takes arbitrary bytes and must never panic; `token_edit` also
//! panics, on purpose, if an edited token is accepted (a forgery). Built
//! only for tests and with the `fuzzing` feature; not part of the service.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};

use crate::domain::sample::{self, Signed};
use crate::domain::tokens::verify::Unverified;
use crate::http::body::parse_form_or_json;
use crate::http::handlers::{introspect, sessions, tenants, users};
use crate::http::problem::ApiError;

/// A sample user's record and a token it signed, and the moment to check
/// tokens at (the token's own issue time, so it never expires mid-run).
static SAMPLE: LazyLock<(Signed, DateTime<Utc>)> = LazyLock::new(|| (sample::signed(), Utc::now()));

/// Whether `token` passes steps 1 to 6 of verification against the sample
/// user's record (the lookup of step 4 is the record itself).
fn accepted(token: &str) -> bool {
    let (Signed { record, rules, .. }, now) = &*SAMPLE;
    Unverified::read(token).is_ok_and(|unverified| {
        rules
            .check(token, unverified.generation, record, *now)
            .is_ok()
    })
}

/// `data` as a bearer token, read and checked against the sample record.
pub fn token(data: &[u8]) {
    if let Ok(token) = std::str::from_utf8(data) {
        accepted(token);
    }
}

/// The sample's valid token with bytes `[at, at + len)` replaced by the rest
/// of `data` (`at`: its first two bytes, `len`: the third). Panics if the
/// result differs from the token and is accepted.
pub fn token_edit(data: &[u8]) {
    let [a, b, len, insert @ ..] = data else {
        return;
    };
    let token = &SAMPLE.0.token;
    let at = usize::from(u16::from_le_bytes([*a, *b])) % (token.len() + 1);
    let end = (at + usize::from(*len)).min(token.len());
    let mut edited = token.as_bytes()[..at].to_vec();
    edited.extend_from_slice(insert);
    edited.extend_from_slice(&token.as_bytes()[end..]);
    let Ok(edited) = String::from_utf8(edited) else {
        return;
    };
    assert!(
        edited == *token || !accepted(&edited),
        "an edited token was accepted: {edited}"
    );
}

/// A request body: the first byte picks which (and JSON or form where both
/// are read), the rest is the body.
pub fn request_body(data: &[u8]) {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    let content_type = if kind & 0x80 == 0 {
        "application/json"
    } else {
        "application/x-www-form-urlencoded"
    };
    let _ = parse_body(kind, content_type, body);
}

/// Every request body the service reads, parsed and validated from raw
/// bytes exactly as its handler does, with no store behind: what the fuzz
/// target and the property tests drive. `kind` picks the body (any value is
/// fine); the answer is whether the body would be accepted.
fn parse_body(kind: u8, content_type: &str, body: &[u8]) -> Result<(), ApiError> {
    use crate::http::body::json_object as json;
    let content_type = Some(content_type);
    match kind % 8 {
        0 => json::<sessions::LoginRequest>(body).map(drop),
        1 => json::<sessions::RefreshRequest>(body).map(drop),
        2 => parse_form_or_json::<sessions::RevokeRequest>(content_type, body).map(drop),
        3 => parse_form_or_json::<introspect::IntrospectRequest>(content_type, body).map(drop),
        4 => json::<tenants::CreateTenant>(body)?.validated().map(drop),
        5 => json::<users::CreateUser>(body)?.validated().map(drop),
        6 => json::<users::PatchUser>(body)?.validated().map(drop),
        _ => users::RotateRequest::parse(body).map(drop),
    }
}

#[cfg(test)]
pub(crate) mod properties {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn the_sample_token_is_accepted_and_an_untouched_edit_too() {
        assert!(accepted(&SAMPLE.0.token));
        // Replaces the first byte with itself.
        token_edit(&[0, 0, 1, SAMPLE.0.token.as_bytes()[0]]);
    }

    /// proptest's defaults, with failing cases kept in `path` (under
    /// `tests/proptest-regressions/`, not at the top of the repository).
    pub(crate) fn config(path: &'static str) -> ProptestConfig {
        ProptestConfig {
            failure_persistence: Some(Box::new(
                proptest::test_runner::FileFailurePersistence::Direct(path),
            )),
            ..ProptestConfig::default()
        }
    }

    proptest! {
        #![proptest_config(config("tests/proptest-regressions/fuzzing.txt"))]

        #[test]
        fn any_bytes_as_a_token_never_panic(data in proptest::collection::vec(any::<u8>(), 0..400)) {
            token(&data);
        }

        #[test]
        fn no_edit_of_a_valid_token_is_accepted(
            at in any::<prop::sample::Index>(),
            len in 0u8..4,
            insert in "[A-Za-z0-9_.=-]{0,4}|.{0,4}",
        ) {
            let [a, b] = u16::try_from(at.index(SAMPLE.0.token.len())).unwrap().to_le_bytes();
            let mut data = vec![a, b, len];
            data.extend(insert.into_bytes());
            token_edit(&data);
        }

        #[test]
        fn any_request_body_never_panics(kind in any::<u8>(), body in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut data = vec![kind];
            data.extend(body);
            request_body(&data);
        }

        #[test]
        fn json_shaped_request_bodies_never_panic(
            kind in any::<u8>(),
            body in r#"\{("[a-z_]{1,16}": ?("[^"]{0,40}"|-?[0-9]{1,20}|true|null|\[\]),? ?){0,4}\}"#,
        ) {
            let mut data = vec![kind];
            data.extend(body.into_bytes());
            request_body(&data);
        }
    }
}
