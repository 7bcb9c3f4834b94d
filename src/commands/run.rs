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
    let on_event = Arc::new(move |e: &ServiceEvent| match e {
        ServiceEvent::Started { email, kind } => {
            progress.set_message(format!("{kind} sync of {email}"))
        }
        ServiceEvent::Finished {
            email,
            outcome,
            items_synced,
            ..
        } => {
            progress.println(format!("{email}: {outcome}, {items_synced} items"));
        }
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
