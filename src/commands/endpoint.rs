//! `mailmig endpoint`: migration endpoints (New-, Get-, Set-, Remove-MigrationEndpoint).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use engine::control::endpoint::{
    DEFAULT_MAX_CONCURRENT_INCREMENTAL_SYNCS, DEFAULT_MAX_CONCURRENT_MIGRATIONS, Endpoint,
};
use engine::source::SourceSettings;
use engine::test_server::{DEFAULT_TIMEOUT, TestResult, test_server};

use super::test_server::ImapServerArgs;
use super::{AuthenticationArg, EXIT_FAILED, EXIT_OK, SecurityArg, engine, engine_creating};

#[derive(Subcommand, Debug)]
pub enum EndpointCommand {
    /// New-MigrationEndpoint -IMAP: verified with Test-MigrationServerAvailability first
    /// unless --skip-verification.
    New(NewArgs),
    /// Get-MigrationEndpoint: one endpoint, or all.
    Get {
        /// The endpoint's name (all endpoints without it).
        name: Option<String>,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Set-MigrationEndpoint: changes the given settings only.
    Set(SetArgs),
    /// Remove-MigrationEndpoint (refused while a batch uses it).
    Remove {
        /// The endpoint's name.
        name: String,
    },
}

#[derive(Args, Debug)]
pub struct NewArgs {
    #[command(flatten)]
    pub server: ImapServerArgs,
    /// The endpoint's name, as batches refer to it.
    #[arg(long)]
    pub name: String,
    /// Users synced at once from this endpoint (1 to 100).
    #[arg(long, default_value_t = DEFAULT_MAX_CONCURRENT_MIGRATIONS)]
    pub max_concurrent_migrations: u32,
    /// Incremental syncs at once (at most --max-concurrent-migrations; default 10, or
    /// --max-concurrent-migrations when that is lower).
    #[arg(long)]
    pub max_concurrent_incremental_syncs: Option<u32>,
    /// How users log in to the source.
    #[arg(long, value_enum, ignore_case = true, default_value = "basic")]
    pub authentication: AuthenticationArg,
    /// The source's master-user separator.
    #[arg(long, default_value_t = '*')]
    pub master_separator: char,
    /// Create the endpoint without testing the connection first.
    #[arg(long)]
    pub skip_verification: bool,
}

#[derive(Args, Debug)]
pub struct SetArgs {
    /// The endpoint's name.
    pub name: String,
    /// A new host name.
    #[arg(long)]
    pub remote_server: Option<String>,
    /// A new port.
    #[arg(long)]
    pub port: Option<u16>,
    /// A new connection security.
    #[arg(long, value_enum, ignore_case = true)]
    pub security: Option<SecurityArg>,
    /// A PEM file of CA certificates to trust.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Whether to go on when the certificate cannot be verified.
    #[arg(long)]
    pub accept_untrusted_certificates: Option<bool>,
    /// Users synced at once (1 to 100).
    #[arg(long)]
    pub max_concurrent_migrations: Option<u32>,
    /// Incremental syncs at once.
    #[arg(long)]
    pub max_concurrent_incremental_syncs: Option<u32>,
}

pub async fn run(state_dir: &Path, command: EndpointCommand) -> anyhow::Result<u8> {
    match command {
        EndpointCommand::New(args) => new(state_dir, args).await,
        EndpointCommand::Get { name, json } => get(state_dir, name, json),
        EndpointCommand::Set(args) => set(state_dir, args),
        EndpointCommand::Remove { name } => {
            engine(state_dir)?.endpoint_remove(&name)?;
            println!("Removed the migration endpoint \"{name}\".");
            Ok(EXIT_OK)
        }
    }
}

async fn new(state_dir: &Path, args: NewArgs) -> anyhow::Result<u8> {
    let mut settings = args.server.settings();
    settings.authentication = args.authentication.into();
    settings.master_separator = args.master_separator;
    let mut e = Endpoint::new(&args.name, SourceSettings::Imap(settings.clone()));
    e.max_concurrent_migrations = args.max_concurrent_migrations;
    e.max_concurrent_incremental_syncs = args
        .max_concurrent_incremental_syncs
        .unwrap_or(DEFAULT_MAX_CONCURRENT_INCREMENTAL_SYNCS.min(args.max_concurrent_migrations));
    e.validate().map_err(flag_names)?;
    if !args.skip_verification {
        let r = test_server(&settings, None, DEFAULT_TIMEOUT).await;
        if r.result == TestResult::Failed {
            eprintln!("The endpoint was not created: {}", r.message);
            if let Some(d) = r.error_detail {
                eprintln!("ErrorDetail: {d}");
            }
            return Ok(EXIT_FAILED);
        }
    }
    // The state is created only once there is something to keep.
    engine_creating(state_dir)?.endpoint_new(e)?;
    println!("Created the migration endpoint \"{}\".", args.name);
    Ok(EXIT_OK)
}

fn get(state_dir: &Path, name: Option<String>, json: bool) -> anyhow::Result<u8> {
    let engine = engine(state_dir)?;
    let list = match name {
        Some(n) => vec![engine.endpoint(&n)?],
        None => engine.endpoints()?,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(EXIT_OK);
    }
    if list.is_empty() {
        println!("No migration endpoints.");
        return Ok(EXIT_OK);
    }
    println!(
        "{:<16} {:<6} {:<24} {:<6} {:<8} {:<6} MaxIncremental",
        "Name", "Type", "RemoteServer", "Port", "Security", "Max"
    );
    for e in list {
        let (port, security) = match &e.connection {
            SourceSettings::Imap(s) => (s.port.to_string(), s.security.to_string()),
        };
        println!(
            "{:<16} {:<6} {:<24} {:<6} {:<8} {:<6} {}",
            e.name,
            e.endpoint_type(),
            e.remote_server(),
            port,
            security,
            e.max_concurrent_migrations,
            e.max_concurrent_incremental_syncs
        );
    }
    Ok(EXIT_OK)
}

fn set(state_dir: &Path, c: SetArgs) -> anyhow::Result<u8> {
    let engine = engine(state_dir)?;
    let mut e = engine.endpoint(&c.name)?;
    let SourceSettings::Imap(s) = &mut e.connection;
    if let Some(v) = c.remote_server {
        s.remote_server = v;
    }
    if let Some(v) = c.port {
        s.port = v;
    }
    if let Some(v) = c.security {
        s.security = v.into();
    }
    if let Some(v) = c.ca_file {
        s.ca_file = Some(v);
    }
    if let Some(v) = c.accept_untrusted_certificates {
        s.accept_untrusted_certificates = v;
    }
    if let Some(v) = c.max_concurrent_migrations {
        e.max_concurrent_migrations = v;
    }
    if let Some(v) = c.max_concurrent_incremental_syncs {
        e.max_concurrent_incremental_syncs = v;
    }
    engine.endpoint_set(e).map_err(flag_names)?;
    println!("Updated the migration endpoint \"{}\".", c.name);
    Ok(EXIT_OK)
}

/// The engine speaks Exchange's parameter names; here they are this command's flags.
fn flag_names(e: engine::Error) -> anyhow::Error {
    let text = e
        .to_string()
        .replace(
            "MaxConcurrentIncrementalSyncs",
            "--max-concurrent-incremental-syncs",
        )
        .replace("MaxConcurrentMigrations", "--max-concurrent-migrations");
    anyhow::anyhow!(text)
}
