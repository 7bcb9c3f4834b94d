//! `mailmig run`: the migration service, processing batches and scheduling incremental syncs.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use engine::pipeline::{Copier, CopyOptions};
use engine::service::{RunOptions, Service, ServiceEvent};

use super::progress::Display;
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
    let display = Arc::new(Display::new());
    let shown = display.clone();
    let on_event = Arc::new(move |e: &ServiceEvent| shown.event(e));
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
            display.say("Interrupted; the next run goes on from here.");
        }
    }
    if let Some(mib) = peak_memory_mib() {
        // What a service's memory limit must allow: bounded by the concurrency and the chunk
        // size, not by the mailboxes' sizes.
        display.say(&format!("run ended; peak memory {mib} MiB"));
    }
    display.finish();
    Ok(EXIT_OK)
}

/// The process's peak resident memory (Linux's VmHWM), in MiB.
fn peak_memory_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib.div_ceil(1024))
}

/// The closing line of one user's sync: what it moved, how fast, what it skipped, and the
/// user's totals (imapsync's closing numbers, in one line). `None` for other events.
pub fn finished_line(e: &ServiceEvent) -> Option<String> {
    let ServiceEvent::Finished {
        email,
        kind,
        outcome,
        items_synced: total_items,
        items_skipped: total_skipped,
        stats,
        skipped_now,
        skipped_by_reason,
    } = e
    else {
        return None;
    };
    let reasons = if skipped_by_reason.is_empty() {
        String::new()
    } else {
        let by: Vec<String> = skipped_by_reason
            .iter()
            .map(|(r, n)| format!("{r} {n}"))
            .collect();
        format!(" ({})", by.join(", "))
    };
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
    Some(format!(
        "{email}: {kind} sync {outcome}: {} items ({kib:.1} KiB) in {secs:.2} s, {:.1} msgs/s, {:.1} KiB/s, {skipped_now} skipped{reasons}; in all {total_items} items, {total_skipped} skipped; missing in the target: {missing}",
        stats.items,
        stats.items as f64 / secs,
        kib / secs,
    ))
}
