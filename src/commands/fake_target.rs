//! `mailmig fake-target serve`: the fake Exchange Online tenant, over HTTP.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;

use super::{EXIT_OK, wait_for_signal};

#[derive(Subcommand, Debug)]
pub enum FakeTargetCommand {
    /// Serve the tenant's HTTP API on 127.0.0.1 until SIGINT or SIGTERM. Prints
    /// `URL=http://127.0.0.1:PORT` and `TOKEN=...` (generated when the config has none).
    Serve {
        /// Tenant configuration (TOML; see fake-target/README.md).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
}

pub async fn run(command: FakeTargetCommand) -> anyhow::Result<u8> {
    let FakeTargetCommand::Serve { config } = command;
    let config = fake_target::TenantConfig::from_file(&config)?;
    let tenant = fake_target::Tenant::from_config(&config, Arc::new(fake_target::SystemClock))?;
    let token = config
        .tenant
        .token
        .clone()
        .unwrap_or_else(fake_target::http::generate_token);
    let server = fake_target::http::serve(tenant, token.clone())
        .await
        .context("starting the fake tenant's HTTP API")?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "URL={}", server.url())?;
    writeln!(out, "TOKEN={token}")?;
    out.flush()?;
    drop(out);
    wait_for_signal().await?;
    drop(server);
    Ok(EXIT_OK)
}
