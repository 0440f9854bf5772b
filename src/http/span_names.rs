//! The server span's name (`METHOD /route/pattern`) and `http.route`, as
//! text made once per route and method and kept for the process's life, so
//! that a traced request neither formats its span's name nor copies its
//! route (and the exporter clones neither). Bounded: routes are the
//! service's own patterns (or `unmatched`), methods the few
//! `observe::metric_method` names.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};

/// A route's texts for one method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Names {
    /// `METHOD /route/pattern`.
    pub span: &'static str,
    /// The route pattern.
    pub route: &'static str,
}

thread_local! {
    /// This thread's view of the texts made so far, by route and method.
    static KNOWN: RefCell<HashMap<String, Vec<(&'static str, Names)>>> = RefCell::default();
}

/// Every text made, once per process.
static MADE: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);

/// The texts for `method` on `route`.
pub fn of(method: &'static str, route: &str) -> Names {
    KNOWN.with_borrow_mut(|known| {
        if let Some(names) = known
            .get(route)
            .and_then(|by_method| by_method.iter().find(|(m, _)| *m == method))
        {
            return names.1;
        }
        let names = Names {
            span: kept(&format!("{method} {route}")),
            route: kept(route),
        };
        known
            .entry(route.to_owned())
            .or_default()
            .push((method, names));
        names
    })
}

/// `text`, kept for the process's life (made once across threads).
fn kept(text: &str) -> &'static str {
    let mut made = MADE.lock().unwrap_or_else(PoisonError::into_inner);
    let made = made.get_or_insert_with(HashSet::new);
    if let Some(found) = made.get(text) {
        return found;
    }
    let text: &'static str = Box::leak(text.to_owned().into_boxed_str());
    made.insert(text);
    text
}

#[cfg(test)]
mod tests {
    use super::of;

    #[test]
    fn made_once_per_route_and_method() {
        let names = of("GET", "/v1/me");
        assert_eq!(names.span, "GET /v1/me");
        assert_eq!(names.route, "/v1/me");
        assert!(std::ptr::eq(names.span, of("GET", "/v1/me").span));
        let other_thread = std::thread::spawn(|| of("GET", "/v1/me")).join().unwrap();
        assert!(std::ptr::eq(names.span, other_thread.span));
        assert_eq!(of("POST", "/v1/me").span, "POST /v1/me");
    }
}
