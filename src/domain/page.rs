//! Keyset-paginated listings: what a caller may ask for, and the page it gets.

use uuid::Uuid;

use crate::db::page::Keyset;
use crate::domain::error::DomainError;
use crate::types::ids::InvalidInput;

/// Largest page of a listing; larger requests are capped.
pub const MAX_PAGE: u32 = 200;
/// The page size when none is asked for.
const DEFAULT_PAGE: u32 = 50;

/// The page after `after`, of `limit` items (default 50, capped at 200; 0
/// is refused).
pub fn request(after: Option<Uuid>, limit: Option<u32>) -> Result<Keyset, DomainError> {
    let limit = match limit {
        None => DEFAULT_PAGE,
        Some(0) => return Err(InvalidInput::new("limit", "must be at least 1").into()),
        Some(n) => n.min(MAX_PAGE),
    };
    Ok(Keyset {
        after,
        limit: i64::from(limit),
    })
}

/// A page of a keyset-paginated listing.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `after` for the next page; `None` on the last one.
    pub next_after: Option<Uuid>,
}

impl<T> Page<T> {
    /// The page `rows` (read for `asked`, in key order) make: a full page may
    /// have a successor, a short one is the last.
    pub fn from_rows<R: Into<T>>(rows: Vec<R>, asked: Keyset, key: impl Fn(&R) -> Uuid) -> Self {
        let full = i64::try_from(rows.len()).is_ok_and(|n| n == asked.limit);
        let next_after = rows.last().filter(|_| full).map(key);
        Page {
            items: rows.into_iter().map(Into::into).collect(),
            next_after,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_default_cap_and_refuse_zero() {
        assert_eq!(request(None, None).unwrap().limit, 50);
        assert_eq!(request(None, Some(1000)).unwrap().limit, 200);
        assert_eq!(request(None, Some(7)).unwrap().limit, 7);
        assert!(matches!(
            request(None, Some(0)),
            Err(DomainError::Invalid(_))
        ));
    }

    #[test]
    fn only_a_full_page_points_to_a_next_one() {
        let asked = request(None, Some(2)).unwrap();
        let ids = [Uuid::now_v7(), Uuid::now_v7()];
        let full: Page<Uuid> = Page::from_rows(ids.to_vec(), asked, |id| *id);
        assert_eq!(full.next_after, Some(ids[1]));
        let short: Page<Uuid> = Page::from_rows(ids[..1].to_vec(), asked, |id| *id);
        assert_eq!(short.next_after, None);
    }
}
