//! The command line: every setting is a flag and an environment variable, and
//! every command calls the same domain functions as the HTTP API.

mod database;
mod keys;
mod settings;

use std::io::{BufRead, IsTerminal};

use clap::{Parser, Subcommand};
use zeroize::Zeroizing;

use crate::config::Settings;
use crate::db;
use crate::domain::accounts::password::Password;
use crate::domain::accounts::users::{NewUser, UserPatch};
use crate::domain::admin::credentials::NewCredential;
use crate::domain::admin::{self, Admin};
use crate::domain::audit::AuditContext;
use crate::domain::page;
use crate::services::Services;
use crate::startup::Application;
use crate::types::ids::{CredentialId, CredentialName, Role, TenantName, TenantSlug, Username};
use crate::types::scopes::Scopes;
pub use settings::SettingsArgs;

#[derive(Debug, Parser)]
#[command(
    name = "tenant-jwt",
    version,
    about = "Per-user-secret JWT login service for multi-tenant SaaS backends"
)]
pub struct Cli {
    #[command(flatten)]
    pub settings: SettingsArgs,
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service (the default).
    Serve,
    /// Create the database if missing and apply pending migrations, then exit.
    Migrate,
    /// Manage tenants.
    #[command(subcommand)]
    Tenants(TenantsCommand),
    /// Manage users.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Master key rotation (TENANT_JWT_MASTER_KEY may list several keys, the
    /// sealing one first).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage stored service credentials (scoped keys for the SaaS
    /// backend's services).
    #[command(subcommand)]
    Credentials(CredentialsCommand),
}

#[derive(Debug, Subcommand)]
pub enum CredentialsCommand {
    /// Create a credential and print it with its key (shown this once).
    Create {
        /// What it is for.
        #[arg(long)]
        name: String,
        /// The tenant's slug; absent: the root level (every tenant).
        #[arg(long)]
        tenant: Option<String>,
        /// A scope to grant (repeat, or separate with commas): introspect,
        /// revoke, users:read, users:write, secrets:rotate, audit:read,
        /// credentials:write, roles:read, roles:write, tenants:write (root
        /// level only).
        #[arg(long = "scope", required = true, value_delimiter = ',')]
        scopes: Vec<String>,
        /// When it expires, from now (e.g. `90d`); absent: never.
        #[arg(long)]
        expires_in: Option<humantime::Duration>,
    },
    /// List live credentials (never their keys).
    List {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Revoke a credential: it fails on every instance within a second.
    Revoke {
        /// The credential's id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// How many stored secrets each listed key sealed, and which listed keys
    /// are no longer needed.
    Status,
    /// Re-seal every stored value under the first listed key, in batches,
    /// while instances keep serving; resumable.
    Rewrap,
}

#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    /// Create a tenant.
    Create {
        /// Lowercase a-z, 0-9 and '-', 1 to 63 characters.
        slug: String,
        #[arg(long)]
        name: String,
    },
    /// Incident response: give every user of the tenant a new secret, killing
    /// every token of the tenant.
    RotateSecrets {
        /// The tenant's slug.
        tenant: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user. The password is read from TENANT_JWT_USER_PASSWORD if
    /// set, else from standard input (never from a flag).
    Create {
        /// The tenant's slug.
        tenant: String,
        username: String,
        #[arg(long, default_value = "member", value_parser = ["member", "admin"])]
        role: String,
    },
    /// Give one user a new secret: every token they hold dies (after the grace
    /// period, if one is given).
    RotateSecret {
        tenant: String,
        username: String,
        /// How long tokens of the previous secret stay valid (at most 24h).
        #[arg(long, default_value = "0s")]
        grace: humantime::Duration,
    },
    /// Disable a user: they cannot log in and every token they hold dies.
    Disable { tenant: String, username: String },
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = cli.settings.into_settings()?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let starting = Application::bind(settings).await?;
            if let Some(app) = starting.connect().await? {
                app.run_until_stopped().await?
            }
        }
        Command::Migrate => db::prepare(&settings.database).await?,
        Command::Keys(KeysCommand::Status) => print_json(&keys::status(&settings).await?)?,
        Command::Keys(KeysCommand::Rewrap) => print_json(&keys::rewrap(&settings).await?)?,
        Command::Credentials(command) => credentials(&settings, command).await?,
        Command::Tenants(TenantsCommand::Create { slug, name }) => {
            let (slug, name) = (TenantSlug::parse(&slug)?, TenantName::parse(&name)?);
            let pool = db::prepare_pool(&settings.database).await?;
            let tenant = admin::create_tenant(&pool, slug, name).await?;
            print_json(&serde_json::json!({
                "id": tenant.id, "slug": tenant.slug, "name": tenant.name, "created_at": tenant.created_at,
            }))?;
        }
        Command::Tenants(TenantsCommand::RotateSecrets { tenant }) => {
            let rotated = operator(&settings)
                .await?
                .rotate_tenant_secrets(&AuditContext::OPERATOR, &tenant)
                .await?;
            print_json(&serde_json::json!({ "rotated": rotated }))?;
        }
        Command::Users(UsersCommand::Create {
            tenant,
            username,
            role,
        }) => {
            let new = NewUser {
                username: Username::parse(&username)?,
                role: Role::parse(&role)?,
                password: Password::parse_new(read_password()?.to_string())?,
            };
            let user = operator(&settings)
                .await?
                .create_user(&AuditContext::OPERATOR, &tenant, new)
                .await?;
            print_json(&serde_json::json!({
                "id": user.id, "username": user.username, "role": user.role,
                "disabled": user.disabled, "created_at": user.created_at,
            }))?;
        }
        Command::Users(UsersCommand::RotateSecret {
            tenant,
            username,
            grace,
        }) => {
            let admin = operator(&settings).await?;
            let user = admin
                .find_user_id(&AuditContext::OPERATOR, &tenant, &username)
                .await?;
            let rotation = admin
                .rotate_user_secret(&AuditContext::OPERATOR, &tenant, user, grace.into())
                .await?;
            print_json(&serde_json::json!({
                "user_id": rotation.user_id,
                "generation": rotation.generation,
                "previous_generation_valid_until": rotation.previous_generation_valid_until,
            }))?;
        }
        Command::Users(UsersCommand::Disable { tenant, username }) => {
            let admin = operator(&settings).await?;
            let user = admin
                .find_user_id(&AuditContext::OPERATOR, &tenant, &username)
                .await?;
            let patch = UserPatch {
                disabled: Some(true),
                ..UserPatch::default()
            };
            let user = admin
                .update_user(&AuditContext::OPERATOR, &tenant, user, patch)
                .await?;
            print_json(
                &serde_json::json!({ "id": user.id, "username": user.username, "disabled": user.disabled }),
            )?;
        }
    }
    Ok(())
}

async fn credentials(settings: &Settings, command: CredentialsCommand) -> anyhow::Result<()> {
    let admin = operator(settings).await?;
    let ctx = &AuditContext::OPERATOR;
    match command {
        CredentialsCommand::Create {
            name,
            tenant,
            scopes,
            expires_in,
        } => {
            let new = NewCredential {
                name: CredentialName::parse(&name)?,
                scopes: Scopes::parse(&scopes)?,
                expires_in: expires_in.map(|d| d.as_secs()),
            };
            let created = admin.create_credential(ctx, tenant.as_deref(), new).await?;
            let mut out = serde_json::to_value(&created.credential)?;
            out["key"] = created.key.expose().into();
            print_json(&out)?;
        }
        CredentialsCommand::List { tenant } => {
            let mut all = Vec::new();
            let mut after = None;
            loop {
                let page = admin
                    .credentials(ctx, tenant.as_deref(), after, Some(page::MAX_PAGE))
                    .await?;
                all.extend(page.items);
                match page.next_after {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
            print_json(&serde_json::json!({ "credentials": all }))?;
        }
        CredentialsCommand::Revoke { id } => {
            admin
                .revoke_credential(ctx, None, CredentialId::parse(&id)?)
                .await?;
            print_json(&serde_json::json!({ "revoked": id }))?;
        }
    }
    Ok(())
}

/// The administration functions, wired as `serve` wires them; they act as
/// the operator (`cli` in the audit log).
async fn operator(settings: &Settings) -> anyhow::Result<Admin> {
    Ok(Services::for_command(settings).await?.admin)
}

fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// The new user's password: `TENANT_JWT_USER_PASSWORD`, else one line of
/// standard input (without echo on a terminal).
fn read_password() -> anyhow::Result<Zeroizing<String>> {
    if let Ok(password) = std::env::var("TENANT_JWT_USER_PASSWORD") {
        return Ok(Zeroizing::new(password));
    }
    if std::io::stdin().is_terminal() {
        return Ok(Zeroizing::new(rpassword::prompt_password("Password: ")?));
    }
    let mut line = Zeroizing::new(String::new());
    std::io::stdin().lock().read_line(&mut line)?;
    let trimmed = line.trim_end_matches(['\r', '\n']).to_owned();
    Ok(Zeroizing::new(trimmed))
}
