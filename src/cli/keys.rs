//! `tenant-jwt keys status|rewrap`: master key rotation from the command line.

use std::io::{IsTerminal, Write};
use std::time::Instant;

use crate::config::Settings;
use crate::domain::keys::rewrap;
use crate::services::Stores;

/// What each listed key sealed, as JSON.
pub async fn status(settings: &Settings) -> anyhow::Result<serde_json::Value> {
    let stores = Stores::open(settings).await?;
    let status = rewrap::status(&stores.pool, &stores.master_key).await?;
    let retired = status.no_longer_needed();
    let listed: Vec<_> = status
        .listed
        .iter()
        .enumerate()
        .map(|(i, (id, secrets))| {
            serde_json::json!({
                "key_id": id.to_string(),
                "seals_new_values": i == 0,
                "secrets": secrets,
                "no_longer_needed": retired.contains(id),
            })
        })
        .collect();
    Ok(serde_json::json!({
        "listed": listed,
        "secrets_without_key_id": status.without_id,
        "check_value_key_id": status.check_value.map(|id| id.to_string()),
    }))
}

/// Re-seals everything under the first listed key, showing progress on
/// standard error (a bar on a terminal, a line per tenth otherwise), and
/// returns the summary as JSON.
pub async fn rewrap(settings: &Settings) -> anyhow::Result<serde_json::Value> {
    let stores = Stores::open(settings).await?;
    let started = Instant::now();
    let terminal = std::io::stderr().is_terminal();
    let mut shown_tenth = None;
    let done = rewrap::rewrap(&stores.pool, &stores.master_key, |done, total| {
        let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-3);
        let fraction = if total == 0 {
            1.0
        } else {
            done as f64 / total as f64
        };
        let mut err = std::io::stderr().lock();
        if terminal {
            let filled = (fraction * 30.0) as usize;
            let _ = write!(
                err,
                "\r[{}{}] {done}/{total} secrets, {rate:.0}/s ",
                "#".repeat(filled),
                " ".repeat(30 - filled.min(30))
            );
        } else {
            let tenth = (fraction * 10.0) as u32;
            if shown_tenth != Some(tenth) {
                shown_tenth = Some(tenth);
                let _ = writeln!(err, "rewrap: {done}/{total} secrets, {rate:.0}/s");
            }
        }
    })
    .await?;
    if terminal {
        eprintln!();
    }
    let seconds = started.elapsed().as_secs_f64();
    let status = rewrap::status(&stores.pool, &stores.master_key).await?;
    Ok(serde_json::json!({
        "sealing_key_id": stores.master_key.sealing_id().to_string(),
        "rewrapped": done.secrets,
        "seconds": (seconds * 100.0).round() / 100.0,
        "per_second": (done.secrets as f64 / seconds.max(1e-3)).round(),
        "check_value_resealed": done.check_value,
        "secrets_without_key_id": status.without_id,
        "no_longer_needed": status.no_longer_needed().iter().map(ToString::to_string).collect::<Vec<_>>(),
    }))
}
