//! The admin commands (cmdlet vocabulary): each parses nothing and decides nothing itself; it
//! calls the engine and prints what it got, as a table or as JSON.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use engine::Engine;
use engine::clock::SystemClock;
use engine::control::{NewBatch, SetBatch};
use engine::copy::{CopyOptions, ImapCopy};
use engine::endpoint::{Endpoint, Security};
use engine::service::{RunOptions, Service, ServiceEvent};
use engine::state::BatchSettings;
use engine::target::{Target, TenantTarget};
use engine::test_server::{TestResult, test_server};
use serde::{Deserialize, Serialize};

/// Exit codes, as `--help` lists them.
pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_ROW_ERRORS: u8 = 3;

/// Where batches write: the embedded on-disk tenant, or a fake tenant over HTTP.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum TargetSetting {
    Embedded,
    FakeTarget { url: String, token: String },
    Imap(engine::imap_target::ImapTargetConfig),
}

pub fn engine(state_dir: &Path) -> anyhow::Result<Arc<Engine>> {
    Ok(Arc::new(
        Engine::open(state_dir, Arc::new(SystemClock))
            .with_context(|| format!("opening the state directory {}", state_dir.display()))?,
    ))
}

pub fn embedded_db(state_dir: &Path) -> PathBuf {
    state_dir.join("tenant.sqlite")
}

pub fn target_setting(engine: &Engine) -> anyhow::Result<TargetSetting> {
    Ok(match engine.db.read(|tx| tx.meta("target"))? {
        Some(json) => serde_json::from_str(&json).context("the saved target setting")?,
        None => TargetSetting::Embedded,
    })
}

pub fn open_target(engine: &Engine, state_dir: &Path) -> anyhow::Result<Arc<dyn Target>> {
    Ok(match target_setting(engine)? {
        TargetSetting::Embedded => {
            let tenant = fake_target::Tenant::open(&embedded_db(state_dir), Arc::new(SystemClock))
                .context("opening the embedded tenant")?;
            Arc::new(TenantTarget(Arc::new(tenant)))
        }
        TargetSetting::FakeTarget { url, token } => Arc::new(TenantTarget(Arc::new(
            fake_target::http::HttpTenant::new(&url, &token),
        ))),
        TargetSetting::Imap(config) => Arc::new(engine::imap_target::ImapTarget::new(config)),
    })
}

pub fn target_set(
    state_dir: &Path,
    embedded: bool,
    config: Option<PathBuf>,
    url: Option<String>,
    token: Option<String>,
    imap: Option<engine::imap_target::ImapTargetConfig>,
) -> anyhow::Result<u8> {
    let engine = engine(state_dir)?;
    let setting = match (embedded, url, token) {
        (false, None, None) if imap.is_some() => {
            let imap = imap.expect("checked");
            println!(
                "Target: the IMAP server {}:{} (login {}).",
                imap.remote_server, imap.port, imap.username_format
            );
            TargetSetting::Imap(imap)
        }
        (true, None, None) => {
            let mut cfg = match &config {
                Some(path) => fake_target::TenantConfig::from_file(path)?,
                None => fake_target::TenantConfig::default(),
            };
            cfg.tenant.database = Some(embedded_db(state_dir));
            let tenant = fake_target::Tenant::from_config(&cfg, Arc::new(SystemClock))?;
            println!(
                "Target: the embedded tenant in {} ({} recipients).",
                embedded_db(state_dir).display(),
                tenant.recipients().len()
            );
            TargetSetting::Embedded
        }
        (false, Some(url), Some(token)) => {
            println!("Target: the fake tenant at {url}.");
            TargetSetting::FakeTarget { url, token }
        }
        _ => bail!(
            "use one of --embedded [--config FILE], --fake-target URL --token TOKEN, or --imap \
             --remote-server H --port P --security S --username-format T --password P"
        ),
    };
    let json = serde_json::to_string(&setting)?;
    engine.db.transaction(|tx| tx.set_meta("target", &json))?;
    Ok(EXIT_OK)
}

pub fn target_get(state_dir: &Path, json: bool) -> anyhow::Result<u8> {
    let engine = engine(state_dir)?;
    let setting = target_setting(&engine)?;
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
                "IMAP server {}:{} ({:?}), login {}",
                c.remote_server, c.port, c.security, c.username_format
            ),
        }
    }
    Ok(EXIT_OK)
}

pub fn parse_security(s: &str) -> anyhow::Result<Security> {
    Security::parse(s).with_context(|| format!("--security: {s:?} is not none, ssl or tls"))
}

pub async fn test_server_cmd(
    e: Endpoint,
    credentials: Option<(String, String)>,
    timeout: Duration,
    json: bool,
) -> anyhow::Result<u8> {
    let creds = credentials.as_ref().map(|(u, p)| (u.as_str(), p.as_str()));
    let r = test_server(&e, creds, timeout).await;
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!("Result: {:?}", r.result);
        println!("Message: {}", r.message);
        if let Some(d) = &r.error_detail {
            println!("ErrorDetail: {d}");
        }
        if !r.capabilities.is_empty() {
            println!("Capabilities: {}", r.capabilities.join(" "));
        }
    }
    Ok(if r.result == TestResult::Failed {
        EXIT_FAILED
    } else {
        EXIT_OK
    })
}

pub fn csv_check(
    path: &Path,
    allow_unknown: bool,
    separator: char,
    json: bool,
) -> anyhow::Result<u8> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let options = engine::csv::CsvOptions {
        allow_unknown_columns: allow_unknown,
        separator,
        ..Default::default()
    };
    match engine::csv::parse(&bytes, &options) {
        Err(rejection) => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "file": path.display().to_string(), "rejected": rejection
                    }))?
                );
            } else {
                eprintln!(
                    "{}: the file is rejected: {}",
                    path.display(),
                    rejection.message
                );
            }
            Ok(EXIT_FAILED)
        }
        Ok(parsed) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&parsed)?);
            } else {
                println!(
                    "{:<6} {:<40} {:<10} UserName / error",
                    "Line", "EmailAddress", "Form"
                );
                for r in &parsed.rows {
                    println!(
                        "{:<6} {:<40} {:<10} {}",
                        r.line,
                        r.email_address,
                        r.form.name(),
                        r.user_name
                    );
                }
                for e in &parsed.errors {
                    println!(
                        "{:<6} {:<40} {:<10} {}",
                        e.line, e.email_address, "ERROR", e.message
                    );
                }
                println!(
                    "{} valid rows, {} rows with errors.",
                    parsed.rows.len(),
                    parsed.errors.len()
                );
            }
            Ok(if parsed.errors.is_empty() {
                EXIT_OK
            } else {
                EXIT_ROW_ERRORS
            })
        }
    }
}

pub async fn endpoint_new(
    state_dir: &Path,
    e: Endpoint,
    skip_verification: bool,
) -> anyhow::Result<u8> {
    let engine = engine(state_dir)?;
    e.validate()?;
    if !skip_verification {
        let r = test_server(&e, None, engine::test_server::DEFAULT_TIMEOUT).await;
        if r.result == TestResult::Failed {
            eprintln!("The endpoint was not created: {}", r.message);
            if let Some(d) = r.error_detail {
                eprintln!("ErrorDetail: {d}");
            }
            return Ok(EXIT_FAILED);
        }
    }
    engine.endpoint_new(e.clone())?;
    println!("Created the migration endpoint \"{}\".", e.name);
    Ok(EXIT_OK)
}

pub fn endpoint_get(state_dir: &Path, name: Option<String>, json: bool) -> anyhow::Result<u8> {
    let engine = engine(state_dir)?;
    let list = match name {
        Some(n) => vec![engine.endpoint(&n)?],
        None => engine.endpoints()?,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else {
        println!(
            "{:<16} {:<24} {:<6} {:<8} {:<6} MaxIncremental",
            "Name", "RemoteServer", "Port", "Security", "Max"
        );
        for e in list {
            println!(
                "{:<16} {:<24} {:<6} {:<8} {:<6} {}",
                e.name,
                e.remote_server,
                e.port,
                format!("{:?}", e.security),
                e.max_concurrent_migrations,
                e.max_concurrent_incremental_syncs
            );
        }
    }
    Ok(EXIT_OK)
}

#[derive(Default)]
pub struct EndpointChanges {
    pub remote_server: Option<String>,
    pub port: Option<u16>,
    pub security: Option<Security>,
    pub ca_file: Option<PathBuf>,
    pub accept_untrusted_certificates: Option<bool>,
    pub max_concurrent_migrations: Option<u32>,
    pub max_concurrent_incremental_syncs: Option<u32>,
}

pub fn endpoint_set(state_dir: &Path, name: &str, c: EndpointChanges) -> anyhow::Result<u8> {
    let engine = engine(state_dir)?;
    let mut e = engine.endpoint(name)?;
    if let Some(v) = c.remote_server {
        e.remote_server = v;
    }
    if let Some(v) = c.port {
        e.port = v;
    }
    if let Some(v) = c.security {
        e.security = v;
    }
    if let Some(v) = c.ca_file {
        e.ca_file = Some(v);
    }
    if let Some(v) = c.accept_untrusted_certificates {
        e.accept_untrusted_certificates = v;
    }
    if let Some(v) = c.max_concurrent_migrations {
        e.max_concurrent_migrations = v;
    }
    if let Some(v) = c.max_concurrent_incremental_syncs {
        e.max_concurrent_incremental_syncs = v;
    }
    engine.endpoint_set(e)?;
    println!("Updated the migration endpoint \"{name}\".");
    Ok(EXIT_OK)
}

pub fn endpoint_remove(state_dir: &Path, name: &str) -> anyhow::Result<u8> {
    engine(state_dir)?.endpoint_remove(name)?;
    println!("Removed the migration endpoint \"{name}\".");
    Ok(EXIT_OK)
}

fn read_csv(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn print_row_errors(errors: &[engine::csv::RowError], file: &Path) {
    for e in errors {
        eprintln!("{}: {}", file.display(), e.message);
    }
}

#[allow(clippy::too_many_arguments)]
pub async fn batch_new(
    state_dir: &Path,
    name: String,
    source_endpoint: String,
    csv: PathBuf,
    autostart: bool,
    settings: BatchSettings,
) -> anyhow::Result<u8> {
    let engine = engine(state_dir)?;
    let target = open_target(&engine, state_dir)?;
    let bytes = read_csv(&csv)?;
    let out = engine
        .batch_new(
            NewBatch {
                name: name.clone(),
                source_endpoint,
                autostart,
                settings,
            },
            &csv,
            &bytes,
            &*target,
        )
        .await?;
    print_row_errors(&out.row_errors, &csv);
    println!(
        "Created the migration batch \"{name}\" with {} users ({} rows with errors).",
        out.added,
        out.row_errors.len()
    );
    Ok(EXIT_OK)
}

pub fn batch_op(state_dir: &Path, op: &str, name: &str) -> anyhow::Result<u8> {
    let engine = engine(state_dir)?;
    match op {
        "start" => println!("{name}: {}", engine.batch_start(name)?),
        "stop" => println!("{name}: {}", engine.batch_stop(name)?),
        "complete" => println!("{name}: {}", engine.batch_complete(name)?),
        "remove" => {
            engine.batch_remove(name)?;
            println!("Removed the migration batch \"{name}\".");
        }
        other => bail!("unknown batch operation {other}"),
    }
    Ok(EXIT_OK)
}

pub async fn batch_set(state_dir: &Path, name: &str, set: SetBatch) -> anyhow::Result<u8> {
    let engine = engine(state_dir)?;
    let target = open_target(&engine, state_dir)?;
    let file = set.add_users.as_ref().map(|(p, _)| p.clone());
    let out = engine.batch_set(name, set, &*target).await?;
    if let Some(f) = file {
        print_row_errors(&out.row_errors, &f);
        println!("Added {} users to \"{name}\".", out.added);
    } else {
        println!("Updated the migration batch \"{name}\".");
    }
    Ok(EXIT_OK)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BatchView {
    #[serde(flatten)]
    batch: engine::state::BatchRow,
    #[serde(flatten)]
    stats: engine::control::BatchStats,
}

pub fn batch_get(state_dir: &Path, name: Option<String>, json: bool) -> anyhow::Result<u8> {
    let engine = engine(state_dir)?;
    let batches = match name {
        Some(n) => vec![engine.batch(&n)?],
        None => engine.batches()?,
    };
    let mut views = Vec::new();
    for b in batches {
        views.push(BatchView {
            stats: engine.batch_stats(&b.name)?,
            batch: b,
        });
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&views)?);
    } else {
        println!(
            "{:<20} {:<20} {:<14} {:>6} {:>7} {:>7} {:>7}",
            "Identity", "Status", "Endpoint", "Total", "Synced", "Failed", "Active"
        );
        for v in views {
            println!(
                "{:<20} {:<20} {:<14} {:>6} {:>7} {:>7} {:>7}",
                v.batch.name,
                v.batch.status.as_str(),
                v.batch.endpoint,
                v.stats.total_count,
                v.stats.synced_count + v.stats.completed_count,
                v.stats.failed_count,
                v.stats.active_count
            );
            println!(
                "{:<20} {} items ({:.1} MiB), {} skipped; {:.1} msgs/s, {:.2} MiB/s; ETA {}",
                "",
                v.stats.items_synced,
                v.stats.bytes_synced as f64 / 1_048_576.0,
                v.stats.items_skipped,
                v.stats.items_per_second,
                v.stats.mib_per_second,
                v.stats
                    .estimated_seconds_remaining
                    .map_or("-".to_string(), |s| format!("{s}s"))
            );
        }
    }
    Ok(EXIT_OK)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UserView {
    #[serde(flatten)]
    user: engine::state::UserRow,
    skipped_by_reason: std::collections::BTreeMap<String, u64>,
    last_sync_items_per_second: f64,
    last_sync_mib_per_second: f64,
}

pub fn user_get(
    state_dir: &Path,
    batch: Option<String>,
    email: Option<String>,
    json: bool,
) -> anyhow::Result<u8> {
    let engine = engine(state_dir)?;
    let users = match email {
        Some(e) => vec![engine.user(&e)?],
        None => engine.users(batch.as_deref())?,
    };
    let mut views = Vec::new();
    for u in users {
        let skipped = engine
            .db
            .read(|tx| tx.skipped_by_reason(&u.email_address))?;
        let secs = (u.last_sync_ms as f64 / 1000.0).max(0.001);
        views.push(UserView {
            skipped_by_reason: skipped.into_iter().collect(),
            last_sync_items_per_second: (u.last_sync_items as f64 / secs * 10.0).round() / 10.0,
            last_sync_mib_per_second: (u.last_sync_bytes as f64 / 1_048_576.0 / secs * 100.0)
                .round()
                / 100.0,
            user: u,
        });
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&views)?);
    } else {
        println!(
            "{:<32} {:<14} {:<22} {:>8} {:>8} {:>9} {:>8}  Error",
            "EmailAddress", "Batch", "Status", "Synced", "Skipped", "Msgs/s", "Missing"
        );
        for v in views {
            let u = &v.user;
            println!(
                "{:<32} {:<14} {:<22} {:>8} {:>8} {:>9} {:>8}  {}",
                u.email_address,
                u.batch,
                u.status.as_str(),
                u.items_synced,
                u.items_skipped,
                v.last_sync_items_per_second,
                u.missing_in_target
                    .map_or("-".to_string(), |m| m.to_string()),
                u.error.clone().unwrap_or_default()
            );
        }
    }
    Ok(EXIT_OK)
}

pub async fn run(state_dir: &Path, until_idle: bool) -> anyhow::Result<u8> {
    let engine = engine(state_dir)?;
    let target = open_target(&engine, state_dir)?;
    let mut options = CopyOptions::default();
    // Tuning for rehearsals and tests: messages per UID FETCH.
    if let Some(n) = std::env::var("MAILMIG_FETCH_CHUNK")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        options.fetch_chunk = n;
    }
    let copy = ImapCopy {
        engine: engine.clone(),
        target: target.clone(),
        options,
    };
    let bar = indicatif::ProgressBar::new_spinner();
    if std::env::var_os("CI").is_some() || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    let progress = bar.clone();
    let on_event = Arc::new(move |e: &ServiceEvent| match e {
        ServiceEvent::Started { email, kind } => {
            progress.set_message(format!("{kind:?} sync of {email}"))
        }
        ServiceEvent::Finished {
            email,
            outcome,
            items_synced,
            ..
        } => {
            progress.println(format!("{email}: {outcome:?}, {items_synced} items"));
        }
    });
    let service = Service::new(engine, Arc::new(copy), target);
    let options = RunOptions {
        until_idle,
        poll: Duration::from_millis(500),
        on_event: Some(on_event),
    };
    tokio::select! {
        r = service.run(options) => r?,
        _ = crate::wait_for_signal() => {
            // Running syncs are simply abandoned: their state says so, and the next run
            // restarts them (the copy is idempotent).
            bar.println("Interrupted; the next run goes on from here.");
        }
    }
    bar.finish_and_clear();
    Ok(EXIT_OK)
}
