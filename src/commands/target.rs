//! `mailmig target`: where batches write (the embedded tenant, a fake tenant over HTTP, or
//! any IMAP server), saved in the state.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use engine::Engine;
use engine::clock::SystemClock;
use engine::target::Target;
use engine::target::imap::{ImapTarget, ImapTargetConfig};
use harness::TenantTarget;
use serde::{Deserialize, Serialize};

use super::{EXIT_OK, PasswordArgs, SecurityArg, engine, engine_creating};

#[derive(Subcommand, Debug)]
pub enum TargetCommand {
    /// Sets the target: the embedded on-disk tenant (optionally seeded from a tenant TOML), a
    /// fake tenant over HTTP, or any IMAP server (IMAP to IMAP).
    Set(SetArgs),
    /// Shows the target (never its token or password).
    Get {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Lists a tenant mailbox's folders with their item counts (the embedded or HTTP tenant).
    Folders {
        /// The mailbox (its primary SMTP address).
        #[arg(long)]
        mailbox: String,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Exports a tenant mailbox as it was migrated: one .eml file per item, byte for byte,
    /// and manifest.json (folder, source key, size, received time, flags, SHA-256 of each).
    Export {
        /// The mailbox (its primary SMTP address).
        #[arg(long)]
        mailbox: String,
        /// The folder to write into (created if missing).
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
    /// Verifies a migrated mailbox against its source: every message the migration would copy
    /// is read at the source (read-only, as the sync reads it) and matched by its exact bytes
    /// in the tenant; prints what is missing, duplicated, unexpected, or has other flags or
    /// another date. Exit 1 unless the copy is exact.
    Reconcile {
        /// The migration user (its batch's endpoint and login are used at the source).
        #[arg(long)]
        mailbox: String,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct SetArgs {
    /// The embedded tenant, in the state directory (tenant.sqlite).
    #[arg(long, conflicts_with_all = ["fake_target", "token", "imap"])]
    pub embedded: bool,
    /// An IMAP server as the target.
    #[arg(long, requires_all = ["remote_server", "port", "security", "username_format"])]
    pub imap: bool,
    /// IMAP target: write `X-Mailmig-Source-Key: <key>` as each message's first line, for a
    /// server whose copies cannot be found again by size and headers after a crash. Without
    /// it (the default) every copy is exact, byte for byte.
    #[arg(long, requires = "imap")]
    pub source_key_header: bool,
    /// The IMAP target's host name.
    #[arg(long)]
    pub remote_server: Option<String>,
    /// The IMAP target's port.
    #[arg(long)]
    pub port: Option<u16>,
    /// How the connection to the IMAP target is protected.
    #[arg(long, value_enum, ignore_case = true)]
    pub security: Option<SecurityArg>,
    /// A PEM file of CA certificates to trust for the IMAP target.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// The target login from the CSV's EmailAddress: {email}, {local}, {domain}.
    #[arg(long)]
    pub username_format: Option<String>,
    /// The IMAP target's password.
    #[command(flatten)]
    pub password: PasswordArgs,
    /// Tenant TOML (accepted domains, mailboxes) for the embedded tenant.
    #[arg(long, requires = "embedded", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The URL of a fake tenant's HTTP API.
    #[arg(long, requires = "token", value_name = "URL")]
    pub fake_target: Option<String>,
    /// The fake tenant's bearer token.
    #[arg(long, requires = "fake_target")]
    pub token: Option<String>,
}

/// Where batches write, as saved in the state.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum TargetSetting {
    Embedded,
    FakeTarget { url: String, token: String },
    Imap(ImapTargetConfig),
}

pub fn embedded_db(state_dir: &Path) -> PathBuf {
    state_dir.join("tenant.sqlite")
}

/// The embedded tenant holds copies of people's mail: readable by the owner only, like the
/// engine's state (its WAL, shared-memory and body files too).
fn make_private(db: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for suffix in ["", "-wal", "-shm", "-bodies"] {
        let path = PathBuf::from(format!("{}{suffix}", db.display()));
        if path.exists() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .with_context(|| format!("making {} private", path.display()))?;
        }
    }
    Ok(())
}

pub fn setting(engine: &Engine) -> anyhow::Result<TargetSetting> {
    Ok(match engine.db.read(|tx| tx.meta("target"))? {
        Some(json) => serde_json::from_str(&json).context("the saved target setting")?,
        None => TargetSetting::Embedded,
    })
}

/// The saved target, ready to write to.
pub fn open(engine: &Engine, state_dir: &Path) -> anyhow::Result<Arc<dyn Target>> {
    Ok(match setting(engine)? {
        TargetSetting::Embedded => {
            let tenant = fake_target::Tenant::open(&embedded_db(state_dir), Arc::new(SystemClock))
                .context("opening the embedded tenant")?;
            make_private(&embedded_db(state_dir))?;
            Arc::new(TenantTarget::new(tenant))
        }
        TargetSetting::FakeTarget { url, token } => Arc::new(TenantTarget::new(
            fake_target::http::HttpTenant::new(&url, &token),
        )),
        TargetSetting::Imap(config) => Arc::new(ImapTarget::new(config)),
    })
}

pub async fn run(state_dir: &Path, command: TargetCommand) -> anyhow::Result<u8> {
    match command {
        TargetCommand::Set(args) => set(state_dir, args).await,
        TargetCommand::Get { json } => get(state_dir, json),
        TargetCommand::Folders { mailbox, json } => folders(state_dir, &mailbox, json).await,
        TargetCommand::Export { mailbox, dir } => export(state_dir, &mailbox, &dir).await,
        TargetCommand::Reconcile { mailbox, json } => reconcile(state_dir, &mailbox, json).await,
    }
}

/// The saved target as a tenant to look into; an IMAP target is looked into with an IMAP
/// client instead.
fn tenant(state_dir: &Path) -> anyhow::Result<Box<dyn fake_target::TenantApi>> {
    let engine = engine(state_dir)?;
    Ok(match setting(&engine)? {
        TargetSetting::Embedded => {
            let db = embedded_db(state_dir);
            if !db.exists() {
                // Looking must not create it.
                bail!(
                    "the embedded tenant {} doesn't exist yet: `mailmig target set --embedded` or a run makes it",
                    db.display()
                );
            }
            Box::new(
                fake_target::Tenant::open(&db, Arc::new(SystemClock))
                    .context("opening the embedded tenant")?,
            )
        }
        TargetSetting::FakeTarget { url, token } => {
            Box::new(fake_target::http::HttpTenant::new(&url, &token))
        }
        TargetSetting::Imap(c) => bail!(
            "the target is the IMAP server {}:{}: look into it with an IMAP client (this command reads a tenant)",
            c.remote_server,
            c.port
        ),
    })
}

async fn folders(state_dir: &Path, mailbox: &str, json: bool) -> anyhow::Result<u8> {
    let tenant = tenant(state_dir)?;
    let folders = tenant
        .folders(mailbox)
        .await
        .with_context(|| format!("the mailbox {mailbox} in the tenant"))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&folders)?);
    } else {
        println!("{:<40} {:>8}", "Folder", "Items");
        for f in &folders {
            println!("{:<40} {:>8}", f.path, f.item_count);
        }
        let total: u64 = folders.iter().map(|f| f.item_count).sum();
        println!("{} folders, {total} items.", folders.len());
    }
    Ok(EXIT_OK)
}

async fn export(state_dir: &Path, mailbox: &str, dir: &Path) -> anyhow::Result<u8> {
    let tenant = tenant(state_dir)?;
    let manifest = fake_target::inspect::export_mailbox(&*tenant, mailbox, dir)
        .await
        .with_context(|| format!("exporting {mailbox} to {}", dir.display()))?;
    let bytes: u64 = manifest.iter().map(|m| m.size).sum();
    println!(
        "Exported {} items ({bytes} bytes) of {mailbox} to {} (manifest.json lists them).",
        manifest.len(),
        dir.display()
    );
    Ok(EXIT_OK)
}

/// What `target reconcile` found.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReconcileView {
    mailbox: String,
    in_source: usize,
    in_target: usize,
    /// What the migration skips by its rules (not compared), by reason.
    skipped_by_rule: std::collections::BTreeMap<String, usize>,
    missing: Vec<String>,
    duplicated: Vec<Duplicate>,
    unexpected: Vec<String>,
    flag_mismatches: Vec<FlagMismatch>,
    date_mismatches: Vec<DateMismatch>,
    exact: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Duplicate {
    folder: String,
    sha256: String,
    copies: usize,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FlagMismatch {
    item: String,
    source: Vec<String>,
    target: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DateMismatch {
    item: String,
    source: String,
    target: String,
}

async fn reconcile(state_dir: &Path, mailbox: &str, json: bool) -> anyhow::Result<u8> {
    use fake_target::inspect::{SourceMessage, fingerprint, reconcile, target_messages};
    let engine = engine(state_dir)?;
    let (settings, credential, filter) = engine.user_source(mailbox)?;
    let tenant = tenant(state_dir)?;
    let options = engine::pipeline::CopyOptions::default();
    let mut source = engine::source::open(
        &settings,
        mailbox,
        &credential,
        options.timeout,
        None,
        engine.clone(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("reading {mailbox} at the source: {e}"))?;
    let mut messages = Vec::new();
    let read = engine::pipeline::survey::read_planned(
        source.as_mut(),
        &filter,
        &options,
        |folder, target, item| {
            messages.push(SourceMessage {
                label: format!("{folder} UID {}", item.uid),
                folder: target.to_string(),
                fingerprint: fingerprint(&item.raw),
                flags: fake_target::ItemFlags::from_imap(&item.flags),
                received_time: item.date,
            })
        },
    )
    .await;
    source.close().await;
    let survey = read.map_err(|e| anyhow::anyhow!("reading {mailbox} at the source: {e}"))?;
    let target = target_messages(&*tenant, mailbox)
        .await
        .with_context(|| format!("the mailbox {mailbox} in the tenant"))?;
    let r = reconcile(&messages, &target);
    let mut skipped_by_rule = std::collections::BTreeMap::new();
    for s in survey.skipped.iter().filter(|s| !s.item.is_folder()) {
        *skipped_by_rule
            .entry(s.item.reason.to_string())
            .or_insert(0) += 1;
    }
    let ts = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339();
    let view = ReconcileView {
        mailbox: mailbox.to_string(),
        in_source: messages.len(),
        in_target: target.len(),
        skipped_by_rule,
        exact: r.is_exact(),
        missing: r.missing,
        duplicated: r
            .duplicated
            .into_iter()
            .map(|(folder, sha256, copies)| Duplicate {
                folder,
                sha256,
                copies,
            })
            .collect(),
        unexpected: r.unexpected,
        flag_mismatches: r
            .flag_mismatches
            .into_iter()
            .map(|(item, source, target)| FlagMismatch {
                item,
                source,
                target,
            })
            .collect(),
        date_mismatches: r
            .date_mismatches
            .into_iter()
            .map(|(item, s, t)| DateMismatch {
                item,
                source: ts(s),
                target: ts(t),
            })
            .collect(),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        println!(
            "{mailbox}: {} messages to migrate at the source, {} items in the tenant.",
            view.in_source, view.in_target
        );
        for (reason, n) in &view.skipped_by_rule {
            println!("  skipped by the migration's rules ({reason}): {n}");
        }
        let list = |what: &str, items: Vec<String>| {
            println!("  {what}: {}", items.len());
            for i in items.iter().take(20) {
                println!("    {i}");
            }
            if items.len() > 20 {
                println!("    ... and {} more (--json lists all)", items.len() - 20);
            }
        };
        list("in source, not in target", view.missing.clone());
        list(
            "duplicated in the target",
            view.duplicated
                .iter()
                .map(|d| format!("{}: {} copies of {}", d.folder, d.copies, d.sha256))
                .collect(),
        );
        list("in target, not in source", view.unexpected.clone());
        list(
            "other flags in the target",
            view.flag_mismatches
                .iter()
                .map(|m| {
                    format!(
                        "{}: ({}) at the source, ({}) in the target",
                        m.item,
                        m.source.join(" "),
                        m.target.join(" ")
                    )
                })
                .collect(),
        );
        list(
            "another date in the target",
            view.date_mismatches
                .iter()
                .map(|m| {
                    format!(
                        "{}: {} at the source, {} in the target",
                        m.item, m.source, m.target
                    )
                })
                .collect(),
        );
        println!(
            "{}",
            if view.exact {
                "The copy is exact."
            } else {
                "The copy differs from the source."
            }
        );
    }
    Ok(if view.exact {
        EXIT_OK
    } else {
        super::EXIT_FAILED
    })
}

/// A fake tenant is saved only once it answered with this token: a wrong URL or token must
/// fail here, not show up later as users that stay Validating.
async fn verify_fake_target(url: &str, token: &str) -> anyhow::Result<usize> {
    use fake_target::TenantApi;
    let tenant = fake_target::http::HttpTenant::new(url, token);
    let answer = tokio::time::timeout(std::time::Duration::from_secs(15), tenant.users()).await;
    match answer {
        Err(_) => bail!("the fake tenant at {url} did not answer within 15 s; nothing was saved"),
        Ok(Ok(users)) => Ok(users.len()),
        Ok(Err(fake_target::Error::Unauthorized)) => bail!(
            "the fake tenant at {url} refused the token (HTTP 401); check --token (nothing was saved)"
        ),
        Ok(Err(e)) => bail!("the fake tenant at {url} cannot be used: {e} (nothing was saved)"),
    }
}

async fn set(state_dir: &Path, args: SetArgs) -> anyhow::Result<u8> {
    let setting = match (args.embedded, args.fake_target, args.token) {
        (false, None, None) if args.imap => {
            let Some(password) = args.password.required("The IMAP target's password")? else {
                bail!(
                    "--imap needs the target's password: --password-file FILE, --password-env VAR, --password-prompt or --password P"
                );
            };
            let imap = ImapTargetConfig {
                remote_server: args.remote_server.unwrap_or_default(),
                port: args.port.unwrap_or(143),
                security: args.security.unwrap_or(SecurityArg::None).into(),
                ca_file: args.ca_file,
                username_format: args.username_format.unwrap_or_default(),
                password,
                source_key_header: args.source_key_header,
            };
            println!(
                "Target: the IMAP server {}:{} (login {}).",
                imap.remote_server, imap.port, imap.username_format
            );
            TargetSetting::Imap(imap)
        }
        (true, None, None) => {
            let mut cfg = match &args.config {
                Some(path) => fake_target::TenantConfig::from_file(path)?,
                None => fake_target::TenantConfig::default(),
            };
            cfg.tenant.database = Some(embedded_db(state_dir));
            let tenant = fake_target::Tenant::from_config(&cfg, Arc::new(SystemClock))?;
            make_private(&embedded_db(state_dir))?;
            println!(
                "Target: the embedded tenant in {} ({} recipients).",
                embedded_db(state_dir).display(),
                tenant.recipients().len()
            );
            TargetSetting::Embedded
        }
        (false, Some(url), Some(token)) => {
            let users = verify_fake_target(&url, &token).await?;
            println!("Target: the fake tenant at {url} ({users} recipients).");
            TargetSetting::FakeTarget { url, token }
        }
        _ => bail!(
            "use one of --embedded [--config FILE], --fake-target URL --token TOKEN, or --imap \
             --remote-server H --port P --security S --username-format T --password P"
        ),
    };
    let json = serde_json::to_string(&setting)?;
    let engine = engine_creating(state_dir)?;
    engine.db.transaction(|tx| tx.set_meta("target", &json))?;
    Ok(EXIT_OK)
}

fn get(state_dir: &Path, json: bool) -> anyhow::Result<u8> {
    let engine = engine(state_dir)?;
    let setting = setting(&engine)?;
    if json {
        // Tokens and passwords are secrets: never printed.
        let shown = match &setting {
            TargetSetting::Embedded => serde_json::json!({"kind": "embedded"}),
            TargetSetting::FakeTarget { url, .. } => {
                serde_json::json!({"kind": "fakeTarget", "url": url})
            }
            TargetSetting::Imap(c) => serde_json::json!({
                "kind": "imap", "remoteServer": c.remote_server, "port": c.port,
                "security": c.security, "usernameFormat": c.username_format,
                "sourceKeyHeader": c.source_key_header,
            }),
        };
        println!("{}", serde_json::to_string_pretty(&shown)?);
    } else {
        match setting {
            TargetSetting::Embedded => {
                println!("Embedded tenant: {}", embedded_db(state_dir).display())
            }
            TargetSetting::FakeTarget { url, .. } => println!("Fake tenant over HTTP: {url}"),
            TargetSetting::Imap(c) => println!(
                "IMAP server {}:{} ({}), login {}; {}",
                c.remote_server,
                c.port,
                c.security,
                c.username_format,
                if c.source_key_header {
                    "each copy starts with an X-Mailmig-Source-Key header"
                } else {
                    "exact copies"
                }
            ),
        }
    }
    Ok(EXIT_OK)
}
