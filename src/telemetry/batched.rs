//! The log writer of the service: a request worker appends its formatted
//! line to a shared buffer (a copy under an uncontended lock, no system
//! call); a thread of its own writes the buffer to standard error every
//! `FLUSH_EVERY`, or sooner once `WAKE_AT` bytes are waiting.
//!
//! Why not `tracing_appender::non_blocking`: it sends every line through a
//! channel and so wakes its writer thread once per line, a futex wake-up and
//! two context switches per request at the default level (measured: the
//! writer thread took a fifth of the process's CPU under load, see #23).
//! Here a burst of lines costs one wake-up.
//!
//! When more than `CAPACITY` bytes are waiting (standard error blocked or
//! far too slow), new lines are dropped and counted rather than hold a
//! request or grow without bound.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long a line may wait before it is written.
const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// Bytes waiting at which the writer thread is woken before `FLUSH_EVERY`.
const WAKE_AT: usize = 256 * 1024;
/// Bytes waiting beyond which lines are dropped (about 100 000 lines).
const CAPACITY: usize = 16 * 1024 * 1024;

#[derive(Default)]
struct Shared {
    pending: Mutex<Vec<u8>>,
    dropped: AtomicU64,
    stopping: Mutex<bool>,
    wake: Condvar,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding it leaves bytes, never a broken invariant.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn append(&self, line: &[u8]) {
        let waiting = {
            let mut pending = lock(&self.pending);
            if pending.len() + line.len() > CAPACITY {
                drop(pending);
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            pending.extend_from_slice(line);
            pending.len()
        };
        // Once per batch: the first line past the mark wakes the thread.
        if waiting >= WAKE_AT && waiting - line.len() < WAKE_AT {
            self.wake.notify_one();
        }
    }

    /// Writes what is waiting to `out`; `spare` is the buffer swapped in.
    fn flush_into(&self, spare: &mut Vec<u8>, out: &mut impl Write) {
        spare.clear();
        std::mem::swap(&mut *lock(&self.pending), spare);
        if !spare.is_empty() {
            // Nowhere to report a failure to write the log.
            let _ = out.write_all(spare).and_then(|()| out.flush());
        }
    }
}

/// A `MakeWriter` for the fmt layer; see the module documentation.
#[derive(Clone)]
pub struct BatchedStderr {
    shared: Arc<Shared>,
}

/// Keep it until exit: dropping it writes what is waiting and stops the
/// writer thread.
pub struct FlushOnDrop {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl BatchedStderr {
    /// Starts the writer thread.
    pub fn start() -> io::Result<(Self, FlushOnDrop)> {
        Self::start_with(io::stderr())
    }

    fn start_with(mut out: impl Write + Send + 'static) -> io::Result<(Self, FlushOnDrop)> {
        let shared = Arc::new(Shared::default());
        let theirs = shared.clone();
        let thread = std::thread::Builder::new()
            .name("tenant-jwt-log".into())
            .spawn(move || {
                let mut spare = Vec::new();
                loop {
                    let stopping = {
                        let stopping = lock(&theirs.stopping);
                        let (stopping, _) = theirs
                            .wake
                            .wait_timeout_while(stopping, FLUSH_EVERY, |stop| {
                                !*stop && lock(&theirs.pending).len() < WAKE_AT
                            })
                            .unwrap_or_else(PoisonError::into_inner);
                        *stopping
                    };
                    theirs.flush_into(&mut spare, &mut out);
                    if stopping {
                        return;
                    }
                }
            })?;
        Ok((
            Self {
                shared: shared.clone(),
            },
            FlushOnDrop {
                shared,
                thread: Some(thread),
            },
        ))
    }

    /// Lines dropped so far because too much was waiting.
    pub fn dropped_lines(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for FlushOnDrop {
    fn drop(&mut self) {
        *lock(&self.shared.stopping) = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One formatted event: the fmt layer writes each line with one
/// `write_all`, so a line is appended (or dropped) whole.
pub struct Line<'a>(&'a Shared);

impl Write for Line<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.append(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchedStderr {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        Line(&self.shared)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `Write` whose bytes the test can read.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            lock(&self.0).extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_are_written_within_the_interval_and_on_drop() {
        let sink = Sink::default();
        let (writer, guard) = BatchedStderr::start_with(sink.clone()).unwrap();
        writer.make_writer().write_all(b"one\n").unwrap();
        std::thread::sleep(FLUSH_EVERY * 4);
        assert_eq!(&*lock(&sink.0), b"one\n");
        writer.make_writer().write_all(b"two\n").unwrap();
        drop(guard);
        assert_eq!(&*lock(&sink.0), b"one\ntwo\n");
        assert_eq!(writer.dropped_lines(), 0);
    }

    #[test]
    fn past_the_capacity_lines_are_dropped_whole_and_counted() {
        // No writer thread: nothing is taken away while the buffer fills.
        let shared = Shared::default();
        let line = vec![b'x'; 1024];
        let fits = CAPACITY / line.len();
        for _ in 0..fits + 3 {
            Line(&shared).write_all(&line).unwrap();
        }
        assert_eq!(lock(&shared.pending).len(), fits * line.len());
        assert_eq!(shared.dropped.load(Ordering::Relaxed), 3);
        let (mut spare, mut out) = (Vec::new(), Vec::new());
        shared.flush_into(&mut spare, &mut out);
        assert_eq!(out.len(), fits * line.len());
        assert!(lock(&shared.pending).is_empty());
    }
}
