//! Logging in the way the settings say (LOGIN with any admin form, or SASL PLAIN with an
//! authorization identity), throttling hints, and the server's own words out of async-imap's
//! errors.

use std::time::Duration;

use async_imap::{Client, Session};

use super::ImapStream;
use super::settings::{Authentication, ImapSettings};

/// Exchange's message for a refused login.
pub const SIGN_IN_FAILED: &str = "We had trouble signing in to this account. Confirm that you're using the correct user name and password.";

/// Why a login did not give a session.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    /// The server refused the credentials (its words).
    #[error("{0}")]
    Refused(String),
    /// The server asked us to come back later.
    #[error("{text}")]
    Throttled { wait: Duration, text: String },
}

/// SASL PLAIN's single message: authzid NUL authcid NUL password (RFC 4616).
struct SaslPlain(String);

impl async_imap::Authenticator for SaslPlain {
    type Response = String;
    fn process(&mut self, _challenge: &[u8]) -> String {
        self.0.clone()
    }
}

/// Logs in with a UserName as the CSV gives it: as is for LOGIN; for SASL PLAIN, a master-user
/// form `user<SEP>admin` becomes authzid = user, authcid = admin.
pub async fn login(
    client: Client<ImapStream>,
    settings: &ImapSettings,
    user_name: &str,
    password: &str,
) -> Result<Session<ImapStream>, LoginError> {
    let result = match settings.authentication {
        Authentication::Basic => client.login(user_name, password).await,
        Authentication::Plain => {
            let (authzid, authcid) =
                master_form(user_name, settings.master_separator).unwrap_or(("", user_name));
            let sasl = SaslPlain(format!("{authzid}\0{authcid}\0{password}"));
            client.authenticate("PLAIN", sasl).await
        }
    };
    result.map_err(|(e, _)| {
        let raw = e.to_string();
        let text = server_text(&e);
        match backoff_hint(&raw) {
            Some(wait) => LoginError::Throttled { wait, text },
            None => LoginError::Refused(text),
        }
    })
}

/// `user<SEP>admin` as (user, admin).
fn master_form(user_name: &str, separator: char) -> Option<(&str, &str)> {
    match user_name.rsplit_once(separator) {
        Some((u, admin)) if !u.is_empty() && !admin.is_empty() => Some((u, admin)),
        _ => None,
    }
}

/// Courier-IMAP drops SASL PLAIN's authorization identity and logs the admin in as itself
/// (it announces itself in its greeting): a migration that way would read the admin's own
/// mailbox. The refusal, when `user_name` would be sent with an authzid to such a server.
pub fn authzid_ignored(greeting: &str, settings: &ImapSettings, user_name: &str) -> Option<String> {
    if settings.authentication != Authentication::Plain || !greeting.contains("Courier-IMAP") {
        return None;
    }
    let (user, _) = master_form(user_name, settings.master_separator)?;
    Some(format!(
        "The server is Courier-IMAP, which ignores the authorization identity \"{user}\" of \
         SASL PLAIN and would log in as the admin, reading the admin's own mailbox. Use \
         Courier's admin form instead: the admin's UserName and the user's folders as UserRoot \
         (e.g. #shared.{user})."
    ))
}

/// Milliseconds a throttled server asks us to wait (Exchange's text or Gmail's code).
pub fn backoff_hint(message: &str) -> Option<Duration> {
    if let Some(at) = message.find("Suggested Backoff Time:") {
        let ms: String = message[at + "Suggested Backoff Time:".len()..]
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        return ms.parse().ok().map(Duration::from_millis);
    }
    message
        .contains("THROTTLED")
        .then(|| Duration::from_secs(1))
}

/// The server's words from one of async-imap's errors, which spell a NO or BAD reply as Rust
/// `Debug` text (`code: None, info: Some("...")`); people read the reply, not that.
pub fn server_text(e: &async_imap::error::Error) -> String {
    use async_imap::error::Error as E;
    match e {
        E::No(s) | E::Bad(s) => debug_info(s).unwrap_or_else(|| s.clone()),
        E::ConnectionLost => "the server closed the connection".to_string(),
        other => other.to_string(),
    }
}

fn debug_info(s: &str) -> Option<String> {
    const OPEN: &str = "info: Some(\"";
    let start = s.find(OPEN)? + OPEN.len();
    let end = s.rfind("\")")?;
    let quoted = s.get(start..end)?;
    let mut out = String::with_capacity(quoted.len());
    let mut chars = quoted.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some('t') => out.push('\t'),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_hints() {
        assert_eq!(
            backoff_hint("NO Request is throttled. Suggested Backoff Time: 299961 milliseconds"),
            Some(Duration::from_millis(299_961))
        );
        assert_eq!(
            backoff_hint("NO [THROTTLED] slow down"),
            Some(Duration::from_secs(1))
        );
        assert_eq!(backoff_hint("NO nope"), None);
    }

    #[test]
    fn courier_with_an_authzid_is_refused_before_logging_in() {
        let mut s = ImapSettings::new("x", 143, crate::imap::Security::None);
        let courier = "Courier-IMAP ready. Copyright 1998-2018 Double Precision, Inc.";
        assert_eq!(
            authzid_ignored(courier, &s, "alice*admin"),
            None,
            "LOGIN form"
        );
        s.authentication = Authentication::Plain;
        let refusal = authzid_ignored(courier, &s, "alice*admin").unwrap();
        assert!(refusal.contains("#shared.alice"), "{refusal}");
        assert_eq!(authzid_ignored(courier, &s, "alice"), None, "no authzid");
        assert_eq!(authzid_ignored("Dovecot ready.", &s, "alice*admin"), None);
    }

    #[test]
    fn server_text_reads_the_reply_not_the_debug_form() {
        let e = async_imap::error::Error::No(
            "code: None, info: Some(\"[AUTHENTICATIONFAILED] Authentication \\\"failed\\\".\")"
                .into(),
        );
        assert_eq!(
            server_text(&e),
            "[AUTHENTICATIONFAILED] Authentication \"failed\"."
        );
        let plain = async_imap::error::Error::Bad("no info here".into());
        assert_eq!(server_text(&plain), "no info here");
    }
}
