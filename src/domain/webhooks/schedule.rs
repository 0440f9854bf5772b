//! What happens after a delivery attempt: a pure function of the outcome and
//! the retry schedule, tested without I/O.
//!
//! The first attempt is made at once; each failure waits the schedule's next
//! step (with ±10 % jitter, so a receiver's outage does not bring every
//! message back at once) and after the last step the message is failed. A
//! `Retry-After` longer than the step postpones the retry, up to the step
//! after it. `410 Gone` disables the endpoint.

use std::time::Duration;

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx.
    Delivered,
    /// 410: the receiver wants no more.
    Gone,
    /// Any other status, a timeout, a refused or failed connection.
    Failed { retry_after: Option<Duration> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Delivered,
    /// Try again after `wait`; `step` is the schedule position reached.
    Retry {
        wait: Duration,
        step: usize,
    },
    /// No step left: the message is failed.
    Failed,
    /// The message is failed and its endpoint disabled.
    DisableEndpoint,
}

impl Outcome {
    /// From a response's status and `Retry-After` header (seconds).
    pub fn of_response(status: u16, retry_after: Option<&str>) -> Outcome {
        match status {
            200..=299 => Outcome::Delivered,
            410 => Outcome::Gone,
            _ => Outcome::Failed {
                retry_after: retry_after
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs),
            },
        }
    }
}

/// After an attempt that ended in `outcome`, `step` retries into this round
/// of `schedule`. `jitter` is uniform in [-1, 1].
pub fn next(schedule: &[Duration], step: usize, outcome: &Outcome, jitter: f64) -> Next {
    let retry_after = match outcome {
        Outcome::Delivered => return Next::Delivered,
        Outcome::Gone => return Next::DisableEndpoint,
        Outcome::Failed { retry_after } => *retry_after,
    };
    let Some(&base) = schedule.get(step) else {
        return Next::Failed;
    };
    let wait = match retry_after {
        Some(asked) if asked > base => {
            let ceiling = schedule.get(step + 1).copied().unwrap_or(base).max(base);
            asked.min(ceiling)
        }
        _ => base.mul_f64(1.0 + 0.1 * jitter.clamp(-1.0, 1.0)),
    };
    Next::Retry {
        wait,
        step: step + 1,
    }
}

/// Parses `TENANT_JWT_WEBHOOK_RETRY_SCHEDULE`: seconds, comma-separated
/// (`5,300,1800`); empty for no retry at all.
pub fn parse_schedule(raw: &str) -> Result<Vec<Duration>, String> {
    if raw.trim().is_empty() {
        return Ok(Vec::new());
    }
    raw.split(',')
        .map(|step| {
            step.trim()
                .parse::<u64>()
                .ok()
                .filter(|s| *s <= 7 * 24 * 3600)
                .map(Duration::from_secs)
                .ok_or_else(|| format!("{step:?} is not a number of seconds up to a week"))
        })
        .collect::<Result<Vec<_>, _>>()
        .and_then(|steps| {
            if steps.len() > 20 {
                Err("at most 20 steps".to_owned())
            } else {
                Ok(steps)
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_RETRY_SCHEDULE as DEFAULT_SCHEDULE;

    fn secs(s: &[u64]) -> Vec<Duration> {
        s.iter().copied().map(Duration::from_secs).collect()
    }

    fn failed() -> Outcome {
        Outcome::Failed { retry_after: None }
    }

    #[test]
    fn a_failing_receiver_gets_one_attempt_per_step_plus_the_first() {
        let schedule = secs(&DEFAULT_SCHEDULE);
        let mut step = 0;
        let mut attempts = 1;
        while let Next::Retry { step: s, wait } = next(&schedule, step, &failed(), 0.0) {
            assert_eq!(wait, schedule[step]);
            step = s;
            attempts += 1;
        }
        assert_eq!(attempts, 1 + DEFAULT_SCHEDULE.len());
        assert_eq!(next(&schedule, step, &failed(), 0.0), Next::Failed);
        assert_eq!(next(&[], 0, &failed(), 0.0), Next::Failed);
    }

    #[test]
    fn success_and_gone_end_the_message() {
        let schedule = secs(&[5]);
        assert_eq!(
            next(&schedule, 0, &Outcome::Delivered, 0.0),
            Next::Delivered
        );
        assert_eq!(
            next(&schedule, 0, &Outcome::Gone, 0.0),
            Next::DisableEndpoint
        );
        assert_eq!(Outcome::of_response(204, None), Outcome::Delivered);
        assert_eq!(Outcome::of_response(410, None), Outcome::Gone);
        assert_eq!(
            Outcome::of_response(503, Some(" 60")),
            Outcome::Failed {
                retry_after: Some(Duration::from_secs(60))
            }
        );
        assert_eq!(Outcome::of_response(301, Some("soon")), failed());
    }

    #[test]
    fn jitter_stays_within_a_tenth() {
        let schedule = secs(&[100]);
        for jitter in [-5.0, -1.0, 0.0, 0.3, 1.0, 9.0] {
            let Next::Retry { wait, .. } = next(&schedule, 0, &failed(), jitter) else {
                panic!("a step is left");
            };
            assert!(
                wait >= Duration::from_secs(90) && wait <= Duration::from_secs(110),
                "{wait:?}"
            );
        }
    }

    #[test]
    fn retry_after_postpones_up_to_the_following_step() {
        let schedule = secs(&[5, 300, 1800]);
        let asked = |s| Outcome::Failed {
            retry_after: Some(Duration::from_secs(s)),
        };
        let wait = |step, outcome: Outcome| match next(&schedule, step, &outcome, 0.0) {
            Next::Retry { wait, .. } => wait.as_secs(),
            other => panic!("{other:?}"),
        };
        assert_eq!(wait(0, asked(60)), 60, "longer than the step: honoured");
        assert_eq!(wait(0, asked(86_400)), 300, "capped at the following step");
        assert_eq!(wait(0, asked(1)), 5, "never sooner than the step");
        assert_eq!(wait(2, asked(86_400)), 1800, "the last step caps itself");
    }

    #[test]
    fn schedules_parse() {
        assert_eq!(parse_schedule("5, 300").unwrap(), secs(&[5, 300]));
        assert_eq!(parse_schedule("").unwrap(), secs(&[]));
        assert!(parse_schedule("5,x").is_err());
        assert!(parse_schedule("-1").is_err());
        assert!(parse_schedule("999999999").is_err());
    }
}
