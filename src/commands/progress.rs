//! What `mailmig run` shows while it works. On a terminal: one line per running user (items
//! done of the total, MiB, msgs/s, ETA, or the throttling being waited out) and a batch line
//! under them. Elsewhere (a service's log, CI): plain timestamped lines, one at each sync's
//! start and end, and when a user is throttled.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use engine::service::ServiceEvent;
use engine::sync::{SyncOutcome, SyncProgress};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// One running user, as its line shows it.
#[derive(Debug)]
pub struct UserProgress {
    pub started: Instant,
    /// Items and bytes the target holds (before this sync, plus what it recorded).
    pub done: (u64, u64),
    /// What this sync recorded.
    pub now: (u64, u64),
    /// What the target will hold once the sync is done (`None` until planned).
    pub total: Option<(u64, u64)>,
    /// Throttled until then, by whom.
    pub throttled: Option<(Instant, String)>,
    /// When throttling was last logged (plain output says it once in a while, not per wait).
    logged_throttle: Option<Instant>,
}

impl UserProgress {
    pub fn new(started: Instant, before: (u64, u64)) -> Self {
        Self {
            started,
            done: before,
            now: (0, 0),
            total: None,
            throttled: None,
            logged_throttle: None,
        }
    }

    /// The line's text after the user's name.
    pub fn message(&self, at: Instant) -> String {
        let secs = at.duration_since(self.started).as_secs_f64().max(0.001);
        let rate = self.now.0 as f64 / secs;
        let mib = self.done.1 as f64 / 1_048_576.0;
        let mut out = match self.total {
            Some((items, _)) => format!("{}/{items} items", self.done.0.min(items)),
            None => format!("{} items, listing", self.done.0),
        };
        out.push_str(&format!(", {mib:.1} MiB, {rate:.1} msgs/s"));
        if let (Some((items, _)), true) = (self.total, rate > 0.0) {
            let left = items.saturating_sub(self.done.0) as f64 / rate;
            out.push_str(&format!(", ETA {}", short(Duration::from_secs_f64(left))));
        }
        if let Some((until, by)) = &self.throttled
            && *until > at
        {
            out.push_str(&format!(
                ", throttled by {by}, waiting {}",
                short(*until - at)
            ));
        }
        out
    }
}

/// `42s`, `3m05s`, `2h10m`.
pub fn short(d: Duration) -> String {
    let s = d.as_secs_f64().ceil() as u64;
    match s {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

pub struct Display {
    multi: MultiProgress,
    batch: ProgressBar,
    plain: bool,
    /// Plain lines go to standard error (a command whose standard output is its result).
    log_to_stderr: bool,
    users: Mutex<HashMap<String, (UserProgress, ProgressBar)>>,
    counts: Mutex<(u64, u64)>,
}

impl Display {
    /// On a terminal, live lines; elsewhere (or with `CI` set), plain log lines on standard
    /// output.
    pub fn new() -> Self {
        Self::logging_to(false)
    }

    /// The same, plain lines on standard error when `stderr`.
    pub fn logging_to(stderr: bool) -> Self {
        let multi = MultiProgress::new();
        let plain = std::env::var_os("CI").is_some()
            || !std::io::IsTerminal::is_terminal(&std::io::stderr());
        if plain {
            multi.set_draw_target(ProgressDrawTarget::hidden());
        }
        let batch = multi.add(ProgressBar::new_spinner());
        batch.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("a template"));
        batch.set_message("looking for work");
        batch.enable_steady_tick(Duration::from_millis(200));
        Self {
            multi,
            batch,
            plain,
            log_to_stderr: stderr,
            users: Mutex::default(),
            counts: Mutex::default(),
        }
    }

    /// A line for people: above the live lines, or a timestamped log line.
    pub fn say(&self, line: &str) {
        if self.plain {
            let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            if self.log_to_stderr {
                eprintln!("{at} {line}");
            } else {
                println!("{at} {line}");
            }
        } else {
            self.multi.suspend(|| eprintln!("{line}"));
        }
    }

    pub fn event(&self, e: &ServiceEvent) {
        let now = Instant::now();
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        match e {
            ServiceEvent::Started {
                email,
                kind,
                items_before,
                bytes_before,
            } => {
                let bar = self
                    .multi
                    .insert_before(&self.batch, ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("  {prefix} {wide_msg}").expect("a template"),
                );
                bar.set_prefix(email.clone());
                let p = UserProgress::new(now, (*items_before, *bytes_before));
                bar.set_message(format!("{kind} sync: {}", p.message(now)));
                users.insert(email.to_lowercase(), (p, bar));
                if self.plain {
                    self.say(&format!("{email}: {kind} sync started"));
                }
            }
            ServiceEvent::Progress { email, progress } => {
                let Some((p, bar)) = users.get_mut(&email.to_lowercase()) else {
                    return;
                };
                match progress {
                    SyncProgress::Planned { items, bytes } => p.total = Some((*items, *bytes)),
                    SyncProgress::Copied { items, bytes } => {
                        p.done = (p.done.0 + items, p.done.1 + bytes);
                        p.now = (p.now.0 + items, p.now.1 + bytes);
                        p.throttled = None;
                    }
                    SyncProgress::Throttled { wait, by } => {
                        p.throttled = Some((now + *wait, by.to_string()));
                        let quiet = p
                            .logged_throttle
                            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(10));
                        if self.plain && !quiet {
                            p.logged_throttle = Some(now);
                            self.say(&format!(
                                "{email}: throttled by {by}, waiting {}",
                                short(*wait)
                            ));
                        }
                    }
                }
                bar.set_message(p.message(now));
            }
            ServiceEvent::Finished { email, outcome, .. } => {
                if let Some((_, bar)) = users.remove(&email.to_lowercase()) {
                    bar.finish_and_clear();
                    self.multi.remove(&bar);
                }
                let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
                counts.0 += 1;
                if matches!(outcome, SyncOutcome::Failed(_)) {
                    counts.1 += 1;
                }
                if let Some(line) = super::run::finished_line(e) {
                    self.say(&line);
                }
            }
        }
        let counts = *self.counts.lock().unwrap_or_else(|e| e.into_inner());
        self.batch.set_message(format!(
            "{} running, {} syncs ended ({} failed)",
            users.len(),
            counts.0,
            counts.1
        ));
    }

    pub fn finish(&self) {
        self.batch.finish_and_clear();
        let _ = self.multi.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_line_says_how_far_how_fast_and_what_it_waits_for() {
        let t0 = Instant::now();
        let mut p = UserProgress::new(t0, (10, 1_048_576));
        assert_eq!(p.message(t0), "10 items, listing, 1.0 MiB, 0.0 msgs/s");
        p.total = Some((110, 0));
        p.done = (60, 2 * 1_048_576);
        p.now = (50, 1_048_576);
        let at = t0 + Duration::from_secs(10);
        assert_eq!(p.message(at), "60/110 items, 2.0 MiB, 5.0 msgs/s, ETA 10s");
        p.throttled = Some((at + Duration::from_secs(30), "the source".into()));
        assert_eq!(
            p.message(at),
            "60/110 items, 2.0 MiB, 5.0 msgs/s, ETA 10s, throttled by the source, waiting 30s"
        );
        // Over once the wait has passed.
        assert!(
            !p.message(at + Duration::from_secs(31))
                .contains("throttled")
        );
    }

    #[test]
    fn durations_are_short() {
        assert_eq!(short(Duration::from_millis(200)), "1s");
        assert_eq!(short(Duration::from_secs(185)), "3m05s");
        assert_eq!(short(Duration::from_secs(7800)), "2h10m");
    }
}
