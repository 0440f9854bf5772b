//! The permission grammar's strings as the OpenAPI document states them
//! (documentation only): each a string with the grammar's pattern, which
//! `tests/api/openapi.rs` holds to the parsers in `domain::authz::grammar`.

use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

use crate::domain::authz::grammar::MAX_PERMISSION_LEN;

const SEGMENT: &str = "[a-z0-9][a-z0-9_.-]{0,63}";

fn string(pattern: String, max_length: Option<usize>, example: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(pattern))
        .max_length(max_length)
        .examples([example])
        .into()
}

/// A permission pattern as a role grants it: `invoices:approve`,
/// `invoices:*` or `*`, at most 128 characters.
pub struct PatternItem;

impl utoipa::PartialSchema for PatternItem {
    fn schema() -> RefOr<Schema> {
        let pattern = format!(r"^(\*|{SEGMENT}(:{SEGMENT})*(:\*)?)$");
        string(pattern, Some(MAX_PERMISSION_LEN), "invoices:*")
    }
}

impl ToSchema for PatternItem {}

/// A permission asked about: never a pattern.
pub struct PermissionItem;

impl utoipa::PartialSchema for PermissionItem {
    fn schema() -> RefOr<Schema> {
        let pattern = format!("^{SEGMENT}(:{SEGMENT})*$");
        string(pattern, Some(MAX_PERMISSION_LEN), "invoices:approve")
    }
}

impl ToSchema for PermissionItem {}

/// A role's name: one segment.
pub struct RoleNameItem;

impl utoipa::PartialSchema for RoleNameItem {
    fn schema() -> RefOr<Schema> {
        string(format!("^{SEGMENT}$"), None, "invoice-approver")
    }
}

impl ToSchema for RoleNameItem {}
