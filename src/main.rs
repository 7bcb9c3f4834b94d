//! The `mailmig` command line: parse, call a library, print.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "mailmig",
    version,
    about = "Rehearse and verify mailbox migrations into Exchange Online",
    after_help = "Exit codes: 0 success, 1 failure, 2 usage error."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The in-process fake IMAP server, run standalone.
    #[command(name = "fake-imap")]
    FakeImap {
        #[command(subcommand)]
        command: FakeImapCommand,
    },
    /// The fake Exchange Online tenant, served over HTTP.
    #[command(name = "fake-target")]
    FakeTarget {
        #[command(subcommand)]
        command: FakeTargetCommand,
    },
}

#[derive(Subcommand)]
enum FakeTargetCommand {
    /// Serve the tenant's HTTP API on 127.0.0.1 until SIGINT or SIGTERM. Prints
    /// `URL=http://127.0.0.1:PORT` and `TOKEN=...` (generated when the config has none).
    Serve {
        /// Tenant configuration (TOML; see fake-target/README.md).
        #[arg(long)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum FakeImapCommand {
    /// Serve on 127.0.0.1 until SIGINT or SIGTERM. Prints `IMAP=127.0.0.1:PORT`,
    /// `IMAPS=127.0.0.1:PORT` (with implicit TLS) and `CA=PATH` (the CA certificate, PEM).
    Serve {
        /// Server configuration (TOML; see fake-imap/README.md).
        #[arg(long)]
        config: PathBuf,
        /// Where to write the CA certificate (default: a file in the temp folder, removed on
        /// exit).
        #[arg(long)]
        ca_file: Option<PathBuf>,
    },
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("MAILMIG_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    match cli.command {
        Command::FakeImap {
            command: FakeImapCommand::Serve { config, ca_file },
        } => fake_imap_serve(config, ca_file).await,
        Command::FakeTarget {
            command: FakeTargetCommand::Serve { config },
        } => fake_target_serve(config).await,
    }
}

async fn fake_target_serve(config: PathBuf) -> anyhow::Result<std::process::ExitCode> {
    let config = fake_target::TenantConfig::from_file(&config)?;
    let tenant =
        fake_target::Tenant::from_config(&config, std::sync::Arc::new(fake_target::SystemClock))?;
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
    Ok(std::process::ExitCode::SUCCESS)
}

async fn fake_imap_serve(
    config: PathBuf,
    ca_file: Option<PathBuf>,
) -> anyhow::Result<std::process::ExitCode> {
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
    Ok(std::process::ExitCode::SUCCESS)
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}
