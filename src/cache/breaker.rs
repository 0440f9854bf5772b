//! A circuit breaker for Redis: after `THRESHOLD` failures in a row, calls are
//! refused at once for `COOL_DOWN`, so that while Redis is down or silent no
//! request waits out a timeout before falling back to Postgres. After the
//! cool-down calls go through again; one more failure opens it again at once.

use std::sync::Mutex;
use std::time::{Duration, Instant};

const THRESHOLD: u32 = 3;
const COOL_DOWN: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub struct Breaker {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    failures: u32,
    open_until: Option<Instant>,
}

impl Breaker {
    /// Whether a call may be made at `now`.
    pub fn allows(&self, now: Instant) -> bool {
        self.state().open_until.is_none_or(|until| now >= until)
    }

    /// Records how a call made at `now` went.
    pub fn record(&self, succeeded: bool, now: Instant) {
        let mut state = self.state();
        if succeeded {
            *state = State::default();
        } else {
            state.failures = state.failures.saturating_add(1);
            if state.failures >= THRESHOLD {
                state.open_until = Some(now + COOL_DOWN);
            }
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_repeated_failures_and_retries_after_the_cool_down() {
        let breaker = Breaker::default();
        let t0 = Instant::now();
        for _ in 0..THRESHOLD - 1 {
            breaker.record(false, t0);
            assert!(breaker.allows(t0), "below the threshold");
        }
        breaker.record(false, t0);
        assert!(!breaker.allows(t0));
        assert!(!breaker.allows(t0 + COOL_DOWN / 2));
        let later = t0 + COOL_DOWN;
        assert!(breaker.allows(later), "half open after the cool-down");
        breaker.record(false, later);
        assert!(!breaker.allows(later), "one more failure opens it again");
        let after = later + COOL_DOWN;
        breaker.record(true, after);
        assert!(breaker.allows(after));
        breaker.record(false, after);
        assert!(breaker.allows(after), "a success reset the count");
    }
}
