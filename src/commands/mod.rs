//! One module per command family, each with its clap definition and its execution together
//! (as cargo's commands are). They parse nothing by hand and decide nothing themselves: they
//! call a library and print what it said, as text for people or as JSON.

pub mod batch;
pub mod csv;
pub mod endpoint;
pub mod fake_exchange;
pub mod fake_imap;
pub mod fake_target;
pub mod run;
pub mod scenario;
pub mod target;
pub mod test_server;
pub mod user;

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use clap::ValueEnum;
use engine::Engine;
use engine::clock::SystemClock;
use engine::imap::{Authentication, Security};

/// Exit codes, as `--help` lists them.
pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_ROW_ERRORS: u8 = 3;

/// Opens the state a state directory holds (commands that read or change what exists).
pub fn engine(state_dir: &Path) -> anyhow::Result<Arc<Engine>> {
    Ok(Arc::new(Engine::open_existing(
        state_dir,
        Arc::new(SystemClock),
    )?))
}

/// Opens the state of a state directory, creating it when there is none yet: the commands that
/// set something up (`target set`, `endpoint new`, `batch new`).
pub fn engine_creating(state_dir: &Path) -> anyhow::Result<Arc<Engine>> {
    Ok(Arc::new(
        Engine::open(state_dir, Arc::new(SystemClock))
            .with_context(|| format!("opening the state directory {}", state_dir.display()))?,
    ))
}

/// `--security`: how the connection is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SecurityArg {
    /// Plain IMAP, nothing encrypted (usually port 143).
    None,
    /// Implicit TLS from the first byte (usually port 993).
    Ssl,
    /// STARTTLS on a plain connection (usually port 143).
    Tls,
}

impl From<SecurityArg> for Security {
    fn from(s: SecurityArg) -> Self {
        match s {
            SecurityArg::None => Security::None,
            SecurityArg::Ssl => Security::Ssl,
            SecurityArg::Tls => Security::Tls,
        }
    }
}

/// `--authentication`: how the source is logged in to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AuthenticationArg {
    /// LOGIN with the CSV's UserName as given (any admin form passes through).
    Basic,
    /// AUTHENTICATE PLAIN; a UserName `user<SEP>admin` becomes authzid = user, authcid =
    /// admin.
    Plain,
}

impl From<AuthenticationArg> for Authentication {
    fn from(a: AuthenticationArg) -> Self {
        match a {
            AuthenticationArg::Basic => Authentication::Basic,
            AuthenticationArg::Plain => Authentication::Plain,
        }
    }
}

/// A comma-separated list (`--exclude-folders a,b`), empty parts dropped.
pub fn comma_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(|x| x.trim().to_string())
        .filter(|x| !x.is_empty())
        .collect()
}

/// An RFC 3339 time argument.
pub fn rfc3339(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|d| d.to_utc())
        .map_err(|e| format!("{s:?} is not an RFC 3339 time (e.g. 2026-12-01T18:00:00Z): {e}"))
}

/// Waits for SIGINT or SIGTERM.
pub async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}
