//! How to reach and log in to an IMAP server: what an IMAP endpoint (source) and an IMAP target
//! both hold.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

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
    pub const ALL: [Security; 3] = [Security::None, Security::Ssl, Security::Tls];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|v| v.to_string().eq_ignore_ascii_case(s))
    }
}

impl fmt::Display for Security {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Security::None => "None",
            Security::Ssl => "Ssl",
            Security::Tls => "Tls",
        })
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

impl fmt::Display for Authentication {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Authentication::Basic => "Basic",
            Authentication::Plain => "Plain",
        })
    }
}

/// Where an IMAP server is and how to talk to it (New-MigrationEndpoint -IMAP's connection
/// parameters).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImapSettings {
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
    /// The master-user separator of the server (Dovecot's `*` by default).
    #[serde(default = "default_separator")]
    pub master_separator: char,
}

fn default_separator() -> char {
    '*'
}

impl ImapSettings {
    pub fn new(remote_server: &str, port: u16, security: Security) -> Self {
        Self {
            remote_server: remote_server.to_string(),
            port,
            security,
            authentication: Authentication::Basic,
            accept_untrusted_certificates: false,
            ca_file: None,
            master_separator: default_separator(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_names_parse_in_any_case() {
        for s in Security::ALL {
            assert_eq!(Security::parse(&s.to_string().to_uppercase()), Some(s));
        }
        assert_eq!(Security::parse("bogus"), None);
    }
}
