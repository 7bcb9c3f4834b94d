//! The on-premises Exchange side of a cutover: how the endpoint reaches the organisation
//! ([`ExchangeSettings`]), and the three protocols it speaks — Autodiscover (POX) to find the
//! servers, the directory over LDAP (Active Directory's attributes, paged like NSPI) and EWS for
//! content — over one HTTPS client ([`http`]) that honours the endpoint's `--connect-to` names.
//! cutover.md §1 explains why these protocols stand in for Outlook Anywhere.

pub mod autodiscover;
pub mod directory;
pub mod ews;
pub mod http;
mod ldap;
pub mod provision;
pub mod test;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// curl's `--connect-to HOST:PORT:ADDR:PORT`: a connection to HOST:PORT goes to ADDR:PORT
/// instead (TLS still checks the certificate against HOST). Tests and rehearsals point an
/// organisation's names at local listeners with it; no DNS is changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ConnectTo {
    pub host: String,
    pub port: u16,
    pub to_host: String,
    pub to_port: u16,
}

impl FromStr for ConnectTo {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("--connect-to \"{s}\": expected HOST:PORT:ADDR:PORT");
        let parts: Vec<&str> = s.split(':').collect();
        let [host, port, to_host, to_port] = parts.as_slice() else {
            return Err(bad());
        };
        let number = |p: &str| p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad);
        if host.is_empty() || to_host.is_empty() {
            return Err(bad());
        }
        Ok(Self {
            host: host.to_ascii_lowercase(),
            port: number(port)?,
            to_host: to_host.to_string(),
            to_port: number(to_port)?,
        })
    }
}

impl TryFrom<String> for ConnectTo {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<ConnectTo> for String {
    fn from(c: ConnectTo) -> String {
        c.to_string()
    }
}

impl fmt::Display for ConnectTo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}:{}",
            self.host, self.port, self.to_host, self.to_port
        )
    }
}

/// Where a connection to `host:port` really goes.
pub fn resolve<'a>(connect_to: &'a [ConnectTo], host: &'a str, port: u16) -> (&'a str, u16) {
    connect_to
        .iter()
        .find(|c| c.port == port && c.host.eq_ignore_ascii_case(host))
        .map_or((host, port), |c| (c.to_host.as_str(), c.to_port))
}

/// New-MigrationEndpoint's MailboxPermission: how the admin account opens the mailboxes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum MailboxPermission {
    /// Domain Admins (or ApplicationImpersonation): tried first when nothing is said.
    #[default]
    Admin,
    /// FullAccess or Receive As on every mailbox (or their database).
    FullAccess,
}

impl fmt::Display for MailboxPermission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MailboxPermission::Admin => "Admin",
            MailboxPermission::FullAccess => "FullAccess",
        })
    }
}

/// How EWS requests name the mailbox they act on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum EwsAccess {
    /// The `ExchangeImpersonation` header (the ApplicationImpersonation role).
    Impersonation,
    /// The mailbox named in each folder id (Domain Admins, FullAccess, Receive As).
    #[default]
    Delegate,
}

impl fmt::Display for EwsAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EwsAccess::Impersonation => "impersonation",
            EwsAccess::Delegate => "delegate access",
        })
    }
}

/// The admin account a cutover endpoint signs in as. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminCredential {
    /// An SMTP address, a UPN or `DOMAIN\user`.
    pub user_name: String,
    /// Stored with the endpoint in the owner-only state database; left out of what is shown.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub password: String,
}

impl fmt::Debug for AdminCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminCredential")
            .field("user_name", &self.user_name)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// An Exchange Outlook Anywhere endpoint's connection settings (what Test-MigrationServer-
/// Availability's ConnectionSettings hold, plus how to verify TLS and where names go).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExchangeSettings {
    /// The admin's address Autodiscover was asked for.
    pub email_address: String,
    pub credential: AdminCredential,
    pub use_auto_discover: bool,
    #[serde(default)]
    pub autodiscover_url: Option<String>,
    /// The mailbox server (Autodiscover's EXCH Server).
    pub exchange_server: String,
    /// The Outlook Anywhere proxy (EXPR Server).
    pub rpc_proxy_server: String,
    pub ews_url: String,
    /// Where the directory is read (LDAP on 389 unless `ldap_port` says otherwise).
    pub nspi_server: String,
    #[serde(default = "default_ldap_port")]
    pub ldap_port: u16,
    #[serde(default)]
    pub ldaps: bool,
    #[serde(default)]
    pub server_version: Option<String>,
    #[serde(default)]
    pub mailbox_permission: MailboxPermission,
    #[serde(default)]
    pub ews_access: EwsAccess,
    #[serde(default)]
    pub accept_untrusted_certificates: bool,
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub connect_to: Vec<ConnectTo>,
}

fn default_ldap_port() -> u16 {
    389
}

impl ExchangeSettings {
    /// The settings without the password, for what is printed or exported.
    pub fn redacted(&self) -> Self {
        let mut s = self.clone();
        s.credential.password.clear();
        s
    }
}

/// Why the organisation could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExchangeError {
    /// Nothing answered, or not in TLS: the connect message of cutover.md §1.
    #[error("{0}")]
    Unreachable(String),
    /// The certificate failed verification.
    #[error("{0}")]
    Certificate(String),
    /// The credentials were refused (HTTP 401, LDAP invalidCredentials).
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Autodiscover(String),
    #[error("{0}")]
    Directory(String),
    /// An EWS error code with its text (IMAP NO/BAD and EWS codes are data).
    #[error("{code}: {message}")]
    Ews { code: String, message: String },
    /// ErrorServerBusy's BackOffMilliseconds, HTTP 503, ErrorExceededConnectionCount.
    #[error("the server is busy: {message}")]
    Throttled {
        wait: std::time::Duration,
        message: String,
    },
    #[error("{0}")]
    Transient(String),
    #[error("{0}")]
    Invalid(String),
}

impl ExchangeError {
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ExchangeError::Throttled { .. } | ExchangeError::Transient(_)
        )
    }
}

/// cutover.md §1: what the service says when it cannot bind to the organisation.
pub const CONNECT_FAILED: &str = "We weren't able to connect to the remote server. Please verify that the migration endpoint settings are correct and your certificate is valid, and then try again.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_to_reads_curls_form_and_resolves_by_name_and_port() {
        let c: ConnectTo = "Mail.Contoso.com:443:127.0.0.1:40123".parse().unwrap();
        assert_eq!(c.to_string(), "mail.contoso.com:443:127.0.0.1:40123");
        let list = vec![c];
        assert_eq!(
            resolve(&list, "mail.contoso.com", 443),
            ("127.0.0.1", 40123)
        );
        assert_eq!(resolve(&list, "MAIL.contoso.com", 443).1, 40123);
        assert_eq!(
            resolve(&list, "mail.contoso.com", 80),
            ("mail.contoso.com", 80)
        );
        for bad in ["a:1:b", "a:x:b:2", ":1:b:2", "a:1:b:0", "a:1:b:2:3"] {
            let e = bad.parse::<ConnectTo>().unwrap_err();
            assert!(e.contains("HOST:PORT:ADDR:PORT") && e.contains(bad), "{e}");
        }
    }

    #[test]
    fn the_password_is_never_shown() {
        let c = AdminCredential {
            user_name: "administrator@contoso.com".into(),
            password: "S3cret!".into(),
        };
        assert!(!format!("{c:?}").contains("S3cret"));
        let s = ExchangeSettings {
            email_address: "administrator@contoso.com".into(),
            credential: c,
            use_auto_discover: true,
            autodiscover_url: None,
            exchange_server: "mail.contoso.com".into(),
            rpc_proxy_server: "mail.contoso.com".into(),
            ews_url: "https://mail.contoso.com/EWS/Exchange.asmx".into(),
            nspi_server: "dc01.contoso.com".into(),
            ldap_port: 389,
            ldaps: false,
            server_version: None,
            mailbox_permission: MailboxPermission::Admin,
            ews_access: EwsAccess::Delegate,
            accept_untrusted_certificates: false,
            ca_file: None,
            connect_to: vec![],
        };
        assert!(
            serde_json::to_string(&s).unwrap().contains("S3cret"),
            "stored"
        );
        assert!(
            !serde_json::to_string(&s.redacted())
                .unwrap()
                .contains("S3cret")
        );
        assert!(!format!("{s:?}").contains("S3cret"));
    }
}
