//! `application/x-www-form-urlencoded` bodies, read exactly as
//! `serde_urlencoded::from_bytes` reads them, but without its cost where there
//! is nothing to decode.
//!
//! serde_urlencoded (through form_urlencoded) makes three passes over every
//! name and value: for `+`, for `%`, and a lossy UTF-8 check. For an
//! introspection body, `token=` and a JWT of about 300 bytes, those passes were
//! about 6 % of the service's CPU under load (`perf`, README "Benchmarks"). A
//! JWT has neither `+` nor `%`, so a body without them that is valid UTF-8 is
//! split in place and handed to the type's `Deserialize` as it stands; any
//! other body goes through serde_urlencoded. The property test below holds the
//! two paths to the same answer for every body.

use serde::de::value::{Error, MapDeserializer};
use serde::de::{DeserializeOwned, Deserializer, IntoDeserializer, Visitor};
use serde::forward_to_deserialize_any;

/// The form body `body` as a `T`, or why not.
pub fn from_bytes<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    let plain = memchr::memchr2(b'+', b'%', body).is_none();
    match std::str::from_utf8(body) {
        Ok(text) if plain => {
            // As form_urlencoded splits: on `&`, empty pieces skipped, the
            // name up to the first `=`, no `=` an empty value.
            let pairs = text
                .split('&')
                .filter(|pair| !pair.is_empty())
                .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
                .map(|(name, value)| (Part(name), Part(value)));
            T::deserialize(MapDeserializer::<_, Error>::new(pairs)).map_err(|e| e.to_string())
        }
        _ => serde_urlencoded::from_bytes(body).map_err(|e| e.to_string()),
    }
}

/// A name or a value, already decoded: a string, which an `Option` field
/// takes as present (as serde_urlencoded does), or an `i64` parsed from it.
/// Any other number or a bool field would be refused here where
/// serde_urlencoded parses it, so such a field needs a case below first.
struct Part<'a>(&'a str);

impl<'de> IntoDeserializer<'de, Error> for Part<'_> {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> Deserializer<'de> for Part<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_str(self.0)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_some(self)
    }

    /// As serde_urlencoded: the text parsed as a number (`min_version`).
    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0.parse::<i64>() {
            Ok(number) => visitor.visit_i64(number),
            Err(e) => Err(serde::de::Error::custom(e)),
        }
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde::Deserialize;

    use super::*;

    /// The shape of every form the service reads (RFC 7009 and 7662 bodies).
    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct TokenForm {
        token: String,
        #[serde(default)]
        token_type_hint: Option<String>,
        #[serde(default, deserialize_with = "crate::http::body::some_version")]
        min_version: Option<i64>,
    }

    /// Whether both readers agree: the same value, or both refuse.
    fn agree(body: &[u8]) -> Result<(), String> {
        let fast = from_bytes::<TokenForm>(body).ok();
        let reference = serde_urlencoded::from_bytes::<TokenForm>(body).ok();
        if fast == reference {
            Ok(())
        } else {
            Err(format!(
                "{body:?}: {fast:?} here, {reference:?} in serde_urlencoded"
            ))
        }
    }

    #[test]
    fn reads_forms_as_serde_urlencoded_does() {
        for body in [
            &b"token=abc.def.ghi"[..],
            b"token=a&token_type_hint=access_token",
            b"&&token=a&&",
            b"token",
            b"token=",
            b"token=a=b",
            b"token=a&token=b",
            b"token=a&other=1",
            b"token_type_hint=x",
            b"",
            b"=",
            b"token=a%2Eb",
            b"token=a+b",
            b"token=\xff",
            b"token=a&token_type_hint",
            b"token=a&min_version=12",
            b"token=a&min_version=-1",
            b"token=a&min_version=+1",
            b"token=a&min_version=1.0",
            b"token=a&min_version=",
            b"token=a&min_version=99999999999999999999",
        ] {
            agree(body).unwrap();
        }
        assert_eq!(
            from_bytes::<TokenForm>(b"token=a.b.c&token_type_hint=x").unwrap(),
            TokenForm {
                token: "a.b.c".into(),
                token_type_hint: Some("x".into()),
                min_version: None,
            }
        );
        for body in [&b"token=a&min_version=12"[..], b"token=a+&min_version=12"] {
            assert_eq!(from_bytes::<TokenForm>(body).unwrap().min_version, Some(12));
        }
    }

    proptest! {
        #![proptest_config(crate::fuzzing::properties::config("tests/proptest-regressions/form.txt"))]

        #[test]
        fn any_body_reads_as_serde_urlencoded_reads_it(
            parts in proptest::collection::vec(
                prop_oneof![
                    3 => Just(b"token".to_vec()),
                    2 => Just(b"token_type_hint".to_vec()),
                    2 => Just(b"min_version".to_vec()),
                    2 => "-?[0-9]{1,3}".prop_map(String::into_bytes),
                    4 => Just(b"=".to_vec()),
                    4 => Just(b"&".to_vec()),
                    1 => Just(b"%".to_vec()),
                    1 => Just(b"+".to_vec()),
                    4 => "[a-z.2E]{0,3}".prop_map(String::into_bytes),
                    1 => proptest::collection::vec(any::<u8>(), 0..4),
                ],
                0..10,
            )
        ) {
            let body = parts.concat();
            prop_assert!(agree(&body).is_ok(), "{}", agree(&body).unwrap_err());
        }
    }
}
