//! Migration endpoints (New-MigrationEndpoint): which source server, how to reach it, and how
//! many users may sync from it at once. The connection settings are per endpoint type
//! ([`SourceSettings`]); the limits are common to every type.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::imap::{ImapSettings, Security};
use crate::source::SourceSettings;

pub const DEFAULT_MAX_CONCURRENT_MIGRATIONS: u32 = 20;
pub const DEFAULT_MAX_CONCURRENT_INCREMENTAL_SYNCS: u32 = 10;
pub const MAX_CONCURRENT_MIGRATIONS: u32 = 100;

/// Get-MigrationEndpoint's EndpointType.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EndpointType {
    #[serde(rename = "IMAP")]
    Imap,
    ExchangeOutlookAnywhere,
}

impl EndpointType {
    pub const ALL: [EndpointType; 2] = [EndpointType::Imap, EndpointType::ExchangeOutlookAnywhere];

    /// The name the state database and Exchange use.
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointType::Imap => "IMAP",
            EndpointType::ExchangeOutlookAnywhere => "ExchangeOutlookAnywhere",
        }
    }

    /// Whether batches of this endpoint are cutover batches (the whole organisation, no CSV).
    pub fn is_cutover(self) -> bool {
        self == EndpointType::ExchangeOutlookAnywhere
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl fmt::Display for EndpointType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    pub name: String,
    pub max_concurrent_migrations: u32,
    pub max_concurrent_incremental_syncs: u32,
    /// How to reach the source, by endpoint type (`endpointType` in JSON).
    #[serde(flatten)]
    pub connection: SourceSettings,
}

impl Endpoint {
    pub fn new(name: &str, connection: SourceSettings) -> Self {
        Self {
            name: name.to_string(),
            max_concurrent_migrations: DEFAULT_MAX_CONCURRENT_MIGRATIONS,
            max_concurrent_incremental_syncs: DEFAULT_MAX_CONCURRENT_INCREMENTAL_SYNCS,
            connection,
        }
    }

    /// An IMAP endpoint with the defaults (LOGIN, verified TLS, Dovecot's `*` separator).
    pub fn imap(name: &str, remote_server: &str, port: u16, security: Security) -> Self {
        Self::new(
            name,
            SourceSettings::Imap(ImapSettings::new(remote_server, port, security)),
        )
    }

    pub fn endpoint_type(&self) -> EndpointType {
        match self.connection {
            SourceSettings::Imap(_) => EndpointType::Imap,
            SourceSettings::ExchangeOutlookAnywhere(_) => EndpointType::ExchangeOutlookAnywhere,
        }
    }

    /// The IMAP settings of an IMAP endpoint.
    pub fn imap_settings(&self) -> Option<&ImapSettings> {
        match &self.connection {
            SourceSettings::Imap(s) => Some(s),
            SourceSettings::ExchangeOutlookAnywhere(_) => None,
        }
    }

    /// The Exchange settings of a cutover endpoint.
    pub fn exchange_settings(&self) -> Option<&crate::exchange::ExchangeSettings> {
        match &self.connection {
            SourceSettings::ExchangeOutlookAnywhere(s) => Some(s.as_ref()),
            SourceSettings::Imap(_) => None,
        }
    }

    /// The endpoint as it may be shown (no stored password).
    pub fn redacted(&self) -> Self {
        Self {
            connection: self.connection.redacted(),
            ..self.clone()
        }
    }

    pub fn imap_settings_mut(&mut self) -> Option<&mut ImapSettings> {
        match &mut self.connection {
            SourceSettings::Imap(s) => Some(s),
            SourceSettings::ExchangeOutlookAnywhere(_) => None,
        }
    }

    /// The server the endpoint names, whatever its type.
    pub fn remote_server(&self) -> &str {
        match &self.connection {
            SourceSettings::Imap(s) => &s.remote_server,
            SourceSettings::ExchangeOutlookAnywhere(s) => &s.exchange_server,
        }
    }

    pub fn validate(&self) -> Result<(), Error> {
        if self.name.trim().is_empty() {
            return Err(Error::Invalid("The endpoint needs a name.".into()));
        }
        match &self.connection {
            SourceSettings::Imap(s) => {
                if s.remote_server.trim().is_empty() {
                    return Err(Error::Invalid("RemoteServer can't be empty.".into()));
                }
                if s.port == 0 {
                    return Err(Error::Invalid("Port must be between 1 and 65535.".into()));
                }
            }
            SourceSettings::ExchangeOutlookAnywhere(s) => {
                if s.exchange_server.trim().is_empty() || s.ews_url.trim().is_empty() {
                    return Err(Error::Invalid("ExchangeServer can't be empty.".into()));
                }
                if s.credential.user_name.trim().is_empty() || s.credential.password.is_empty() {
                    return Err(Error::Invalid(
                        "An Exchange Outlook Anywhere endpoint needs the admin's credentials."
                            .into(),
                    ));
                }
            }
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
        let e = Endpoint::imap("src", "imap.contoso.edu", 993, Security::Ssl);
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
        assert!(bad(|e| e.imap_settings_mut().unwrap().port = 0).contains("Port"));
        let mut ok = e.clone();
        ok.max_concurrent_migrations = 100;
        ok.max_concurrent_incremental_syncs = 100;
        ok.validate().unwrap();
    }

    #[test]
    fn json_names_the_endpoint_type_beside_its_settings() {
        let e = Endpoint::imap("src", "imap.contoso.edu", 993, Security::Ssl);
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["endpointType"], "IMAP");
        assert_eq!(json["remoteServer"], "imap.contoso.edu");
        assert_eq!(json["maxConcurrentMigrations"], 20);
        let back: Endpoint = serde_json::from_value(json).unwrap();
        assert_eq!(back, e);
        assert_eq!(e.endpoint_type().to_string(), "IMAP");
    }
}
