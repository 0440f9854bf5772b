//! Memory of a tenant's authorization view in process: bytes per role (by
//! patterns granted) and per assignment, counted by the allocator.
//! `cargo run --release --example authz_memory`
//!
//! The figures are bytes asked of the allocator while the view is built and
//! held (the allocator's own overhead, a few percent with mimalloc, comes on
//! top); patterns are names like `service-07:resource-013:approve`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use tenant_jwt::domain::authz::grammar::{Pattern, RoleName};
use tenant_jwt::domain::authz::view::TenantView;
use tenant_jwt::types::ids::{RoleId, UserId};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

type Roles = Vec<(RoleId, RoleName, Vec<Pattern>)>;

fn roles(count: usize, patterns: usize) -> Roles {
    (0..count)
        .map(|r| {
            let granted = (0..patterns)
                .map(|p| {
                    let text = if p % 5 == 4 {
                        format!("service-{r:02}:resource-{p:03}:*")
                    } else {
                        format!("service-{r:02}:resource-{p:03}:approve")
                    };
                    Pattern::parse(&text).unwrap()
                })
                .collect();
            let name = RoleName::parse(&format!("role-{r:03}")).unwrap();
            (RoleId::generate(), name, granted)
        })
        .collect()
}

/// Bytes held by the view built from the rows `rows` makes (the rows, as if
/// read from Postgres, are consumed while it is built).
fn held(rows: impl FnOnce() -> (Roles, Vec<(UserId, RoleId)>)) -> (TenantView, isize) {
    let before = LIVE.load(Ordering::Relaxed);
    let (roles, assignments) = rows();
    let view = TenantView::new(1, roles, assignments);
    (view, LIVE.load(Ordering::Relaxed) - before)
}

fn assignments(roles: &Roles, users: usize, each: usize) -> Vec<(UserId, RoleId)> {
    (0..users)
        .flat_map(|u| {
            let user = UserId::generate();
            (0..each).map(move |k| (user, roles[(u * 7 + k * 13) % roles.len()].0))
        })
        .collect()
}

fn main() {
    println!("| roles × patterns | users × roles each | view held | per role | per assignment |");
    println!("|---|---|---|---|---|");
    for (count, patterns, users, each) in [
        (500, 20, 10_000, 3),
        (500, 20, 10_000, 10),
        (500, 200, 10_000, 3),
        (50, 20, 100_000, 3),
    ] {
        let (bare, roles_only) = held(|| (roles(count, patterns), vec![]));
        drop(bare);
        let (view, total) = held(|| {
            let rows = roles(count, patterns);
            let given = assignments(&rows, users, each);
            (rows, given)
        });
        let per_role = roles_only as f64 / count as f64;
        let per_assignment = (total - roles_only) as f64 / (users * each) as f64;
        println!(
            "| {count} × {patterns} | {users} × {each} | {:.2} MiB | {per_role:.0} B | {per_assignment:.1} B |",
            total as f64 / 1_048_576.0
        );
        assert_eq!(view.size(), (count, users * each));
    }
}
