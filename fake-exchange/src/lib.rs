//! fake-exchange: an on-premises Exchange organisation for tests and rehearsals of a cutover
//! migration. Three faces over one organisation: Autodiscover (POX) and EWS over HTTPS, the
//! directory over LDAP (and LDAPS), plus a plain-HTTP listener for Autodiscover's redirect step.
//!
//! ```no_run
//! # async fn demo() -> Result<(), fake_exchange::Error> {
//! let config = fake_exchange::Config::from_file("examples/fake-exchange.toml".as_ref())?;
//! let exchange = fake_exchange::FakeExchange::start(config).await?;
//! println!("EWS at {}", exchange.ews_url());
//! for line in exchange.connect_to() {
//!     println!("--connect-to {line}");
//! }
//! // Dropping `exchange` stops every listener.
//! # Ok(()) }
//! ```
//!
//! Layout (tokio mini-redis style): `server` accepts HTTP(S) and routes, `autodiscover` and
//! `ews/` (one module per operation family) answer, `ldap` serves the directory, `org` holds the
//! organisation (directory, rights, mailboxes), `generate` makes its content, `faults` scripts
//! misbehaviour. Never depends on the engine (see ARCHITECTURE.md).

pub mod autodiscover;
pub mod config;
pub mod control;
pub mod error;
pub mod ews;
pub mod faults;
pub mod generate;
pub mod ldap;
pub mod org;
pub mod server;
pub mod tls;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

pub use config::{CertificateKind, Config, RecipientKind};
pub use error::Error;
pub use org::{Organisation, Recipient};

use crate::config::ServerRole;
use crate::faults::EwsCounters;
use crate::server::Shared;

/// Starts the organisation's listeners on 127.0.0.1 ports chosen by the system.
pub struct FakeExchange;

impl FakeExchange {
    pub async fn start(config: Config) -> Result<RunningExchange, Error> {
        let org = Organisation::from_config(&config)?;
        let (names, certificate) = {
            let state = org.lock();
            let mut names: Vec<String> = Vec::new();
            for d in &state.accepted_domains {
                names.push(d.clone());
                names.push(format!("autodiscover.{d}"));
            }
            names.extend(state.servers.iter().map(|s| s.name.clone()));
            names.dedup();
            (names, state.certificate)
        };
        {
            let mut state = org.lock();
            state.store_unavailable = config.faults.ews.store_unavailable;
            for m in &config.faults.ews.moving {
                if let Some(mb) = state.mailbox_mut(m) {
                    mb.moving = true;
                }
            }
        }
        for b in &config.faults.ews.broken_items {
            let ids = org.item_ids(&b.mailbox, &b.folder)?;
            let id = ids.get(b.index).ok_or_else(|| {
                Error::Config(format!(
                    "faults.ews.broken_items: {} has no item {} in {}",
                    b.mailbox, b.index, b.folder
                ))
            })?;
            org.break_item(&b.mailbox, *id, b.code.as_str())?;
        }
        let certs = tls::CertBundle::generate(certificate, &names)?;
        let acceptor = TlsAcceptor::from(certs.server_config()?);
        let shared = Arc::new(Shared {
            org: org.clone(),
            faults: config.faults.clone(),
            ews_counters: EwsCounters::default(),
            in_flight: Mutex::new(Default::default()),
        });
        let (stop_tx, stop_rx) = watch::channel(false);
        let https = TcpListener::bind("127.0.0.1:0").await?;
        let http = TcpListener::bind("127.0.0.1:0").await?;
        let https_addr = https.local_addr()?;
        let http_addr = http.local_addr()?;
        tokio::spawn(server::serve_http(
            https,
            Some(acceptor.clone()),
            shared.clone(),
            stop_rx.clone(),
        ));
        tokio::spawn(server::serve_http(
            http,
            None,
            shared.clone(),
            stop_rx.clone(),
        ));
        let mut unreachable_ldap_port = None;
        let (ldap_addr, ldaps_addr) = if config.faults.ldap.unreachable {
            // A port that was free a moment ago: connections to it are refused.
            let probe = TcpListener::bind("127.0.0.1:0").await?;
            unreachable_ldap_port = Some(probe.local_addr()?.port());
            (None, None)
        } else {
            let ldap = TcpListener::bind("127.0.0.1:0").await?;
            let ldaps = TcpListener::bind("127.0.0.1:0").await?;
            let addrs = (Some(ldap.local_addr()?), Some(ldaps.local_addr()?));
            tokio::spawn(ldap::serve(ldap, None, shared.clone(), stop_rx.clone()));
            tokio::spawn(ldap::serve(ldaps, Some(acceptor), shared.clone(), stop_rx));
            addrs
        };
        Ok(RunningExchange {
            org,
            shared,
            ca_pem: certs.ca_pem,
            https_addr,
            http_addr,
            ldap_addr,
            ldaps_addr,
            unreachable_ldap_port,
            stop: stop_tx,
        })
    }
}

/// A running organisation; dropping it stops the listeners.
pub struct RunningExchange {
    org: Organisation,
    shared: Arc<Shared>,
    ca_pem: String,
    https_addr: SocketAddr,
    http_addr: SocketAddr,
    ldap_addr: Option<SocketAddr>,
    ldaps_addr: Option<SocketAddr>,
    unreachable_ldap_port: Option<u16>,
    stop: watch::Sender<bool>,
}

impl RunningExchange {
    /// The handle to change the organisation while it runs (deliver mail, mark read, move a
    /// mailbox, change a password ...).
    pub fn org(&self) -> &Organisation {
        &self.org
    }

    /// What a client trusts: the CA's certificate (PEM), or the self-signed one.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    pub fn https_addr(&self) -> SocketAddr {
        self.https_addr
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// None when the directory is unreachable by configuration.
    pub fn ldap_addr(&self) -> Option<SocketAddr> {
        self.ldap_addr
    }

    pub fn ldaps_addr(&self) -> Option<SocketAddr> {
        self.ldaps_addr
    }

    pub fn autodiscover_url(&self) -> String {
        format!("https://{}", self.https_addr)
    }

    pub fn ews_url(&self) -> String {
        format!("https://{}/EWS/Exchange.asmx", self.https_addr)
    }

    /// `ldap://127.0.0.1:PORT`; for an unreachable directory, a port where nothing listens.
    pub fn ldap_url(&self) -> String {
        match self.ldap_addr {
            Some(a) => format!("ldap://{a}"),
            None => format!("ldap://127.0.0.1:{}", self.unreachable_port()),
        }
    }

    fn unreachable_port(&self) -> u16 {
        self.unreachable_ldap_port.unwrap_or(9)
    }

    /// EWS requests served so far (faults included).
    pub fn ews_requests(&self) -> u64 {
        self.shared.ews_counters.requests()
    }

    /// Item changes SyncFolderItems has answered so far: what a client's listings cost.
    pub fn ews_item_changes(&self) -> u64 {
        self.shared.ews_counters.item_changes()
    }

    /// One `HOST:PORT:127.0.0.1:PORT` (curl's `--connect-to`) per name the organisation uses:
    /// each accepted domain and its `autodiscover.` name on 443 (and 80 for the redirect), the
    /// EWS servers on 443, the directory servers on 389 and 636.
    pub fn connect_to(&self) -> Vec<String> {
        let state = self.org.lock();
        let https = self.https_addr.port();
        let http = self.http_addr.port();
        let mut out = Vec::new();
        for d in &state.accepted_domains {
            out.push(format!("{d}:443:127.0.0.1:{https}"));
            out.push(format!("autodiscover.{d}:443:127.0.0.1:{https}"));
            out.push(format!("autodiscover.{d}:80:127.0.0.1:{http}"));
        }
        for s in &state.servers {
            if s.roles.contains(&ServerRole::Ews) {
                out.push(format!("{}:443:127.0.0.1:{https}", s.name));
            }
            if s.roles.contains(&ServerRole::Ldap) {
                let ldap = self.ldap_addr.map_or(self.unreachable_port(), |a| a.port());
                out.push(format!("{}:389:127.0.0.1:{ldap}", s.name));
                if let Some(a) = self.ldaps_addr {
                    out.push(format!("{}:636:127.0.0.1:{}", s.name, a.port()));
                }
            }
        }
        out.dedup();
        out
    }
}

impl Drop for RunningExchange {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
