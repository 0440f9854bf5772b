//! Keyset pagination: a page is the rows after a cursor (an id of the last
//! row seen), in id order. Ids are UUIDv7, so id order is creation order.

use uuid::Uuid;

/// Which page to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keyset {
    /// The id of the last row of the previous page; `None` for the first.
    pub after: Option<Uuid>,
    /// Most rows on the page (at least 1).
    pub limit: i64,
}

/// Orders a boxed query by `$id`, keeps the rows after the cursor and at
/// most `limit` of them.
macro_rules! keyset {
    ($query:expr, $id:expr, $page:expr) => {{
        let page: $crate::db::page::Keyset = $page;
        let mut query = $query.order($id.asc()).limit(page.limit);
        if let Some(after) = page.after {
            query = query.filter($id.gt(after));
        }
        query
    }};
}
pub(crate) use keyset;
