//! IMAP migration endpoints (New-MigrationEndpoint -IMAP): where the source server is, how to
//! reach it, and how many users may sync from it at once.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::Error;

pub const DEFAULT_MAX_CONCURRENT_MIGRATIONS: u32 = 20;
pub const DEFAULT_MAX_CONCURRENT_INCREMENTAL_SYNCS: u32 = 10;
pub const MAX_CONCURRENT_MIGRATIONS: u32 = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Security {
    /// Plain IMAP (usually port 143).
    None,
    /// Implicit TLS (usually port 993).
    Ssl,
    /// STARTTLS (usually port 143).
    Tls,
}

impl Security {
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Some(Security::None),
            "ssl" => Some(Security::Ssl),
            "tls" => Some(Security::Tls),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Authentication {
    /// LOGIN with the CSV's UserName as given (any admin form passes through).
    #[default]
    Basic,
    /// AUTHENTICATE PLAIN; a UserName in the master-user form `user<SEP>admin` becomes
    /// authzid = user, authcid = admin (Dovecot and other SASL servers).
    Plain,
}

impl Authentication {
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "basic" => Some(Authentication::Basic),
            "plain" | "saslplain" => Some(Authentication::Plain),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    pub name: String,
    pub remote_server: String,
    pub port: u16,
    pub security: Security,
    #[serde(default)]
    pub authentication: Authentication,
    #[serde(default)]
    pub accept_untrusted_certificates: bool,
    /// A PEM file of CAs to trust besides the system's (a private CA).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    pub max_concurrent_migrations: u32,
    pub max_concurrent_incremental_syncs: u32,
    /// The master-user separator of the source (Dovecot's `*` by default).
    #[serde(default = "default_separator")]
    pub master_separator: char,
}

fn default_separator() -> char {
    '*'
}

impl Endpoint {
    pub fn new(name: &str, remote_server: &str, port: u16, security: Security) -> Self {
        Self {
            name: name.to_string(),
            remote_server: remote_server.to_string(),
            port,
            security,
            authentication: Authentication::Basic,
            accept_untrusted_certificates: false,
            ca_file: None,
            max_concurrent_migrations: DEFAULT_MAX_CONCURRENT_MIGRATIONS,
            max_concurrent_incremental_syncs: DEFAULT_MAX_CONCURRENT_INCREMENTAL_SYNCS,
            master_separator: '*',
        }
    }

    pub fn validate(&self) -> Result<(), Error> {
        if self.name.trim().is_empty() {
            return Err(Error::Invalid("The endpoint needs a name.".into()));
        }
        if self.remote_server.trim().is_empty() {
            return Err(Error::Invalid("RemoteServer can't be empty.".into()));
        }
        if self.port == 0 {
            return Err(Error::Invalid("Port must be between 1 and 65535.".into()));
        }
        let mcm = self.max_concurrent_migrations;
        if !(1..=MAX_CONCURRENT_MIGRATIONS).contains(&mcm) {
            return Err(Error::Invalid(format!(
                "MaxConcurrentMigrations must be between 1 and {MAX_CONCURRENT_MIGRATIONS}, not {mcm}."
            )));
        }
        let mci = self.max_concurrent_incremental_syncs;
        if mci == 0 || mci > mcm {
            return Err(Error::Invalid(format!(
                "MaxConcurrentIncrementalSyncs ({mci}) must be between 1 and MaxConcurrentMigrations ({mcm})."
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_limits() {
        let e = Endpoint::new("src", "imap.contoso.edu", 993, Security::Ssl);
        assert_eq!(
            (
                e.max_concurrent_migrations,
                e.max_concurrent_incremental_syncs
            ),
            (20, 10)
        );
        e.validate().unwrap();
        let bad = |f: fn(&mut Endpoint)| {
            let mut e = e.clone();
            f(&mut e);
            e.validate().unwrap_err().to_string()
        };
        assert!(bad(|e| e.max_concurrent_migrations = 101).contains("between 1 and 100"));
        assert!(
            bad(|e| e.max_concurrent_incremental_syncs = 21)
                .contains("MaxConcurrentIncrementalSyncs")
        );
        assert!(
            bad(|e| e.max_concurrent_incremental_syncs = 0)
                .contains("MaxConcurrentIncrementalSyncs")
        );
        let mut ok = e.clone();
        ok.max_concurrent_migrations = 100;
        ok.max_concurrent_incremental_syncs = 100;
        ok.validate().unwrap();
    }
}
