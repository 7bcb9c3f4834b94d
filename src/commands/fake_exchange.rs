//! `mailmig fake-exchange serve`: the fake on-premises Exchange organisation, standalone.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use super::{EXIT_OK, wait_for_signal};

#[derive(Subcommand, Debug)]
pub enum FakeExchangeCommand {
    /// Serve on 127.0.0.1 until SIGINT or SIGTERM. Prints `AUTODISCOVER=https://127.0.0.1:PORT`,
    /// `EWS=https://127.0.0.1:PORT/EWS/Exchange.asmx`, `LDAP=ldap://127.0.0.1:PORT`,
    /// `LDAPS=ldaps://127.0.0.1:PORT`, `HTTP=http://127.0.0.1:PORT` (Autodiscover's redirect),
    /// `CA=PATH` and one `CONNECT_TO=HOST:PORT:127.0.0.1:PORT` per server name (curl's
    /// `--connect-to` form).
    Serve {
        /// Organisation configuration (TOML; see fake-exchange/README.md).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Where to write the CA certificate (default: a file in the temp folder, removed on
        /// exit).
        #[arg(long, value_name = "FILE")]
        ca_file: Option<PathBuf>,
    },
}

pub async fn run(command: FakeExchangeCommand) -> anyhow::Result<u8> {
    let FakeExchangeCommand::Serve { config, ca_file } = command;
    let config = fake_exchange::Config::from_file(&config)?;
    let exchange = fake_exchange::FakeExchange::start(config)
        .await
        .context("starting the fake Exchange organisation")?;
    let (ca_path, remove_ca) = match ca_file {
        Some(p) => (p, false),
        None => (
            std::env::temp_dir().join(format!("fake-exchange-{}-ca.pem", std::process::id())),
            true,
        ),
    };
    std::fs::write(&ca_path, exchange.ca_pem())
        .with_context(|| format!("writing the CA certificate to {}", ca_path.display()))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "AUTODISCOVER={}", exchange.autodiscover_url())?;
    writeln!(out, "EWS={}", exchange.ews_url())?;
    writeln!(out, "LDAP={}", exchange.ldap_url())?;
    if let Some(a) = exchange.ldaps_addr() {
        writeln!(out, "LDAPS=ldaps://{a}")?;
    }
    writeln!(out, "HTTP=http://{}", exchange.http_addr())?;
    writeln!(out, "CA={}", ca_path.display())?;
    for line in exchange.connect_to() {
        writeln!(out, "CONNECT_TO={line}")?;
    }
    out.flush()?;
    drop(out);
    wait_for_signal().await?;
    drop(exchange);
    if remove_ca {
        let _ = std::fs::remove_file(&ca_path);
    }
    Ok(EXIT_OK)
}
