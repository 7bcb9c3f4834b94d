//! Real IMAP servers as throw-away test fixtures: Dovecot, Cyrus and Courier from Debian's
//! packages (installed by `scripts/install-real-servers.sh`), each started as its own process
//! group on 127.0.0.1 with free ports, its own configuration, data and TLS files in a temporary
//! folder, and stopped when its handle is dropped.
//!
//! ```no_run
//! # async fn f() -> Result<(), real_servers::Error> {
//! use real_servers::{Message, RealServer};
//! let server = RealServer::dovecot().user("alice", "alicepw").admin("admin", "adminpw").start().await?;
//! server.seed("alice", &[Message::new("INBOX", b"Subject: hi\r\n\r\nbody\r\n".to_vec())]).await?;
//! # Ok(()) }
//! ```
//!
//! Every server gets a certificate made the common way (`openssl req -x509`, so it is marked
//! CA:TRUE), and mail is seeded through the server's own IMAP (APPEND), never its files.

mod client;
mod courier;
mod cyrus;
mod dovecot;
mod process;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use client::{Message, Stored};

/// The fixtures' IMAP client, for any server on 127.0.0.1 (a fake one too): seeding by APPEND
/// and reading a mailbox back, with `kind`'s folder naming.
pub mod over_imap {
    pub use crate::client::{mailbox, seed, set_flags};
}
use process::Group;

/// Where `scripts/install-real-servers.sh` extracts the packages that conflict with Dovecot.
pub const DEFAULT_ROOT: &str = "/opt/mailmig-real";

/// Set (to anything but `0`) by the test command: a missing server is then an error, not a
/// skip.
pub const REQUIRE_ENV: &str = "MAILMIG_REQUIRE_REAL_SERVERS";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server is not installed here (or the fixture cannot run it).
    #[error("{0} is not available here: {1}")]
    Unavailable(Kind, String),
    #[error("{kind} did not start: {message}")]
    Start { kind: Kind, message: String },
    #[error("IMAP to {kind}: {message}")]
    Imap { kind: Kind, message: String },
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// Which real server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Dovecot,
    Cyrus,
    Courier,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Dovecot => "Dovecot",
            Kind::Cyrus => "Cyrus",
            Kind::Courier => "Courier",
        })
    }
}

impl Kind {
    /// The prefix of a user's own folders as the user sees them (`INBOX.` on Cyrus and
    /// Courier).
    pub fn personal_prefix(self) -> &'static str {
        match self {
            Kind::Dovecot => "",
            Kind::Cyrus | Kind::Courier => "INBOX.",
        }
    }

    /// The hierarchy delimiter of the fixture's configuration.
    pub fn delimiter(self) -> char {
        '.'
    }

    /// A `/`-separated folder path as this server names it for the user (decoded).
    pub fn folder_name(self, path: &str) -> String {
        if path.eq_ignore_ascii_case("INBOX") {
            return "INBOX".into();
        }
        format!(
            "{}{}",
            self.personal_prefix(),
            path.replace('/', &self.delimiter().to_string())
        )
    }
}

/// The folder the packages live in (`MAILMIG_REAL_SERVERS_DIR`, default [`DEFAULT_ROOT`]).
pub fn root() -> PathBuf {
    std::env::var_os("MAILMIG_REAL_SERVERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT))
}

/// Whether a missing server must fail the test (CI) rather than skip it.
pub fn required() -> bool {
    std::env::var(REQUIRE_ENV).is_ok_and(|v| v != "0" && !v.is_empty())
}

/// Starts a server for a test, or, when it cannot run on this machine and the test command
/// does not require it, says so loudly and returns `None`.
pub async fn start_or_skip(builder: Builder) -> Option<RealServer> {
    match builder.start().await {
        Ok(s) => Some(s),
        Err(Error::Unavailable(kind, why)) if !required() => {
            eprintln!(
                "\n*** SKIPPED: {kind} is not available ({why}). Run scripts/install-real-servers.sh \
                 as root; scripts/test.sh does, and then requires it. ***\n"
            );
            None
        }
        Err(e) => panic!("{e}"),
    }
}

/// What a server is to be started with.
#[derive(Clone, Debug)]
pub struct Builder {
    kind: Kind,
    users: Vec<(String, String)>,
    admin: Option<(String, String)>,
    master_separator: char,
    dovecot_settings: String,
}

/// A running server; dropped, it stops.
pub struct RealServer {
    kind: Kind,
    imap_port: u16,
    imaps_port: u16,
    ca_file: PathBuf,
    users: Vec<(String, String)>,
    admin: Option<(String, String)>,
    master_separator: char,
    // Declared before `dir`: the processes stop before their files go.
    _group: Group,
    dir: tempfile::TempDir,
}

impl RealServer {
    pub fn dovecot() -> Builder {
        Builder::new(Kind::Dovecot)
    }

    pub fn cyrus() -> Builder {
        Builder::new(Kind::Cyrus)
    }

    pub fn courier() -> Builder {
        Builder::new(Kind::Courier)
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The plain port (STARTTLS offered).
    pub fn imap_port(&self) -> u16 {
        self.imap_port
    }

    /// The implicit-TLS port.
    pub fn imaps_port(&self) -> u16 {
        self.imaps_port
    }

    /// The server's self-signed certificate (PEM), to give as a CA file.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// The fixture's folder (configuration, data, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn admin(&self) -> Option<(&str, &str)> {
        self.admin.as_ref().map(|(u, p)| (u.as_str(), p.as_str()))
    }

    pub fn master_separator(&self) -> char {
        self.master_separator
    }

    fn password(&self, user: &str) -> Result<&str, Error> {
        self.users
            .iter()
            .find(|(u, _)| u == user)
            .map(|(_, p)| p.as_str())
            .ok_or_else(|| Error::Imap {
                kind: self.kind,
                message: format!("no user {user} in the fixture"),
            })
    }

    /// Appends messages as the user (creating their folders), in order.
    pub async fn seed(&self, user: &str, messages: &[Message]) -> Result<(), Error> {
        let password = self.password(user)?;
        client::seed(self.kind, self.imap_port, user, password, messages).await
    }

    /// Replaces a message's flags, found by folder and position (0 = oldest).
    pub async fn set_flags(
        &self,
        user: &str,
        folder: &str,
        index: usize,
        flags: &[&str],
    ) -> Result<(), Error> {
        let password = self.password(user)?;
        client::set_flags(
            self.kind,
            self.imap_port,
            user,
            password,
            folder,
            index,
            flags,
        )
        .await
    }

    /// Every message of the user's own folders, as the user sees them.
    pub async fn mailbox(&self, user: &str) -> Result<Vec<Stored>, Error> {
        let password = self.password(user)?;
        client::mailbox(self.kind, self.imap_port, user, password).await
    }

    /// The server's log so far (for a failing test's message).
    pub fn log(&self) -> String {
        process::read_logs(self.dir.path())
    }
}

impl Builder {
    fn new(kind: Kind) -> Self {
        Self {
            kind,
            users: Vec::new(),
            admin: None,
            master_separator: '*',
            dovecot_settings: String::new(),
        }
    }

    pub fn user(mut self, name: &str, password: &str) -> Self {
        self.users.push((name.into(), password.into()));
        self
    }

    /// The admin: Dovecot's master user, Cyrus's admin (who may act as others by authzid),
    /// Courier's member of `administrators` (who reads `#shared.<user>`).
    pub fn admin(mut self, name: &str, password: &str) -> Self {
        self.admin = Some((name.into(), password.into()));
        self
    }

    /// Dovecot's master-user separator (`*` by default).
    pub fn master_separator(mut self, separator: char) -> Self {
        self.master_separator = separator;
        self
    }

    /// Dovecot: settings appended to the configuration (they override the fixture's own,
    /// e.g. `mail_location = mdbox:~/mdbox` and `mail_fsync = never` for a benchmark target).
    pub fn dovecot_settings(mut self, settings: &str) -> Self {
        self.dovecot_settings.push_str(settings);
        self.dovecot_settings.push('\n');
        self
    }

    pub async fn start(self) -> Result<RealServer, Error> {
        let kind = self.kind;
        process::check_can_run(kind)?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("mailmig-{}-", kind.to_string().to_lowercase()))
            .tempdir()?;
        process::open_up(dir.path())?;
        let cert = process::self_signed_certificate(dir.path(), kind)?;
        let (imap_port, imaps_port) = (process::free_port()?, process::free_port()?);
        let spec = Spec {
            dir: dir.path(),
            cert: &cert,
            imap_port,
            imaps_port,
            users: &self.users,
            admin: self.admin.as_ref(),
            master_separator: self.master_separator,
            dovecot_settings: &self.dovecot_settings,
        };
        let group = match kind {
            Kind::Dovecot => dovecot::start(&spec)?,
            Kind::Cyrus => cyrus::start(&spec)?,
            Kind::Courier => courier::start(&spec)?,
        };
        let server = RealServer {
            kind,
            imap_port,
            imaps_port,
            ca_file: cert.cert,
            users: self.users,
            admin: self.admin,
            master_separator: self.master_separator,
            _group: group,
            dir,
        };
        for port in [imap_port, imaps_port] {
            if let Err(message) = process::wait_for_port(port, Duration::from_secs(20)).await {
                return Err(Error::Start {
                    kind,
                    message: format!("{message}\n{}", server.log()),
                });
            }
        }
        if kind == Kind::Cyrus {
            cyrus::create_mailboxes(&server).await?;
        }
        Ok(server)
    }
}

/// What a server's launcher needs.
struct Spec<'a> {
    dir: &'a Path,
    cert: &'a process::Certificate,
    imap_port: u16,
    imaps_port: u16,
    users: &'a [(String, String)],
    admin: Option<&'a (String, String)>,
    master_separator: char,
    dovecot_settings: &'a str,
}

impl Spec<'_> {
    /// Every account: the users, then the admin.
    fn accounts(&self) -> Vec<(String, String)> {
        let mut all = self.users.to_vec();
        all.extend(self.admin.cloned());
        all
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}
