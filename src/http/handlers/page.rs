//! The query of every keyset-paginated listing.

use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

/// `?limit=&after=` of a keyset-paginated listing.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1 to 200 (larger is capped); default 50.
    #[param(value_type = Option<i64>, minimum = 1.0, maximum = 4294967295.0)]
    pub limit: Option<u32>,
    /// The `next_after` of the previous page.
    pub after: Option<Uuid>,
}
