//! Test-MigrationServerAvailability for IMAP: connect, negotiate TLS (certificate checked),
//! ask for CAPABILITY, and with credentials log in. The result uses Exchange's messages.

use std::time::Duration;

use serde::Serialize;

use crate::imap::{
    ConnectError, ImapSettings, LoginError, SIGN_IN_FAILED, Security, authzid_ignored, connect,
    login,
};

/// Exchange waits 15 seconds.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum TestResult {
    Success,
    Failed,
    Warning,
}

impl std::fmt::Display for TestResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TestResult::Success => "Success",
            TestResult::Failed => "Failed",
            TestResult::Warning => "Warning",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Availability {
    pub result: TestResult,
    pub message: String,
    pub error_detail: Option<String>,
    pub capabilities: Vec<String>,
    pub remote_server: String,
    pub port: u16,
    pub security: Security,
}

/// "00:00:15"
fn hms(d: Duration) -> String {
    let s = d.as_secs();
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// CAPABILITY before login.
async fn capabilities(client: &mut crate::imap::Client) -> Result<Vec<String>, String> {
    match crate::imap::commands::capability(client).await {
        Ok((caps, done)) if done.is_ok() => Ok(caps
            .into_iter()
            .map(|c| {
                // imap-codec spells it in capitals; RFC 3501 and people write IMAP4rev1.
                if c.eq_ignore_ascii_case("IMAP4rev1") {
                    "IMAP4rev1".to_string()
                } else {
                    c
                }
            })
            .collect()),
        Ok((_, done)) => Err(format!("CAPABILITY was refused: {done:?}")),
        Err(e) => Err(e.to_string()),
    }
}

/// Runs the test against an IMAP server; `credentials` are (user name as in the CSV,
/// password), logged in with the settings' authentication.
pub async fn test_server(
    endpoint: &ImapSettings,
    credentials: Option<(&str, &str)>,
    timeout: Duration,
) -> Availability {
    let host = endpoint.remote_server.clone();
    let mut out = Availability {
        result: TestResult::Failed,
        message: String::new(),
        error_detail: None,
        capabilities: Vec::new(),
        remote_server: host.clone(),
        port: endpoint.port,
        security: endpoint.security,
    };
    let mut connected = match connect(endpoint, timeout).await {
        Ok(c) => c,
        Err(e) => {
            out.message = match &e {
                ConnectError::Unreachable(_) => {
                    format!("The connection to the server '{host}' could not be completed.")
                }
                ConnectError::Timeout(t) | ConnectError::NoGreeting(t) => {
                    format!(
                        "The connection to the server {host} timed out after {}.",
                        hms(*t)
                    )
                }
                ConnectError::Tls(_) | ConnectError::CaFile { .. } => {
                    format!("The TLS negotiation with the server '{host}' failed.")
                }
                ConnectError::ImplicitTls(port) => format!(
                    "The server '{host}' expects TLS from the first byte on port {port}; use Security Ssl."
                ),
                ConnectError::NoStartTls => {
                    format!("The server '{host}' doesn't offer STARTTLS; use Security None or Ssl.")
                }
                ConnectError::NotImap(_) => {
                    format!("The server '{host}' didn't answer as an IMAP server.")
                }
            };
            out.error_detail = Some(e.to_string());
            return out;
        }
    };
    match tokio::time::timeout(timeout, capabilities(&mut connected.client)).await {
        Ok(Ok(caps)) => out.capabilities = caps,
        Ok(Err(e)) => {
            out.message = format!("The server '{host}' didn't answer CAPABILITY.");
            out.error_detail = Some(e.to_string());
            return out;
        }
        Err(_) => {
            out.message = format!(
                "The connection to the server {host} timed out after {}.",
                hms(timeout)
            );
            return out;
        }
    }
    let mut warnings = Vec::new();
    if connected.untrusted_certificate {
        warnings.push("The server's certificate isn't trusted; it was accepted because AcceptUntrustedCertificates is set.");
    }
    let mut signed_in = None;
    if let Some((user, password)) = credentials {
        if let Some(why) = authzid_ignored(&connected.greeting, endpoint, user) {
            out.message = why;
            return out;
        }
        let mut client = connected.client;
        let logged_in =
            tokio::time::timeout(timeout, login(&mut client, endpoint, user, password)).await;
        match logged_in {
            Ok(Ok(_)) => {
                crate::imap::commands::logout(&mut client).await;
                signed_in = Some(user);
            }
            Ok(Err(LoginError::Connection(e))) => {
                out.message =
                    format!("The connection to the server '{host}' failed during the login.");
                out.error_detail = Some(e.to_string());
                return out;
            }
            Ok(Err(e @ LoginError::Refused(_))) => {
                out.message = SIGN_IN_FAILED.to_string();
                out.error_detail = Some(e.to_string());
                return out;
            }
            Ok(Err(LoginError::Throttled { text, .. })) => {
                out.message = format!("The server '{host}' is throttling logins; try again later.");
                out.error_detail = Some(text);
                return out;
            }
            Err(_) => {
                out.message = format!(
                    "The connection to the server {host} timed out after {}.",
                    hms(timeout)
                );
                return out;
            }
        }
        if endpoint.security == Security::None {
            warnings.push("The connection isn't encrypted: the password was sent in clear text.");
        }
    }
    // Whether a login was tried is said either way: a connection alone proves no CSV row.
    let login = match signed_in {
        Some(user) => format!("'{user}' signed in."),
        None => "No login was tried (give --username and a password to test one).".into(),
    };
    if warnings.is_empty() {
        out.result = TestResult::Success;
        out.message = format!("The connection to the server '{host}' was successful. {login}");
    } else {
        out.result = TestResult::Warning;
        out.message = format!("{login} {}", warnings.join(" "));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_read_like_exchange() {
        assert_eq!(super::hms(std::time::Duration::from_secs(15)), "00:00:15");
        assert_eq!(super::hms(std::time::Duration::from_secs(3725)), "01:02:05");
    }
}
