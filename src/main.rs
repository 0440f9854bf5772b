//! The `tenant-jwt` binary: parse the command line, run it.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = tenant_jwt::cli::Cli::parse();
    let _log_writer = tenant_jwt::telemetry::init(cli.settings.log_format)?;
    tenant_jwt::cli::run(cli).await
}
