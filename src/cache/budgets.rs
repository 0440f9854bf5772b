//! Rate-limit budgets shared by every instance, kept in Redis: one GCRA
//! (generic cell rate algorithm, as governor's) per key, taken by one Lua
//! script in one round trip, on Redis's clock (`TIME`), so instances whose
//! clocks differ still share one budget.
//!
//! A key holds the budget's "theoretical arrival time" in milliseconds and
//! expires when the budget is full again (at most one period), so idle keys
//! cost nothing. Each key names one subject in its hash tag (`{ip:…}`,
//! `{account:…}`): a script touches one slot, as a cluster requires.

use std::time::Duration;

use redis::Script;

use super::{CacheError, Command, RecordCache};

/// Takes one cell from the budget at KEYS[1] (ARGV[1]: the interval between
/// cells, ms; ARGV[2]: the burst). Returns 0 if taken with more left, minus
/// the wait in ms until the next one if it was the last, or the wait in ms
/// until one is free if none was.
const TAKE: &str = r#"
if redis.replicate_commands then redis.replicate_commands() end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allowed_at = tat + interval - burst * interval
if now < allowed_at then
  return allowed_at - now
end
local next_tat = tat + interval
redis.call('SET', KEYS[1], next_tat, 'PX', math.max(next_tat - now, 1))
local next_allowed_at = next_tat + interval - burst * interval
if now < next_allowed_at then
  return now - next_allowed_at
end
return 0
"#;

/// A budget of `per_minute` cells (all of them at once, as a burst), one
/// coming back every minute / `per_minute`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    /// Whom it limits: the key's hash tag, e.g. `ip:203.0.113.9`.
    pub subject: String,
    /// Which of the subject's budgets, e.g. `login`.
    pub name: String,
    pub per_minute: u32,
}

#[derive(Clone)]
pub struct Budgets {
    cache: RecordCache,
    script: Script,
}

impl Budgets {
    pub fn new(cache: RecordCache) -> Self {
        Self {
            cache,
            script: Script::new(TAKE),
        }
    }

    /// The Redis key of `budget`.
    pub fn key(&self, budget: &Budget) -> String {
        format!(
            "{}{{{}}}:limit:{}",
            self.cache.prefix, budget.subject, budget.name
        )
    }

    /// Takes a cell of `budget`.
    pub async fn take(&self, budget: &Budget) -> Result<Taken, CacheError> {
        let per_minute = u64::from(budget.per_minute.max(1));
        let interval_ms = (60_000 / per_minute).max(1);
        let mut invocation = self.script.key(self.key(budget));
        invocation.arg(interval_ms).arg(per_minute);
        let answer: i64 = self.cache.run(Command::Script(&invocation)).await?;
        let wait = Duration::from_millis(answer.unsigned_abs());
        Ok(match answer {
            0 => Taken::WithMoreLeft,
            ..0 => Taken::TheLast { next_in: wait },
            _ => Taken::NoneLeft { next_in: wait },
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    WithMoreLeft,
    /// Taken, and the budget is now empty.
    TheLast {
        next_in: Duration,
    },
    /// Refused.
    NoneLeft {
        next_in: Duration,
    },
}
