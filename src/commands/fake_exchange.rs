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
        /// Read commands that change the organisation while it runs from standard input, one
        /// per line, each answered with one `OK ...` or `ERROR ...` line (`help` lists them;
        /// see fake-exchange/README.md). End of input does not stop the server.
        #[arg(long)]
        control: bool,
    },
}

pub async fn run(command: FakeExchangeCommand) -> anyhow::Result<u8> {
    let FakeExchangeCommand::Serve {
        config,
        ca_file,
        control,
    } = command;
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
    if control {
        let org = exchange.org().clone();
        // A blocking reader of its own: stdin has no async face worth having here.
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                let answer = fake_exchange::control::apply(&org, &line);
                let mut out = std::io::stdout().lock();
                if writeln!(out, "{answer}").and_then(|_| out.flush()).is_err() {
                    break;
                }
            }
        });
    }
    wait_for_signal().await?;
    drop(exchange);
    if remove_ca {
        let _ = std::fs::remove_file(&ca_path);
    }
    Ok(EXIT_OK)
}
