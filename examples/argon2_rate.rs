//! The raw argon2id rate on this machine, with the service's parameters, one
//! thread per core: the ceiling login throughput is compared with.
//! `cargo run --release --example argon2_rate [seconds]`

use std::time::{Duration, Instant};

use argon2::PasswordHasher as _;
use argon2::password_hash::SaltString;

fn main() {
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let hashes: u64 = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let argon2 = tenant_jwt::domain::accounts::hashing::argon2id();
                    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
                    let mut done = 0u64;
                    while Instant::now() < deadline {
                        argon2
                            .hash_password(b"correct horse battery staple", &salt)
                            .expect("hash");
                        done += 1;
                    }
                    done
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("worker")).sum()
    });
    let rate = hashes as f64 / started.elapsed().as_secs_f64();
    println!("argon2id_hashes_per_second {rate:.1} threads {threads}");
}
