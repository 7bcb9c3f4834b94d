//! The `mailmig` command line: parse, call a library, print.

mod admin;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use engine::endpoint::{
    DEFAULT_MAX_CONCURRENT_INCREMENTAL_SYNCS, DEFAULT_MAX_CONCURRENT_MIGRATIONS, Endpoint,
};
use engine::state::BatchSettings;

#[derive(Parser)]
#[command(
    name = "mailmig",
    version,
    about = "Rehearse and verify mailbox migrations into Exchange Online",
    after_help = "Exit codes:\n  0  success (test-server: Success or Warning)\n  1  failure: refused, \
                  rejected, unreachable (test-server: Failed; csv check: file rejected;\n     \
                  scenario run: a scenario failed)\n  \
                  2  usage error\n  3  csv check: some rows have errors"
)]
struct Cli {
    /// Where mailmig keeps its state (endpoints, batches, users, passwords: keep it private).
    #[arg(
        long,
        global = true,
        env = "MAILMIG_STATE_DIR",
        default_value = ".mailmig"
    )]
    state_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Test-MigrationServerAvailability: connect, TLS, CAPABILITY, and a login if given.
    TestServer {
        #[command(flatten)]
        server: ServerArgs,
        /// The user name as in the CSV (any admin form).
        #[arg(long, requires = "password")]
        username: Option<String>,
        #[arg(long, requires = "username")]
        password: Option<String>,
        /// Seconds before giving up (Exchange: 15).
        #[arg(long, default_value_t = 15)]
        timeout: u64,
        #[arg(long)]
        json: bool,
    },
    /// The migration CSV.
    Csv {
        #[command(subcommand)]
        command: CsvCommand,
    },
    /// The tenant the batches write to.
    Target {
        #[command(subcommand)]
        command: TargetCommand,
    },
    /// Migration endpoints (the source servers).
    Endpoint {
        #[command(subcommand)]
        command: EndpointCommand,
    },
    /// Migration batches.
    Batch {
        #[command(subcommand)]
        command: BatchCommand,
    },
    /// Migration users (Get-MigrationUser).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// The migration service: processes batches and schedules incremental syncs.
    Run {
        /// Exit once no batch has work left now.
        #[arg(long)]
        until_idle: bool,
    },
    /// Scenario files: a migration situation run in-process, checked against expectations.
    Scenario {
        #[command(subcommand)]
        command: ScenarioCommand,
    },
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

#[derive(Args)]
struct ServerArgs {
    /// An IMAP server (the only kind for now).
    #[arg(long, required = true)]
    imap: bool,
    #[arg(long)]
    remote_server: String,
    #[arg(long)]
    port: u16,
    /// none | ssl (implicit TLS) | tls (STARTTLS)
    #[arg(long)]
    security: String,
    /// PEM file of a private CA to trust.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    #[arg(long)]
    accept_untrusted_certificates: bool,
}

#[derive(Subcommand)]
enum CsvCommand {
    /// Validates a CSV: exit 0 when every row is valid, 1 when the file is rejected, 3 when
    /// some rows have errors.
    Check {
        file: PathBuf,
        #[arg(long)]
        allow_unknown_columns: bool,
        /// The source's master-user separator (for recognising Dovecot forms).
        #[arg(long, default_value_t = '*')]
        master_separator: char,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum TargetCommand {
    /// Sets the target: the embedded on-disk tenant (optionally seeded from a tenant TOML), a
    /// fake tenant over HTTP, or any IMAP server (IMAP to IMAP).
    Set {
        #[arg(long, conflicts_with_all = ["fake_target", "token", "imap"])]
        embedded: bool,
        /// An IMAP server as the target.
        #[arg(long, requires_all = ["remote_server", "port", "security", "username_format", "password"])]
        imap: bool,
        #[arg(long)]
        remote_server: Option<String>,
        #[arg(long)]
        port: Option<u16>,
        #[arg(long)]
        security: Option<String>,
        #[arg(long)]
        ca_file: Option<PathBuf>,
        /// The target login from the CSV's EmailAddress: {email}, {local}, {domain}.
        #[arg(long)]
        username_format: Option<String>,
        #[arg(long)]
        password: Option<String>,
        /// Tenant TOML (accepted domains, mailboxes) for the embedded tenant.
        #[arg(long, requires = "embedded")]
        config: Option<PathBuf>,
        #[arg(long, requires = "token")]
        fake_target: Option<String>,
        #[arg(long, requires = "fake_target")]
        token: Option<String>,
    },
    Get {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum EndpointCommand {
    /// New-MigrationEndpoint -IMAP (verified unless --skip-verification).
    New {
        #[command(flatten)]
        server: ServerArgs,
        #[arg(long)]
        name: String,
        #[arg(long, default_value_t = DEFAULT_MAX_CONCURRENT_MIGRATIONS)]
        max_concurrent_migrations: u32,
        #[arg(long, default_value_t = DEFAULT_MAX_CONCURRENT_INCREMENTAL_SYNCS)]
        max_concurrent_incremental_syncs: u32,
        /// basic (LOGIN with the CSV's UserName) | plain (AUTHENTICATE PLAIN; `user<SEP>admin`
        /// becomes authzid = user, authcid = admin).
        #[arg(long, default_value = "basic")]
        authentication: String,
        /// The source's master-user separator.
        #[arg(long, default_value_t = '*')]
        master_separator: char,
        #[arg(long)]
        skip_verification: bool,
    },
    Get {
        name: Option<String>,
        #[arg(long)]
        json: bool,
    },
    Set {
        name: String,
        #[arg(long)]
        remote_server: Option<String>,
        #[arg(long)]
        port: Option<u16>,
        #[arg(long)]
        security: Option<String>,
        #[arg(long)]
        ca_file: Option<PathBuf>,
        #[arg(long)]
        accept_untrusted_certificates: Option<bool>,
        #[arg(long)]
        max_concurrent_migrations: Option<u32>,
        #[arg(long)]
        max_concurrent_incremental_syncs: Option<u32>,
    },
    Remove {
        name: String,
    },
}

fn list(s: &Option<String>) -> Vec<String> {
    s.as_deref()
        .map(|s| {
            s.split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

fn time(s: &Option<String>, flag: &str) -> anyhow::Result<Option<chrono::DateTime<chrono::Utc>>> {
    s.as_deref()
        .map(|t| {
            chrono::DateTime::parse_from_rfc3339(t)
                .map(|d| d.to_utc())
                .with_context(|| format!("{flag}: {t:?} is not an RFC 3339 time"))
        })
        .transpose()
}

#[derive(Subcommand)]
enum BatchCommand {
    /// New-MigrationBatch.
    New {
        #[arg(long)]
        name: String,
        #[arg(long)]
        source_endpoint: String,
        #[arg(long)]
        csv: PathBuf,
        #[arg(long)]
        autostart: bool,
        /// Comma-separated; `Folder/*` for a subtree, `#Inbox#/*` for well-known folders.
        #[arg(long)]
        exclude_folders: Option<String>,
        #[arg(long)]
        include_folders: Option<String>,
        /// RFC 3339 time.
        #[arg(long)]
        start_after: Option<String>,
        /// RFC 3339 time.
        #[arg(long)]
        complete_after: Option<String>,
        #[arg(long)]
        allow_unknown_columns: bool,
    },
    Start {
        name: String,
    },
    Stop {
        name: String,
    },
    Complete {
        name: String,
    },
    Remove {
        name: String,
    },
    /// Set-MigrationBatch.
    Set {
        name: String,
        #[arg(long)]
        sync_now: bool,
        #[arg(long)]
        add_users: Option<PathBuf>,
        #[arg(long)]
        exclude_folders: Option<String>,
        #[arg(long)]
        include_folders: Option<String>,
        #[arg(long)]
        complete_after: Option<String>,
    },
    Get {
        name: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    Get {
        #[arg(long)]
        batch: Option<String>,
        email: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ScenarioCommand {
    /// Runs scenario files (folders: every *.toml in them). Exit 0 iff all pass.
    Run {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Seeds every scenario (overrides the files' own seeds).
        #[arg(long)]
        seed: Option<u64>,
        /// Writes JUnit XML here.
        #[arg(long)]
        junit: Option<PathBuf>,
        /// Writes the outcomes as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
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

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("MAILMIG_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(admin::EXIT_FAILED);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(admin::EXIT_FAILED)
        }
    }
}

fn endpoint_from(server: &ServerArgs, name: &str) -> anyhow::Result<Endpoint> {
    let mut e = Endpoint::new(
        name,
        &server.remote_server,
        server.port,
        admin::parse_security(&server.security)?,
    );
    e.ca_file = server.ca_file.clone();
    e.accept_untrusted_certificates = server.accept_untrusted_certificates;
    Ok(e)
}

async fn run(cli: Cli) -> anyhow::Result<u8> {
    let dir = cli.state_dir;
    match cli.command {
        Command::TestServer {
            server,
            username,
            password,
            timeout,
            json,
        } => {
            admin::test_server_cmd(
                endpoint_from(&server, "test")?,
                username.zip(password),
                Duration::from_secs(timeout),
                json,
            )
            .await
        }
        Command::Csv {
            command:
                CsvCommand::Check {
                    file,
                    allow_unknown_columns,
                    master_separator,
                    json,
                },
        } => admin::csv_check(&file, allow_unknown_columns, master_separator, json),
        Command::Target { command } => match command {
            TargetCommand::Set {
                embedded,
                imap,
                remote_server,
                port,
                security,
                ca_file,
                username_format,
                password,
                config,
                fake_target,
                token,
            } => {
                let imap = if imap {
                    Some(engine::imap_target::ImapTargetConfig {
                        remote_server: remote_server.unwrap_or_default(),
                        port: port.unwrap_or(143),
                        security: admin::parse_security(security.as_deref().unwrap_or("none"))?,
                        ca_file,
                        username_format: username_format.unwrap_or_default(),
                        password: password.unwrap_or_default(),
                    })
                } else {
                    None
                };
                admin::target_set(&dir, embedded, config, fake_target, token, imap)
            }
            TargetCommand::Get { json } => admin::target_get(&dir, json),
        },
        Command::Endpoint { command } => match command {
            EndpointCommand::New {
                server,
                name,
                max_concurrent_migrations,
                max_concurrent_incremental_syncs,
                authentication,
                master_separator,
                skip_verification,
            } => {
                let mut e = endpoint_from(&server, &name)?;
                e.authentication = engine::endpoint::Authentication::parse(&authentication)
                    .with_context(|| {
                        format!("--authentication: {authentication:?} is not basic or plain")
                    })?;
                e.master_separator = master_separator;
                e.max_concurrent_migrations = max_concurrent_migrations;
                e.max_concurrent_incremental_syncs = max_concurrent_incremental_syncs;
                admin::endpoint_new(&dir, e, skip_verification).await
            }
            EndpointCommand::Get { name, json } => admin::endpoint_get(&dir, name, json),
            EndpointCommand::Set {
                name,
                remote_server,
                port,
                security,
                ca_file,
                accept_untrusted_certificates,
                max_concurrent_migrations,
                max_concurrent_incremental_syncs,
            } => admin::endpoint_set(
                &dir,
                &name,
                admin::EndpointChanges {
                    remote_server,
                    port,
                    security: security.as_deref().map(admin::parse_security).transpose()?,
                    ca_file,
                    accept_untrusted_certificates,
                    max_concurrent_migrations,
                    max_concurrent_incremental_syncs,
                },
            ),
            EndpointCommand::Remove { name } => admin::endpoint_remove(&dir, &name),
        },
        Command::Batch { command } => match command {
            BatchCommand::New {
                name,
                source_endpoint,
                csv,
                autostart,
                exclude_folders,
                include_folders,
                start_after,
                complete_after,
                allow_unknown_columns,
            } => {
                let settings = BatchSettings {
                    exclude_folders: list(&exclude_folders),
                    include_folders: list(&include_folders),
                    start_after: time(&start_after, "--start-after")?,
                    complete_after: time(&complete_after, "--complete-after")?,
                    allow_unknown_columns,
                };
                admin::batch_new(&dir, name, source_endpoint, csv, autostart, settings).await
            }
            BatchCommand::Start { name } => admin::batch_op(&dir, "start", &name),
            BatchCommand::Stop { name } => admin::batch_op(&dir, "stop", &name),
            BatchCommand::Complete { name } => admin::batch_op(&dir, "complete", &name),
            BatchCommand::Remove { name } => admin::batch_op(&dir, "remove", &name),
            BatchCommand::Set {
                name,
                sync_now,
                add_users,
                exclude_folders,
                include_folders,
                complete_after,
            } => {
                let add_users = match add_users {
                    Some(p) => {
                        let bytes = std::fs::read(&p)
                            .with_context(|| format!("reading {}", p.display()))?;
                        Some((p, bytes))
                    }
                    None => None,
                };
                let set = engine::control::SetBatch {
                    sync_now,
                    add_users,
                    exclude_folders: exclude_folders.as_ref().map(|_| list(&exclude_folders)),
                    include_folders: include_folders.as_ref().map(|_| list(&include_folders)),
                    complete_after: time(&complete_after, "--complete-after")?,
                };
                admin::batch_set(&dir, &name, set).await
            }
            BatchCommand::Get { name, json } => admin::batch_get(&dir, name, json),
        },
        Command::User {
            command: UserCommand::Get { batch, email, json },
        } => admin::user_get(&dir, batch, email, json),
        Command::Run { until_idle } => admin::run(&dir, until_idle).await,
        Command::Scenario {
            command:
                ScenarioCommand::Run {
                    paths,
                    seed,
                    junit,
                    json,
                },
        } => scenario_run(paths, seed, junit, json).await,
        Command::FakeImap {
            command: FakeImapCommand::Serve { config, ca_file },
        } => fake_imap_serve(config, ca_file).await,
        Command::FakeTarget {
            command: FakeTargetCommand::Serve { config },
        } => fake_target_serve(config).await,
    }
}

async fn scenario_run(
    paths: Vec<PathBuf>,
    seed: Option<u64>,
    junit: Option<PathBuf>,
    json: Option<PathBuf>,
) -> anyhow::Result<u8> {
    let files = scenarios::collect(&paths).map_err(anyhow::Error::msg)?;
    let mut outcomes = Vec::new();
    for f in &files {
        let o = scenarios::run_file(f, seed).await;
        println!(
            "{:<6} {:>6.2}s  {}  ({})",
            if o.passed { "PASS" } else { "FAIL" },
            o.seconds,
            o.name,
            f.display()
        );
        if let Some(why) = &o.failure {
            for line in why.lines() {
                println!("         {line}");
            }
        }
        outcomes.push(o);
    }
    let failed = outcomes.iter().filter(|o| !o.passed).count();
    println!(
        "scenarios: {} passed, {failed} failed",
        outcomes.len() - failed
    );
    if let Some(path) = junit {
        std::fs::write(&path, scenarios::junit(&outcomes))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = json {
        std::fs::write(&path, serde_json::to_vec_pretty(&outcomes)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(if failed == 0 {
        admin::EXIT_OK
    } else {
        admin::EXIT_FAILED
    })
}

async fn fake_imap_serve(config: PathBuf, ca_file: Option<PathBuf>) -> anyhow::Result<u8> {
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
    Ok(admin::EXIT_OK)
}

async fn fake_target_serve(config: PathBuf) -> anyhow::Result<u8> {
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
    Ok(admin::EXIT_OK)
}

pub(crate) async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}
