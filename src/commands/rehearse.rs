//! `mailmig rehearse`: a migration rehearsed against the real source, read-only. Every CSV row
//! checked as the service would, every mailbox surveyed (folders, sizes, what would be skipped
//! and why), optionally copied into a scratch tenant to measure the throughput, and the real
//! migration forecast; written as report.json, users.csv and a self-contained report.html.

mod html;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use engine::clock::SystemClock;
use engine::control::NewBatch;
use engine::control::endpoint::Endpoint;
use engine::pipeline::{Copier, CopyOptions, ITEM_CAP};
use engine::rehearsal::{
    CopyMeasure, Rate, Readiness, Rehearsal, RehearsalInput, UserRehearsal, rehearse,
};
use engine::service::{RunOptions, Service, ServiceEvent};
use engine::sync::{FolderFilter, SyncOutcome};
use harness::TenantTarget;

use super::progress::Display;
use super::{EXIT_FAILED, EXIT_OK, comma_list, engine, target};

/// Rehearses a migration: checks every CSV row (the CSV's rules, the recipient in the target,
/// a login with the row's form), surveys each mailbox read-only (folders and where they land,
/// counts and sizes, every item that would be skipped and why), optionally copies into a
/// scratch tenant to measure the real throughput, and forecasts the migration at the
/// endpoint's MaxConcurrentMigrations. The source is never written to.
///
/// Writes DIR/report.json, DIR/users.csv (one row per user) and DIR/report.html (one file, no
/// network). Exits 1 when a user would fail.
#[derive(Args, Debug)]
pub struct RehearseArgs {
    /// The source endpoint (made by `endpoint new`).
    #[arg(long, value_name = "NAME")]
    pub source_endpoint: String,
    /// The migration CSV to rehearse (an IMAP endpoint; a cutover endpoint takes the whole
    /// organisation and no CSV).
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Where report.json, users.csv and report.html are written (created if missing).
    #[arg(long, value_name = "DIR")]
    pub report: PathBuf,
    /// Also copy every mailbox into a scratch tenant (deleted afterwards) to measure the real
    /// throughput from this server; without it, a timed read of each mailbox measures the
    /// source alone. IMAP endpoints only.
    #[arg(long)]
    pub copy: bool,
    /// Print the report as JSON on standard output (the same data as report.json).
    #[arg(long)]
    pub json: bool,
    /// Folders the batch would leave out (ExcludeFolders), comma-separated.
    #[arg(long, value_name = "FOLDERS", value_parser = parse_list)]
    pub exclude_folders: Option<Vec<String>>,
    /// The item limit of a mailbox (Exchange Online's is 500000); a lower one shows what it
    /// would skip.
    #[arg(long, value_name = "N", default_value_t = ITEM_CAP)]
    pub item_cap: usize,
    /// Without --copy, how many MiB of each mailbox are read to time the source.
    #[arg(long, value_name = "MIB", default_value_t = 8)]
    pub sample_mib: u64,
    /// Accept columns beyond the known ones (New-MigrationBatch -AllowUnknownColumnsInCsv).
    #[arg(long)]
    pub allow_unknown_columns: bool,
}

fn parse_list(s: &str) -> Result<Vec<String>, String> {
    Ok(comma_list(s))
}

pub async fn run(state_dir: &Path, args: RehearseArgs) -> anyhow::Result<u8> {
    let engine = engine(state_dir)?;
    let endpoint = engine.endpoint(&args.source_endpoint)?;
    let target = target::open(&engine, state_dir)?;
    let csv_bytes = match &args.csv {
        Some(path) => {
            Some(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?)
        }
        None => None,
    };
    let csv = args.csv.as_deref().zip(csv_bytes.as_deref());
    if args.copy && endpoint.endpoint_type().is_cutover() {
        anyhow::bail!(
            "--copy: a cutover rehearsal cannot copy (it would have to provision the organisation); leave it out to time a read of each mailbox"
        );
    }
    let options = CopyOptions {
        item_cap: args.item_cap,
        ..CopyOptions::default()
    };
    let filter = FolderFilter {
        exclude: args.exclude_folders.clone().unwrap_or_default(),
        include: Vec::new(),
    };
    let quiet = args.json;
    let on_user = move |u: &UserRehearsal| {
        if !quiet {
            eprintln!("{}", user_line(u));
        }
    };
    let input = RehearsalInput {
        endpoint: &endpoint,
        csv,
        allow_unknown_columns: args.allow_unknown_columns,
        filter: filter.clone(),
        options: options.clone(),
        sample_bytes: if args.copy {
            0
        } else {
            args.sample_mib * 1024 * 1024
        },
        on_user: Some(Box::new(on_user)),
    };
    let mut report = rehearse(&engine, target.as_ref(), input).await?;
    let rate = if args.copy {
        if !quiet {
            eprintln!("copying into a scratch tenant to measure the throughput...");
        }
        let (path, bytes) = csv.expect("an IMAP endpoint's rehearsal has its CSV");
        let display = (!quiet).then(|| Arc::new(Display::logging_to(true)));
        let measured = measure_copy(
            &endpoint,
            path,
            bytes,
            &report,
            &filter,
            options,
            display.clone(),
        )
        .await?;
        if let Some(d) = display {
            d.finish();
        }
        for u in &mut report.users {
            if let Some(m) = measured.get(&u.email_address.to_lowercase()) {
                if let Some(e) = &m.error {
                    u.warnings.push(format!("The rehearsal's copy failed: {e}"));
                    if u.status == Readiness::Ready {
                        u.status = Readiness::Warning;
                    }
                }
                u.copy = Some(m.clone());
            }
        }
        report.totals = report.totals();
        Rate::over(
            "copy",
            measured
                .values()
                .filter(|m| m.error.is_none())
                .map(|m| (m.items, m.bytes, m.elapsed_ms)),
        )
    } else {
        report.read_rate()
    };
    if let Some(rate) = rate {
        report.forecast_with(rate, endpoint.max_concurrent_migrations);
    }
    write_report(&args.report, &report)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", summary(&report));
        println!(
            "Report: {} (also report.json, users.csv)",
            args.report.join("report.html").display()
        );
    }
    Ok(if report.totals.failed > 0 || report.refusal.is_some() {
        EXIT_FAILED
    } else {
        EXIT_OK
    })
}

/// Copies the users that would sync into a scratch state and tenant, as the service would,
/// and times each user's initial sync. The scratch is deleted afterwards.
async fn measure_copy(
    endpoint: &Endpoint,
    csv_path: &Path,
    csv_bytes: &[u8],
    report: &Rehearsal,
    filter: &FolderFilter,
    options: CopyOptions,
    display: Option<Arc<Display>>,
) -> anyhow::Result<HashMap<String, CopyMeasure>> {
    // Private (0700) and removed when dropped, on every path out of here.
    let scratch_dir = tempfile::Builder::new()
        .prefix("mailmig-rehearsal-")
        .tempdir()
        .context("creating the rehearsal's scratch folder")?;
    let scratch = scratch_dir.path();
    let ready: Vec<&str> = report
        .users
        .iter()
        .filter(|u| u.status != Readiness::Failed)
        .map(|u| u.email_address.as_str())
        .collect();
    let engine = Arc::new(engine::Engine::open(
        &scratch.join("state"),
        Arc::new(SystemClock),
    )?);
    engine.endpoint_new(endpoint.clone())?;
    let mut domains: Vec<String> = ready
        .iter()
        .filter_map(|a| a.rsplit_once('@').map(|(_, d)| d.to_lowercase()))
        .collect();
    domains.sort();
    domains.dedup();
    let settings = fake_target::tenant::Settings {
        accepted_domains: domains,
        ..Default::default()
    };
    let tenant = fake_target::Tenant::open_with(
        &scratch.join("tenant.sqlite"),
        Some(settings),
        Arc::new(SystemClock),
    )
    .context("the scratch tenant")?;
    for a in &ready {
        tenant
            .add_recipient(fake_target::Recipient::mailbox(a, true, tenant.now()))
            .map_err(|e| anyhow::anyhow!("the scratch tenant: {e}"))?;
    }
    let target: Arc<dyn engine::target::Target> = Arc::new(TenantTarget::new(tenant));
    let new = NewBatch {
        name: "Rehearsal".into(),
        source_endpoint: endpoint.name.clone(),
        autostart: true,
        settings: engine::control::state::BatchSettings {
            exclude_folders: filter.exclude.clone(),
            include_folders: filter.include.clone(),
            allow_unknown_columns: true,
            ..Default::default()
        },
    };
    engine
        .batch_new(new, csv_path, csv_bytes, target.as_ref())
        .await?;
    let measured: Arc<Mutex<HashMap<String, CopyMeasure>>> = Arc::default();
    let into = measured.clone();
    let on_event = Arc::new(move |e: &ServiceEvent| {
        if let Some(d) = &display {
            d.event(e);
        }
        if let ServiceEvent::Finished {
            email,
            outcome,
            stats,
            ..
        } = e
        {
            let error = match outcome {
                SyncOutcome::Failed(m) => Some(m.clone()),
                _ => None,
            };
            into.lock().unwrap_or_else(|e| e.into_inner()).insert(
                email.to_lowercase(),
                CopyMeasure {
                    items: stats.items,
                    bytes: stats.bytes,
                    elapsed_ms: stats.elapsed_ms,
                    error,
                },
            );
        }
    });
    let copier = Copier::new(engine.clone(), target.clone(), options);
    let service = Service::new(engine.clone(), Arc::new(copier), target);
    service
        .run(RunOptions {
            until_idle: true,
            poll: Duration::from_millis(100),
            on_event: Some(on_event),
        })
        .await?;
    drop(service);
    drop(engine);
    let out = std::mem::take(&mut *measured.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(out)
}

fn write_report(dir: &Path, report: &Rehearsal) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let json = dir.join("report.json");
    std::fs::write(&json, serde_json::to_string_pretty(report)? + "\n")
        .with_context(|| format!("writing {}", json.display()))?;
    let csv = dir.join("users.csv");
    std::fs::write(&csv, users_csv(report)?)
        .with_context(|| format!("writing {}", csv.display()))?;
    let page = dir.join("report.html");
    std::fs::write(&page, html::render(report))
        .with_context(|| format!("writing {}", page.display()))?;
    Ok(())
}

/// One row per user, for a spreadsheet.
fn users_csv(report: &Rehearsal) -> anyhow::Result<Vec<u8>> {
    let mut w = ::csv::Writer::from_writer(Vec::new());
    w.write_record([
        "EmailAddress",
        "Line",
        "Status",
        "Items",
        "Bytes",
        "ItemsToCopy",
        "BytesToCopy",
        "SkippedItems",
        "SkippedFolders",
        "ForecastSeconds",
        "Error",
        "Warnings",
    ])?;
    for u in &report.users {
        let s = u.survey.as_ref();
        let count = |f: fn(&engine::pipeline::survey::SurveyedSkip) -> bool| {
            s.map(|s| s.skipped.iter().filter(|k| f(k)).count().to_string())
                .unwrap_or_default()
        };
        w.write_record([
            u.email_address.clone(),
            u.line.to_string(),
            u.status.to_string(),
            s.map(|s| s.items.to_string()).unwrap_or_default(),
            s.map(|s| s.bytes.to_string()).unwrap_or_default(),
            s.map(|s| s.to_copy_items.to_string()).unwrap_or_default(),
            s.map(|s| s.to_copy_bytes.to_string()).unwrap_or_default(),
            count(|k| !k.item.is_folder()),
            count(|k| k.item.is_folder()),
            u.forecast_seconds
                .map(|f| f.to_string())
                .unwrap_or_default(),
            u.error.clone().unwrap_or_default(),
            u.warnings.join("; "),
        ])?;
    }
    Ok(w.into_inner()?)
}

pub(crate) fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1_048_576.0)
}

pub(crate) fn duration(secs: f64) -> String {
    if secs < 10.0 {
        return format!("{secs:.1}s");
    }
    match secs.round() as u64 {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m {:02}s", s / 60, s % 60),
        s => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}

fn user_line(u: &UserRehearsal) -> String {
    match (&u.error, &u.survey) {
        (Some(e), _) => format!("{}: Failed: {e}", u.email_address),
        (None, Some(s)) => format!(
            "{}: {}, {} of {} messages to copy ({}){}",
            u.email_address,
            u.status,
            s.to_copy_items,
            s.items,
            mib(s.to_copy_bytes),
            if u.warnings.is_empty() {
                String::new()
            } else {
                format!("; {}", u.warnings.join("; "))
            }
        ),
        (None, None) => format!("{}: {}", u.email_address, u.status),
    }
}

fn summary(r: &Rehearsal) -> String {
    let t = &r.totals;
    let mut out = format!(
        "Rehearsal of {} against {} ({}):\n  {} users: {} ready, {} with warnings, {} would fail\n  \
         {} messages ({}) at the source, {} ({}) to copy, {} items skipped\n",
        r.csv.as_deref().unwrap_or("the organisation"),
        r.endpoint,
        r.server,
        t.users,
        t.ready,
        t.warning,
        t.failed,
        t.items,
        mib(t.bytes),
        t.to_copy_items,
        mib(t.to_copy_bytes),
        t.skipped_items
    );
    match &r.forecast {
        Some(f) => out.push_str(&format!(
            "  forecast: {} for the initial syncs at {} users at once ({:.0} msgs/s, {:.0} KiB/s per user, measured by {})\n",
            duration(f.seconds),
            f.concurrency,
            f.rate.items_per_second,
            f.rate.bytes_per_second / 1024.0,
            f.rate.method
        )),
        None => out.push_str("  forecast: none (nothing could be measured)\n"),
    }
    if let Some(why) = &r.refusal {
        out.push_str(&format!("  the batch would be refused: {why}\n"));
    }
    for u in r.users.iter().filter(|u| u.status == Readiness::Failed) {
        out.push_str(&format!(
            "  line {}: {}: {}\n",
            u.line,
            u.email_address,
            u.error.as_deref().unwrap_or("")
        ));
    }
    out
}
