//! `mailmig endpoint`: migration endpoints (New-, Get-, Set-, Remove-MigrationEndpoint).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{ArgGroup, Args, Subcommand};
use engine::control::endpoint::{
    DEFAULT_MAX_CONCURRENT_INCREMENTAL_SYNCS, DEFAULT_MAX_CONCURRENT_MIGRATIONS, Endpoint,
};
use engine::source::SourceSettings;
use engine::test_server::{DEFAULT_TIMEOUT, TestResult, test_server};

use engine::exchange::test::{ConnectionSettings, TestInput, test as test_exchange};

use super::test_server::{ExchangeArgs, ImapServerArgs, tenant_directory_sync};
use super::{
    AuthenticationArg, EXIT_FAILED, EXIT_OK, PasswordArgs, SecurityArg, engine, engine_creating,
};

#[derive(Subcommand, Debug)]
pub enum EndpointCommand {
    /// New-MigrationEndpoint -IMAP or -ExchangeOutlookAnywhere: verified with
    /// Test-MigrationServerAvailability first unless --skip-verification.
    New(Box<NewArgs>),
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
#[command(group(ArgGroup::new("endpoint_type").required(true).args(["imap", "exchange_outlook_anywhere"])))]
pub struct NewArgs {
    #[command(flatten)]
    pub server: ImapServerArgs,
    #[command(flatten)]
    pub exchange: ExchangeArgs,
    /// Exchange: the ConnectionSettings `test-server --exchange-outlook-anywhere --json` wrote
    /// (instead of --autodiscover or --exchange-server).
    #[arg(long, value_name = "FILE", requires = "exchange_outlook_anywhere")]
    pub connection_settings: Option<PathBuf>,
    /// Exchange: the admin account (default: --email-address).
    #[arg(long)]
    pub username: Option<String>,
    #[command(flatten)]
    pub password: PasswordArgs,
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
        EndpointCommand::New(args) => new(state_dir, *args).await,
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
    if args.exchange.exchange_outlook_anywhere {
        return new_exchange(state_dir, args).await;
    }
    let mut settings = args.server.settings()?;
    settings.authentication = args.authentication.into();
    settings.master_separator = args.master_separator;
    let mut e = Endpoint::new(&args.name, SourceSettings::Imap(settings.clone()));
    set_limits(&mut e, &args)?;
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

fn set_limits(e: &mut Endpoint, args: &NewArgs) -> anyhow::Result<()> {
    e.max_concurrent_migrations = args.max_concurrent_migrations;
    e.max_concurrent_incremental_syncs = args
        .max_concurrent_incremental_syncs
        .unwrap_or(DEFAULT_MAX_CONCURRENT_INCREMENTAL_SYNCS.min(args.max_concurrent_migrations));
    e.validate().map_err(flag_names)
}

/// The ConnectionSettings in a file test-server wrote (the whole answer or the settings only).
fn read_connection_settings(path: &Path) -> anyhow::Result<ConnectionSettings> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
    let settings = value.get("ConnectionSettings").cloned().unwrap_or(value);
    if settings.is_null() {
        bail!(
            "{}: no ConnectionSettings (the test it holds failed)",
            path.display()
        );
    }
    serde_json::from_value(settings).map_err(|e| {
        anyhow::anyhow!(
            "{}: not the ConnectionSettings of `mailmig test-server --exchange-outlook-anywhere --json`: {e}",
            path.display()
        )
    })
}

async fn new_exchange(state_dir: &Path, args: NewArgs) -> anyhow::Result<u8> {
    let Some(password) = args.password.required("The admin's password")? else {
        bail!(
            "an Exchange Outlook Anywhere endpoint keeps the admin's password for the syncs: give it with --password-file FILE, --password-env VAR, --password-prompt or --password"
        );
    };
    let timeout = DEFAULT_TIMEOUT;
    let (input, mut settings) = match &args.connection_settings {
        Some(path) => {
            let s = read_connection_settings(path)?;
            let input = TestInput {
                email_address: s.incoming_email_address.clone(),
                credential: engine::exchange::AdminCredential {
                    user_name: args
                        .username
                        .clone()
                        .unwrap_or(s.incoming_user_name.clone()),
                    password: password.clone(),
                },
                exchange_server: Some(s.incoming_exchange_server.clone()),
                rpc_proxy_server: Some(s.incoming_rpc_proxy_server.clone()),
                nspi_server: Some(s.incoming_nspi_server.clone()),
                mailbox_permission: args
                    .exchange
                    .mailbox_permission
                    .map(Into::into)
                    .or(Some(s.mailbox_permission)),
                accept_untrusted_certificates: s.accept_untrusted_certificates
                    || args.server.accept_untrusted_certificates,
                ca_file: args.server.ca_file.clone().or(s.ca_file.clone()),
                connect_to: if args.exchange.connect_to.is_empty() {
                    s.connect_to.clone()
                } else {
                    args.exchange.connect_to.clone()
                },
                timeout,
            };
            (input, Some(s))
        }
        None => (
            args.exchange.input(
                &args.server,
                args.username.as_deref(),
                password.clone(),
                timeout,
            )?,
            None,
        ),
    };
    if !args.skip_verification || settings.is_none() {
        // The Autodiscover form needs the test: it is what finds the servers.
        let r = test_exchange(&input, tenant_directory_sync(state_dir).await).await;
        let Some(found) = r
            .connection_settings
            .clone()
            .filter(|_| r.result != TestResult::Failed)
        else {
            eprintln!("The endpoint was not created: {}", r.message);
            if let Some(d) = r.error_detail {
                eprintln!("ErrorDetail: {d}");
            }
            return Ok(EXIT_FAILED);
        };
        settings = Some(match settings {
            // The file's settings, with what the test found out about access now.
            Some(mut s) => {
                s.ews_access = found.ews_access;
                s.has_admin_privilege = found.has_admin_privilege;
                s.mailbox_permission = found.mailbox_permission;
                s.ca_file = input.ca_file.clone();
                s.accept_untrusted_certificates = input.accept_untrusted_certificates;
                s.connect_to = input.connect_to.clone();
                s
            }
            None => found,
        });
    }
    let settings = settings.expect("set above");
    let mut exchange = settings.endpoint_settings(&password);
    exchange.credential.user_name = input.credential.user_name.clone();
    let mut e = Endpoint::new(
        &args.name,
        SourceSettings::ExchangeOutlookAnywhere(Box::new(exchange)),
    );
    set_limits(&mut e, &args)?;
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
        let shown: Vec<Endpoint> = list.iter().map(Endpoint::redacted).collect();
        println!("{}", serde_json::to_string_pretty(&shown)?);
        return Ok(EXIT_OK);
    }
    if let [one] = list.as_slice()
        && let Some(x) = one.exchange_settings()
    {
        // Get-MigrationEndpoint | Format-List EndpointType,ExchangeServer,UseAutoDiscover,Max*
        for (k, v) in [
            ("Identity", one.name.clone()),
            ("EndpointType", one.endpoint_type().to_string()),
            ("ExchangeServer", x.exchange_server.clone()),
            ("RpcProxyServer", x.rpc_proxy_server.clone()),
            ("UseAutoDiscover", pascal_bool(x.use_auto_discover)),
            ("EmailAddress", x.email_address.clone()),
            ("Username", x.credential.user_name.clone()),
            ("MailboxPermission", x.mailbox_permission.to_string()),
            (
                "MaxConcurrentMigrations",
                one.max_concurrent_migrations.to_string(),
            ),
            (
                "MaxConcurrentIncrementalSyncs",
                one.max_concurrent_incremental_syncs.to_string(),
            ),
        ] {
            println!("{k:<29} : {v}");
        }
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
            SourceSettings::ExchangeOutlookAnywhere(s) => ("443".to_string(), {
                if s.use_auto_discover {
                    "Autodiscover".to_string()
                } else {
                    "manual".to_string()
                }
            }),
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
    let connection_changed = c.remote_server.is_some()
        || c.port.is_some()
        || c.security.is_some()
        || c.ca_file.is_some()
        || c.accept_untrusted_certificates.is_some();
    match &mut e.connection {
        SourceSettings::Imap(s) => {
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
        }
        SourceSettings::ExchangeOutlookAnywhere(_) if connection_changed => bail!(
            "\"{}\" is an Exchange Outlook Anywhere endpoint: --remote-server, --port, --security, --ca-file and --accept-untrusted-certificates are IMAP settings; remove the endpoint and create it again to change its connection",
            c.name
        ),
        SourceSettings::ExchangeOutlookAnywhere(_) => {}
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

fn pascal_bool(b: bool) -> String {
    if b { "True" } else { "False" }.to_string()
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
