//! `mailmig run`: the migration service, processing batches and scheduling incremental syncs.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use engine::pipeline::{Copier, CopyOptions};
use engine::service::{RunOptions, Service, ServiceEvent};

use super::{EXIT_OK, engine, target, wait_for_signal};

/// The migration service: processes batches and schedules incremental syncs every 24 hours.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Exit once no batch has work left now.
    #[arg(long)]
    pub until_idle: bool,
}

pub async fn run(state_dir: &Path, args: RunArgs) -> anyhow::Result<u8> {
    let engine = engine(state_dir)?;
    let target = target::open(&engine, state_dir)?;
    let mut options = CopyOptions::default();
    // Tuning for rehearsals and tests: messages per UID FETCH.
    if let Some(n) = std::env::var("MAILMIG_FETCH_CHUNK")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        options.fetch_chunk = n;
    }
    let copy = Copier::new(engine.clone(), target.clone(), options);
    let bar = indicatif::ProgressBar::new_spinner();
    if std::env::var_os("CI").is_some() || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    let progress = bar.clone();
    // On a terminal the lines go above the spinner; elsewhere (a service, a CI log) they are
    // timestamped log lines on standard output.
    let plain = bar.is_hidden();
    let say = move |line: String| {
        if plain {
            println!(
                "{} {line}",
                chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            );
        } else {
            progress.println(line);
        }
    };
    let spinner = bar.clone();
    let on_event = Arc::new(move |e: &ServiceEvent| match e {
        ServiceEvent::Started { email, kind } => {
            spinner.set_message(format!("{kind} sync of {email}"));
            if plain {
                say(format!("{email}: {kind} sync started"));
            }
        }
        ServiceEvent::Finished {
            email,
            kind,
            outcome,
            items_synced,
            items_skipped,
            stats,
            skipped_now,
        } => say(finished_line(
            email,
            *kind,
            outcome,
            (*items_synced, *items_skipped),
            stats,
            *skipped_now,
        )),
    });
    let service = Service::new(engine, Arc::new(copy), target);
    let options = RunOptions {
        until_idle: args.until_idle,
        poll: Duration::from_millis(500),
        on_event: Some(on_event),
    };
    tokio::select! {
        r = service.run(options) => r?,
        _ = wait_for_signal() => {
            // Running syncs are simply abandoned: their state says so, and the next run
            // restarts them (the copy is idempotent).
            bar.println("Interrupted; the next run goes on from here.");
        }
    }
    bar.finish_and_clear();
    Ok(EXIT_OK)
}

/// The closing line of one user's sync: what it moved, how fast, what it skipped, and the
/// user's totals (imapsync's closing numbers, in one line).
fn finished_line(
    email: &str,
    kind: engine::sync::SyncKind,
    outcome: &engine::sync::SyncOutcome,
    (total_items, total_skipped): (u64, u64),
    stats: &engine::sync::SyncStats,
    skipped_now: usize,
) -> String {
    let secs = (stats.elapsed_ms as f64 / 1000.0).max(0.001);
    let kib = stats.bytes as f64 / 1024.0;
    let missing = stats
        .missing_in_target
        .map_or("not checked".to_string(), |m| m.to_string());
    let outcome = match outcome {
        engine::sync::SyncOutcome::Completed => "done".to_string(),
        engine::sync::SyncOutcome::Stopped => "stopped".to_string(),
        engine::sync::SyncOutcome::Failed(why) => format!("failed ({why})"),
    };
    format!(
        "{email}: {kind} sync {outcome}: {} items ({kib:.1} KiB) in {secs:.2} s, {:.1} msgs/s, {:.1} KiB/s, {skipped_now} skipped; in all {total_items} items, {total_skipped} skipped; missing in the target: {missing}",
        stats.items,
        stats.items as f64 / secs,
        kib / secs,
    )
}
