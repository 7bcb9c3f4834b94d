//! fake-imap: an in-process IMAP server for tests, rehearsals and benchmarks.
//!
//! ```no_run
//! # async fn demo() -> Result<(), fake_imap::Error> {
//! use fake_imap::{AdminMode, FakeImapServer};
//! let server = FakeImapServer::new()
//!     .mode(AdminMode::Dovecot)
//!     .admin("mailadmin", "P@ssw0rd")
//!     .user("terry.adams", "1091990")
//!     .generated("terry.adams", "INBOX", 20)
//!     .start()
//!     .await?;
//! println!("IMAP on {}", server.imap_addr());
//! // Dropping `server` shuts it down.
//! # Ok(()) }
//! ```
//!
//! Layout (tokio mini-redis style): `server` accepts, `connection` frames bytes, `session` runs
//! the state machine, `cmd/` holds the commands, `store` the mail; `admin` decides who may log
//! in as whom, `faults` scripts misbehaviour, `generate` makes realistic mail.

pub mod admin;
pub mod cmd;
pub mod config;
pub mod connection;
pub mod envelope;
pub mod error;
pub mod extended;
pub mod faults;
pub mod generate;
pub mod message;
pub mod mime;
pub mod server;
pub mod session;
pub mod store;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use chrono::DateTime;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

pub use admin::AdminMode;
pub use config::Config;
pub use error::Error;
pub use faults::{Fault, FaultAction, Quirks};
pub use server::Stats;
pub use store::Store;
pub use tls::TlsVersions;

use crate::admin::{Credentials, Directory, UserAccount};
use crate::config::UserSection;
use crate::server::Shared;

/// Builds a fake server. Everything is also expressible in the TOML [`Config`].
#[derive(Clone, Debug, Default)]
pub struct FakeImapServer {
    config: Config,
}

impl FakeImapServer {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn from_config(config: Config) -> Self {
        Self { config }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn mode(mut self, mode: AdminMode) -> Self {
        self.config.server.mode = mode;
        self
    }

    pub fn master_separator(mut self, sep: char) -> Self {
        self.config.server.master_separator = sep.to_string();
        self
    }

    pub fn delimiter(mut self, delimiter: char) -> Self {
        self.config.server.delimiter = delimiter.to_string();
        self
    }

    pub fn shared_root(mut self, root: &str) -> Self {
        self.config.server.shared_root = root.to_string();
        self
    }

    pub fn implicit_tls(mut self, on: bool) -> Self {
        self.config.server.implicit_tls = on;
        self
    }

    pub fn starttls(mut self, on: bool) -> Self {
        self.config.server.starttls = on;
        self
    }

    pub fn login_disabled_until_tls(mut self, on: bool) -> Self {
        self.config.server.login_disabled_until_tls = on;
        self
    }

    pub fn tls_versions(mut self, versions: TlsVersions) -> Self {
        self.config.server.tls_versions = versions;
        self
    }

    pub fn seed(mut self, seed: u64) -> Self {
        self.config.server.seed = seed;
        self
    }

    pub fn max_literal(mut self, bytes: u64) -> Self {
        self.config.server.max_literal = bytes;
        self
    }

    pub fn admin(mut self, name: &str, password: &str) -> Self {
        self.config.admins.push(Credentials {
            name: name.into(),
            password: password.into(),
        });
        self
    }

    pub fn user(self, name: &str, password: &str) -> Self {
        self.user_in_domain(name, password, None)
    }

    pub fn user_in_domain(mut self, name: &str, password: &str, domain: Option<&str>) -> Self {
        self.config.users.push(UserSection {
            name: name.into(),
            password: password.into(),
            domain: domain.map(str::to_string),
            folders: Default::default(),
            noselect: Vec::new(),
            special_use: Default::default(),
            messages: Vec::new(),
        });
        self
    }

    /// Generated messages for a user's folder (the user must be added first).
    pub fn generated(mut self, user: &str, folder: &str, count: usize) -> Self {
        if let Some(u) = self.config.users.iter_mut().find(|u| u.name == user) {
            *u.folders.entry(folder.to_string()).or_default() += count;
        }
        self
    }

    pub fn generator(mut self, generator: generate::GeneratorConfig) -> Self {
        self.config.generator = generator;
        self
    }

    pub fn fault(mut self, fault: Fault) -> Self {
        self.config.faults.push(fault);
        self
    }

    /// Which extensions the server offers (all by default).
    pub fn extensions(mut self, extensions: config::Extensions) -> Self {
        self.config.extensions = extensions;
        self
    }

    /// Gives a user's folder a SPECIAL-USE attribute (`"\\Sent"`, ...).
    pub fn special_use(mut self, user: &str, folder: &str, attribute: &str) -> Self {
        if let Some(u) = self.config.users.iter_mut().find(|u| u.name == user) {
            u.special_use
                .insert(folder.to_string(), attribute.to_string());
        }
        self
    }

    pub fn quirks(mut self, quirks: Quirks) -> Self {
        self.config.quirks = quirks;
        self
    }

    /// Binds 127.0.0.1:0 (and a second port for implicit TLS if asked), fills the store and
    /// starts serving. Must run inside a tokio runtime.
    pub async fn start(self) -> Result<ServerHandle, Error> {
        let config = self.config;
        config.validate()?;
        let delimiter = config.delimiter()?;
        let seed = config.server.seed;
        // UIDVALIDITY values depend on the seed, so a seed replays the same numbers.
        let store = Store::new(delimiter, 1000 + (seed % 1000) as u32 * 1000);
        fill_store(&store, &config)?;

        let certs = tls::CertBundle::generate()?;
        let tls = TlsAcceptor::from(certs.server_config(config.server.tls_versions)?);
        let directory = Directory::new(
            config.server.mode,
            config.separator()?,
            config.server.shared_root.clone(),
            config
                .users
                .iter()
                .map(|u| UserAccount {
                    name: u.name.clone(),
                    password: u.password.clone(),
                    domain: u.domain.clone(),
                })
                .collect(),
            config.admins.clone(),
        );
        let shared = Arc::new(Shared {
            store: store.clone(),
            directory,
            faults: faults::Faults::new(config.faults.clone()),
            quirks: config.quirks.clone(),
            extensions: config.extensions.clone(),
            tls,
            starttls: config.server.starttls,
            login_disabled_until_tls: config.server.login_disabled_until_tls,
            max_literal: config.server.max_literal as u32,
            seed,
            stats: Stats::default(),
        });

        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let (listener, imap_addr) = server::bind().await?;
        tokio::spawn(server::accept_loop(
            listener,
            shared.clone(),
            false,
            shutdown_rx.clone(),
        ));
        let imaps_addr = if config.server.implicit_tls {
            let (listener, addr) = server::bind().await?;
            tokio::spawn(server::accept_loop(
                listener,
                shared.clone(),
                true,
                shutdown_rx,
            ));
            Some(addr)
        } else {
            None
        };
        Ok(ServerHandle {
            imap_addr,
            imaps_addr,
            ca_pem: certs.ca_pem.clone(),
            ca_der: certs.ca_der.clone(),
            shared,
            shutdown: shutdown_tx,
        })
    }
}

fn fill_store(store: &Store, config: &Config) -> Result<(), Error> {
    let default_date = DateTime::parse_from_rfc3339("2020-01-01T00:00:00Z").expect("valid");
    let users: Vec<&str> = config.users.iter().map(|u| u.name.as_str()).collect();
    // Courier admins own a mailbox too (their own INBOX beside the shared tree).
    let admins = config.admins.iter().map(|a| a.name.as_str());
    for name in users.iter().copied().chain(admins) {
        store.add_user(name);
    }
    for user in &config.users {
        for folder in &user.noselect {
            store.create_noselect_folder(&user.name, folder)?;
        }
        for (folder, &count) in &user.folders {
            if !folder.eq_ignore_ascii_case("INBOX") {
                match store.create_folder(&user.name, folder) {
                    Ok(()) | Err(Error::FolderExists(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            let messages = generate::generate(
                &config.generator,
                config.server.seed,
                &user.name,
                folder,
                count,
            );
            for m in messages {
                store.append(&user.name, folder, m.raw, &m.flags, m.internal_date)?;
            }
        }
        for m in &user.messages {
            let raw = std::fs::read(&m.eml).map_err(|e| Error::Config {
                path: m.eml.clone(),
                message: e.to_string(),
            })?;
            let date = match &m.internal_date {
                Some(d) => DateTime::parse_from_rfc3339(d).map_err(|e| {
                    Error::Invalid(format!(
                        "users[{}].messages: internal_date {d:?}: {e}",
                        user.name
                    ))
                })?,
                None => default_date,
            };
            if store.folder_info(&user.name, &m.folder).is_err() {
                store.create_folder(&user.name, &m.folder)?;
            }
            let flags: Vec<&str> = m.flags.iter().map(String::as_str).collect();
            store.append(&user.name, &m.folder, raw, &flags, date)?;
        }
        for (folder, attribute) in &user.special_use {
            if store.folder_info(&user.name, folder).is_err() {
                store.create_folder(&user.name, folder)?;
            }
            store.set_special_use(&user.name, folder, Some(attribute))?;
        }
    }
    Ok(())
}

/// A running server. Dropping it shuts the server down: listeners close and every session
/// gets `* BYE`.
pub struct ServerHandle {
    imap_addr: SocketAddr,
    imaps_addr: Option<SocketAddr>,
    ca_pem: String,
    ca_der: rustls::pki_types::CertificateDer<'static>,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
}

impl ServerHandle {
    /// The plain (and STARTTLS) listener.
    pub fn imap_addr(&self) -> SocketAddr {
        self.imap_addr
    }

    /// The implicit-TLS listener, if enabled.
    pub fn imaps_addr(&self) -> Option<SocketAddr> {
        self.imaps_addr
    }

    /// The CA that signed the server certificate, PEM-encoded.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    pub fn ca_der(&self) -> &rustls::pki_types::CertificateDer<'static> {
        &self.ca_der
    }

    /// A rustls client config that trusts this server's CA.
    pub fn client_tls_config(&self) -> Arc<rustls::ClientConfig> {
        tls::client_config_trusting(&self.ca_der)
    }

    /// The mail store: add or inspect mail while the server runs.
    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }

    /// How often each configured fault has fired.
    pub fn faults_fired(&self) -> Vec<u32> {
        self.shared.faults.fired_counts()
    }

    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}
