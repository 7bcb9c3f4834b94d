//! `mailmig fake-imap serve`: the fake IMAP server, standalone.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use super::{EXIT_OK, wait_for_signal};

#[derive(Subcommand, Debug)]
pub enum FakeImapCommand {
    /// Serve on 127.0.0.1 until SIGINT or SIGTERM. Prints `IMAP=127.0.0.1:PORT`,
    /// `IMAPS=127.0.0.1:PORT` (with implicit TLS) and `CA=PATH` (the CA certificate, PEM).
    Serve {
        /// Server configuration (TOML; see fake-imap/README.md).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Where to write the CA certificate (default: a file in the temp folder, removed on
        /// exit).
        #[arg(long, value_name = "FILE")]
        ca_file: Option<PathBuf>,
    },
}

pub async fn run(command: FakeImapCommand) -> anyhow::Result<u8> {
    let FakeImapCommand::Serve { config, ca_file } = command;
    let config = fake_imap::Config::from_file(&config)?;
    let server = fake_imap::FakeImapServer::from_config(config)
        .start()
        .await
        .context("starting the fake IMAP server")?;
    let (ca_path, remove_ca) = match ca_file {
        Some(p) => (p, false),
        None => (
            std::env::temp_dir().join(format!("fake-imap-{}-ca.pem", std::process::id())),
            true,
        ),
    };
    std::fs::write(&ca_path, server.ca_pem())
        .with_context(|| format!("writing the CA certificate to {}", ca_path.display()))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "IMAP={}", server.imap_addr())?;
    if let Some(addr) = server.imaps_addr() {
        writeln!(out, "IMAPS={addr}")?;
    }
    writeln!(out, "CA={}", ca_path.display())?;
    out.flush()?;
    drop(out);
    wait_for_signal().await?;
    drop(server);
    if remove_ca {
        let _ = std::fs::remove_file(&ca_path);
    }
    Ok(EXIT_OK)
}
