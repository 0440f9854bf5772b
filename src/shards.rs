//! Connection pools split by thread. The driver of a pooled connection (a
//! Redis multiplexed connection, a Postgres connection) runs as a task on the
//! runtime that opened it; a request served on another thread then costs a
//! cross-thread wake-up each way (a futex or eventfd write and a context
//! switch), which on the cold path was four to five per request. So each
//! pool is split into shards, and a thread takes its connections from its own
//! shard only, opened by itself: the HTTP workers (each a single-threaded
//! runtime) have one each, and the main runtime's tasks (background work)
//! share shard 0.

use std::sync::atomic::{AtomicUsize, Ordering};

/// How many shards a pool has: one for background work, one per core (the
/// HTTP workers, one per core by default). Threads beyond that share.
pub fn count() -> usize {
    1 + std::thread::available_parallelism().map_or(1, usize::from)
}

/// The share of `size` connections of each of `shards` shards (at least one).
pub fn share(size: usize, shards: usize) -> usize {
    size.div_ceil(shards.max(1)).max(1)
}

/// The shards' pool statuses added up, as one pool's.
pub fn total(statuses: impl Iterator<Item = deadpool::Status>) -> deadpool::Status {
    let empty = deadpool::Status {
        max_size: 0,
        size: 0,
        available: 0,
        waiting: 0,
    };
    statuses.fold(empty, |sum, status| deadpool::Status {
        max_size: sum.max_size + status.max_size,
        size: sum.size + status.size,
        available: sum.available + status.available,
        waiting: sum.waiting + status.waiting,
    })
}

/// The calling thread's shard among `shards`.
pub fn of_this_thread(shards: usize) -> usize {
    use tokio::runtime::{Handle, RuntimeFlavor};
    static THREADS: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static THREAD: usize = THREADS.fetch_add(1, Ordering::Relaxed);
    }
    let single_threaded = Handle::try_current()
        .is_ok_and(|runtime| runtime.runtime_flavor() == RuntimeFlavor::CurrentThread);
    if shards < 2 || !single_threaded {
        return 0;
    }
    1 + THREAD.with(|thread| *thread) % (shards - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn background_work_has_shard_zero_and_each_worker_thread_one_of_its_own() {
        let main = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        assert_eq!(main.block_on(async { of_this_thread(3) }), 0);

        let worker = || {
            std::thread::spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                let first = runtime.block_on(async { of_this_thread(3) });
                let again = runtime.block_on(async { of_this_thread(3) });
                assert_eq!(first, again, "a thread keeps its shard");
                first
            })
            .join()
            .unwrap()
        };
        let (a, b) = (worker(), worker());
        assert!((1..3).contains(&a) && (1..3).contains(&b));
        assert_ne!(a, b, "two worker threads in a row get different shards");
        assert_eq!(of_this_thread(1), 0, "one shard: everyone's");
    }

    #[test]
    fn the_size_is_shared_out() {
        assert_eq!(share(16, 3), 6);
        assert_eq!(share(1, 3), 1);
        assert_eq!(share(4, 1), 4);
    }
}
