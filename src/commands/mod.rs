//! One module per command family, each with its clap definition and its execution together
//! (as cargo's commands are). They parse nothing by hand and decide nothing themselves: they
//! call a library and print what it said, as text for people or as JSON.

pub mod batch;
pub mod csv;
pub mod endpoint;
pub mod fake_exchange;
pub mod fake_imap;
pub mod fake_target;
pub mod progress;
pub mod rehearse;
pub mod run;
pub mod scenario;
pub mod target;
pub mod test_server;
pub mod user;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, ValueEnum};
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

/// Where a password comes from, wherever one is taken.
#[derive(Args, Debug, Default, Clone)]
pub struct PasswordArgs {
    /// The password. Visible to other local users on the command line: prefer
    /// --password-file or --password-env.
    #[arg(long, conflicts_with_all = ["password_file", "password_env"])]
    pub password: Option<String>,
    /// A file whose first line is the password (keep it readable by you only).
    #[arg(long, value_name = "FILE", conflicts_with = "password_env")]
    pub password_file: Option<PathBuf>,
    /// The name of an environment variable that holds the password.
    #[arg(long, value_name = "VAR", conflicts_with = "password_prompt")]
    pub password_env: Option<String>,
    /// Ask for the password on the terminal, not echoed (also asked, without this flag, where
    /// a password is required and none was given on a terminal).
    #[arg(long, conflicts_with_all = ["password", "password_file"])]
    pub password_prompt: bool,
}

impl PasswordArgs {
    /// The password given, if any; a file or variable that cannot be read is an error that
    /// names it (never the password). `prompt` is what the terminal prompt asks for.
    pub fn read(&self, prompt: &str) -> anyhow::Result<Option<String>> {
        if self.password_prompt {
            return ask(prompt).map(Some);
        }
        self.given()
    }

    /// The password given, or asked for on a terminal when none was: for a command that cannot
    /// go on without one. `None` only off a terminal.
    pub fn required(&self, prompt: &str) -> anyhow::Result<Option<String>> {
        match self.read(prompt)? {
            Some(p) => Ok(Some(p)),
            None if std::io::IsTerminal::is_terminal(&std::io::stdin()) => ask(prompt).map(Some),
            None => Ok(None),
        }
    }

    fn given(&self) -> anyhow::Result<Option<String>> {
        if let Some(p) = &self.password {
            return Ok(Some(p.clone()));
        }
        if let Some(path) = &self.password_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--password-file {}", path.display()))?;
            let line = text.lines().next().unwrap_or("").trim_end_matches('\r');
            if line.is_empty() {
                anyhow::bail!("--password-file {}: the file is empty", path.display());
            }
            return Ok(Some(line.to_string()));
        }
        if let Some(var) = &self.password_env {
            return match std::env::var(var) {
                Ok(v) if !v.is_empty() => Ok(Some(v)),
                _ => anyhow::bail!("--password-env {var}: the variable is not set (or empty)"),
            };
        }
        Ok(None)
    }
}

/// Asks on the terminal without echo; an empty answer is refused.
fn ask(prompt: &str) -> anyhow::Result<String> {
    let answer = rpassword::prompt_password(format!("{prompt}: ")).map_err(|e| {
        anyhow::anyhow!(
            "--password-prompt: cannot ask on a terminal ({e}); use --password-file FILE or --password-env VAR"
        )
    })?;
    if answer.is_empty() {
        anyhow::bail!("no password was typed");
    }
    Ok(answer)
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
