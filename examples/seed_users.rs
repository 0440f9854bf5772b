//! Seeds N users into tenant `bench` and writes one access token per user to
//! a file, for the cold-cache benchmark.
//! `cargo run --release --example seed_users -- N TOKENS_FILE`
//!
//! Reads the same environment as the service (DATABASE_URL,
//! TENANT_JWT_MASTER_KEY, TENANT_JWT_ISSUER, ...). Users are inserted in
//! batches with one shared password hash (hashing 100k passwords would take
//! most of an hour and is not what is measured); each gets a secret of its
//! own, sealed under the master key, exactly as the service stores it.

use std::io::Write;
use std::sync::Arc;

use argon2::PasswordHasher as _;
use argon2::password_hash::SaltString;
use clap::Parser;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use tenant_jwt::cli::Cli;
use tenant_jwt::db::{self, schema};
use tenant_jwt::domain::keys::secrets::UserSecret;
use tenant_jwt::domain::tokens::claims::Issuer;
use tenant_jwt::domain::tokens::key_records::{KeyRecord, SealedGeneration};
use tenant_jwt::services::open_master_key;
use tenant_jwt::types::ids::{Generation, Role, SessionId, TenantSlug, UserId, Username};

const BATCH: usize = 1_000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let count: usize = args.next().expect("N").parse()?;
    let path = args.next().expect("TOKENS_FILE");
    let settings = Cli::parse_from(["tenant-jwt"]).settings.into_settings()?;
    let pool = db::prepare_pool(&settings.database).await?;
    let master_key = Arc::new(open_master_key(&settings.master_key, &pool).await?);
    let issuer = Issuer::new(settings.tokens.clone(), master_key.clone());
    // One connection of its own for the long bulk load (the pool bounds each use).
    let mut conn = AsyncPgConnection::establish(settings.database.url.as_str()).await?;
    let tenant = db::tenants::find_by_slug(&mut conn, &TenantSlug::parse("bench")?)
        .await?
        .expect("tenant `bench` exists");
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    let password_hash = tenant_jwt::domain::accounts::hashing::argon2id()
        .hash_password(b"bench-password-1", &salt)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .to_string();
    let run = uuid::Uuid::new_v4().simple().to_string();
    let generation = Generation::from_db(1);
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path)?);

    for start in (0..count).step_by(BATCH) {
        let mut users = Vec::new();
        for n in start..(start + BATCH).min(count) {
            let id = UserId::generate();
            let sealed = master_key.seal(id, generation, &UserSecret::generate()?)?;
            users.push((
                id,
                Username::parse(&format!("cold-{}-{n}", &run[..8]))?,
                sealed,
            ));
        }
        // One transaction: the database insists every user has a current secret.
        conn.transaction(async |conn| {
            diesel::insert_into(schema::users::table)
                .values(
                    users
                        .iter()
                        .map(|(id, name, _)| db::users::NewUser {
                            id: *id,
                            tenant_id: tenant.id,
                            username: name,
                            password_hash: &password_hash,
                            role: Role::Member,
                        })
                        .collect::<Vec<_>>(),
                )
                .execute(conn)
                .await?;
            diesel::insert_into(schema::user_secrets::table)
                .values(
                    users
                        .iter()
                        .map(|(id, _, sealed)| db::secrets::NewSecret {
                            user_id: *id,
                            generation,
                            ciphertext: sealed,
                        })
                        .collect::<Vec<_>>(),
                )
                .execute(conn)
                .await?;
            Ok::<_, diesel::result::Error>(())
        })
        .await?;
        for (id, name, sealed) in users {
            let record = KeyRecord {
                version: 1,
                user_id: id,
                tenant_id: tenant.id,
                tenant_slug: tenant.slug.clone(),
                username: name,
                role: Role::Member,
                disabled: false,
                generations: [SealedGeneration::new(generation, sealed, None)].into(),
                revoked_sessions: Vec::new(),
            };
            let token = issuer.issue(&record, SessionId::generate())?;
            writeln!(out, "{}", token.access_token)?;
        }
    }
    out.flush()?;
    eprintln!("seeded {count} users into tenant bench; tokens in {path}");
    Ok(())
}
