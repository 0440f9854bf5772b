//! Password hashing: argon2id with OWASP parameters (m=19456 KiB, t=2, p=1),
//! run off the async executor on a fixed set of dedicated threads with a
//! bounded queue, so a login flood queues for CPU (or gets 503 past the
//! queue) instead of starving token verification or growing memory.

use std::fmt;
use std::sync::{Arc, Mutex};

use argon2::password_hash::{Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::Engine;
use tokio::sync::Semaphore;

use super::password::{Password, PasswordError};
use crate::metrics::{Area, Metrics};
use crate::telemetry::otel;

/// A unit of hashing work for the dedicated threads.
type Job = Box<dyn FnOnce(&mut Memory) + Send>;

/// Hashes and verifies passwords on `workers` dedicated threads, with at most
/// `queue` more jobs waiting; past that, work is refused at once.
///
/// Dedicated long-lived threads, not the async runtime's blocking pool: each
/// argon2id evaluation allocates 19 MiB, and the allocator keeps freed memory
/// per thread, so spreading hashes over many short-lived threads let a login
/// flood grow resident memory to hundreds of MiB. A fixed set of threads
/// bounds it.
#[derive(Clone)]
pub struct PasswordHasher {
    jobs: std::sync::mpsc::Sender<Job>,
    /// Jobs admitted (running or waiting): at most workers + queue. A job
    /// holds its place until it has run.
    slots: Arc<Semaphore>,
    /// Hash of a random password, verified against when the user is unknown so
    /// that an unknown username costs the same as a wrong password.
    dummy_hash: Arc<str>,
    evaluations: Arc<HashingMetrics>,
}

/// argon2id evaluations run, by kind: `hash` (a new password) or `verify`
/// (a login, against the user's hash or the dummy one alike).
pub struct HashingMetrics {
    hash: prometheus::IntCounter,
    verify: prometheus::IntCounter,
}

impl Area for HashingMetrics {
    fn register(metrics: &Metrics) -> Self {
        let evaluations = metrics.counter_vec(
            "password_hash_evaluations_total",
            "argon2id evaluations run by the hashing workers, by kind: hash (a new password), verify (a login; an unknown user is verified against a dummy hash, so it counts one too)",
            &["kind"],
        );
        Self {
            hash: evaluations.with_label_values(&["hash"]),
            verify: evaluations.with_label_values(&["verify"]),
        }
    }
}

/// argon2id with the parameters every stored hash is made with (public for
/// the benchmark that compares login throughput with the raw hash rate).
pub fn argon2id() -> Argon2<'static> {
    let params = Params::new(19_456, 2, 1, None).expect("OWASP argon2id parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// The memory argon2id works in, kept by each hashing thread for its whole
/// life so that no hash allocates (19 MiB at the current parameters).
type Memory = Vec<Block>;

/// Runs argon2 with `params` into `out`, in `memory`.
fn argon2_into(
    argon2: &Argon2<'_>,
    params: &Params,
    password: &Password,
    salt: &[u8],
    out: &mut [u8],
    memory: &mut Memory,
) -> Result<(), argon2::Error> {
    memory.resize(params.block_count(), Block::default());
    argon2.hash_password_into_with_memory(password.as_bytes(), salt, out, memory.as_mut_slice())
}

fn hash_blocking(password: &Password, memory: &mut Memory) -> Result<String, PasswordError> {
    let fail = |e: &dyn fmt::Display| PasswordError::Hash(e.to_string());
    let argon2 = argon2id();
    let params = argon2.params().clone();
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    let mut salt_bytes = [0u8; Salt::MAX_LENGTH];
    let salt_bytes = salt.decode_b64(&mut salt_bytes).map_err(|e| fail(&e))?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    argon2_into(&argon2, &params, password, salt_bytes, &mut out, memory).map_err(|e| fail(&e))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| fail(&e))?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|e| fail(&e))?),
    };
    Ok(phc.to_string())
}

/// Verifies like `PasswordVerifier::verify_password` (the stored PHC string's
/// own algorithm, version and parameters, so older hashes keep verifying, and
/// a constant-time comparison of the outputs), but in `memory`.
fn verify_blocking(password: &Password, phc: &str, memory: &mut Memory) -> bool {
    let Ok(stored) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (stored.salt, stored.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(stored.algorithm) else {
        return false;
    };
    let Ok(version) = stored
        .version
        .map_or(Ok(Version::default()), Version::try_from)
    else {
        return false;
    };
    let Ok(params) = Params::try_from(&stored) else {
        return false;
    };
    let mut salt_bytes = [0u8; Salt::MAX_LENGTH];
    let Ok(salt_bytes) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let argon2 = Argon2::new(algorithm, version, params.clone());
    let mut out = vec![0u8; expected.len()];
    argon2_into(&argon2, &params, password, salt_bytes, &mut out, memory).is_ok()
        && Output::new(&out).is_ok_and(|computed| computed == expected)
}

/// Hashing threads run at the lowest priority (nice 19) below the threads
/// that serve requests: under a login flood every spare cycle still goes to
/// hashing, but token verification is served first. At nice 10 the hashing
/// threads still took about a tenth of every core that verification wanted,
/// a time slice at a time, and that is what `/v1/me`'s p99 waited out
/// (README "Benchmarks": p99 during a flood 5.7 ms at nice 10, 4.2 ms at
/// nice 19, the same logins per second). SCHED_IDLE starves hashing
/// whenever anything else runs: fewer logins, no better p99.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain syscalls on the calling thread, no pointers involved.
    unsafe {
        let thread = libc::gettid();
        if libc::setpriority(libc::PRIO_PROCESS, thread as libc::id_t, 19) != 0 {
            tracing::warn!("could not lower the priority of a password hashing thread");
        }
    }
}

impl PasswordHasher {
    /// Builds the pool; computes the dummy hash with the same parameters as
    /// real ones (tens of milliseconds, once).
    /// At most `workers` hashes at once and `queue` more waiting.
    pub fn new(workers: usize, queue: usize, metrics: &Metrics) -> Result<Self, PasswordError> {
        let mut dummy = [0u8; 32];
        rand::TryRngCore::try_fill_bytes(&mut rand::rngs::OsRng, &mut dummy)
            .map_err(|e| PasswordError::Hash(e.to_string()))?;
        let dummy_password = Password::new(base64::engine::general_purpose::STANDARD.encode(dummy));
        let (jobs, queued) = std::sync::mpsc::channel::<Job>();
        let queued = Arc::new(Mutex::new(queued));
        for worker in 0..workers.max(1) {
            let queued = queued.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{worker}"))
                .spawn(move || {
                    lower_priority();
                    let mut memory = Memory::new();
                    loop {
                        // The lock is released before the job runs (a guard in
                        // a `while let` would be held for the whole body and
                        // serialise every hash onto one thread).
                        let next = queued.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        // Ends when every PasswordHasher clone (every sender) is gone.
                        let Ok(job) = next else { break };
                        job(&mut memory);
                    }
                })
                .map_err(|e| PasswordError::Hash(format!("starting a hashing thread: {e}")))?;
        }
        // On a worker, in the memory it keeps: argon2's working memory
        // (19 MiB) is not allocated twice, once here and once there.
        let (sent, computed) = std::sync::mpsc::channel();
        let dummy: Job = Box::new(move |memory| {
            let _ = sent.send(hash_blocking(&dummy_password, memory));
        });
        let stopped = || PasswordError::Hash("the hashing threads stopped".into());
        jobs.send(dummy).map_err(|_| stopped())?;
        let dummy_hash = computed.recv().map_err(|_| stopped())??;
        Ok(Self {
            jobs,
            slots: Arc::new(Semaphore::new(workers.max(1) + queue)),
            dummy_hash: dummy_hash.into(),
            evaluations: metrics.area(),
        })
    }

    pub async fn hash(&self, password: Password) -> Result<String, PasswordError> {
        let evaluations = self.evaluations.clone();
        self.run("hash", move |memory| {
            evaluations.hash.inc();
            hash_blocking(&password, memory)
        })
        .await?
    }

    /// Verifies `password` against `phc`, or against the dummy hash when there
    /// is no user, so both cases cost one argon2id evaluation.
    pub async fn verify(
        &self,
        password: Password,
        phc: Option<String>,
    ) -> Result<bool, PasswordError> {
        let known = phc.is_some();
        let evaluations = self.evaluations.clone();
        let phc = phc.unwrap_or_else(|| self.dummy_hash.to_string());
        let matches = self
            .run("verify", move |memory| {
                evaluations.verify.inc();
                verify_blocking(&password, &phc, memory)
            })
            .await?;
        Ok(known && matches)
    }

    /// Runs `work` on a hashing worker. While traces are exported, in a span
    /// (`password_hash <kind>`) that says how long the job waited for a
    /// worker.
    async fn run<T: Send + 'static>(
        &self,
        kind: &'static str,
        work: impl FnOnce(&mut Memory) -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let span = match otel::traced() {
            true => tracing::info_span!(
                target: otel::TARGET,
                "password_hash",
                otel.name = format!("password_hash {kind}").as_str(),
                password_hash.kind = kind,
                password_hash.queue_wait_ms = tracing::field::Empty,
            ),
            false => tracing::Span::none(),
        };
        let queued = std::time::Instant::now();
        let slot = self
            .slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| PasswordError::Busy)?;
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |memory| {
            // The caller gave up while this waited (a client that hung up in
            // a flood): no hash for nobody.
            if !done.is_closed() {
                span.record(
                    "password_hash.queue_wait_ms",
                    queued.elapsed().as_secs_f64() * 1e3,
                );
                let _ = done.send(work(memory));
            }
            drop(slot);
        });
        self.jobs.send(job).map_err(|_| PasswordError::PoolClosed)?;
        result.await.map_err(|_| PasswordError::PoolClosed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_worker_hashes_at_once() {
        // Two jobs that can only finish together: with the workers taking
        // turns they would wait for each other for ever.
        let hasher = PasswordHasher::new(2, 8, &Metrics::new()).unwrap();
        let barrier = Arc::new(std::sync::Barrier::new(2));
        let job = |barrier: Arc<std::sync::Barrier>| {
            hasher.run("test", move |_| {
                barrier.wait();
            })
        };
        let both = futures_util::future::join(job(barrier.clone()), job(barrier));
        let (a, b) = tokio::time::timeout(std::time::Duration::from_secs(10), both)
            .await
            .expect("both workers ran a job at the same time");
        a.unwrap();
        b.unwrap();
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashing_runs_at_the_lowest_priority() {
        let hasher = PasswordHasher::new(1, 1, &Metrics::new()).unwrap();
        // SAFETY: plain syscalls on the calling (hashing) thread.
        let nice = hasher
            .run("test", |_| unsafe {
                libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t)
            })
            .await
            .unwrap();
        assert_eq!(nice, 19);
    }

    #[tokio::test]
    async fn a_job_whose_caller_gave_up_is_skipped() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let hasher = PasswordHasher::new(1, 8, &Metrics::new()).unwrap();
        // The one worker is held until released.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let first = tokio::spawn({
            let hasher = hasher.clone();
            async move { hasher.run("test", move |_| held.recv().ok()).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        // Queued behind it, then abandoned.
        let ran = Arc::new(AtomicBool::new(false));
        let abandoned = hasher.run("test", {
            let ran = ran.clone();
            move |_| ran.store(true, Ordering::SeqCst)
        });
        let _ = tokio::time::timeout(std::time::Duration::from_millis(50), abandoned).await;
        release.send(()).unwrap();
        first.await.unwrap().unwrap();
        // A job queued after it runs, so the abandoned one has had its turn.
        hasher.run("test", |_| ()).await.unwrap();
        assert!(!ran.load(Ordering::SeqCst), "the abandoned job ran");
    }

    #[tokio::test]
    async fn hash_then_verify() {
        let hasher = PasswordHasher::new(1, 8, &Metrics::new()).unwrap();
        let phc = hasher
            .hash(Password::new("correct horse".into()))
            .await
            .unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(
            hasher
                .verify(Password::new("correct horse".into()), Some(phc.clone()))
                .await
                .unwrap()
        );
        assert!(
            !hasher
                .verify(Password::new("wrong horse".into()), Some(phc))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn hashes_made_elsewhere_or_with_other_parameters_verify() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let hasher = PasswordHasher::new(1, 8, &Metrics::new()).unwrap();
        let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
        let older = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8192, 3, 1, None).unwrap(),
        )
        .hash_password(b"old password", &salt)
        .unwrap()
        .to_string();
        assert!(
            hasher
                .verify(Password::new("old password".into()), Some(older.clone()))
                .await
                .unwrap()
        );
        assert!(
            !hasher
                .verify(Password::new("old passworD".into()), Some(older))
                .await
                .unwrap()
        );
        // And ours verify with the crate's own verifier.
        let ours = hasher
            .hash(Password::new("new password".into()))
            .await
            .unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(argon2id().verify_password(b"new password", &parsed).is_ok());
        assert!(
            !hasher
                .verify(
                    Password::new("new password".into()),
                    Some("$argon2id$garbage".into())
                )
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn unknown_user_never_verifies() {
        let hasher = PasswordHasher::new(1, 8, &Metrics::new()).unwrap();
        assert!(
            !hasher
                .verify(Password::new("anything".into()), None)
                .await
                .unwrap()
        );
    }
}

#[cfg(test)]
mod queue_tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn past_the_queue_limit_work_is_refused_not_queued() {
        let hasher = PasswordHasher::new(1, 1, &Metrics::new()).unwrap();
        let attempts = (0..6).map(|_| {
            let hasher = hasher.clone();
            tokio::spawn(async move { hasher.verify(Password::new("x".repeat(10)), None).await })
        });
        let outcomes = futures_util::future::join_all(attempts).await;
        let busy = outcomes
            .iter()
            .filter(|o| matches!(o, Ok(Err(PasswordError::Busy))))
            .count();
        let done = outcomes
            .iter()
            .filter(|o| matches!(o, Ok(Ok(false))))
            .count();
        assert_eq!(busy + done, 6);
        assert!(busy >= 1 && done >= 2, "busy {busy}, done {done}");
    }
}
