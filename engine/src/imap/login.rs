//! Logging in the way the settings say (LOGIN with any admin form, or SASL PLAIN with an
//! authorization identity), throttling hints, and servers known to mishandle an admin form.

use std::time::Duration;

use base64::Engine as _;
use imap_codec::imap_types::response::{Data, Response};

use super::client::{Client, ClientError, Done, Part, Untagged};
use super::commands::astring;
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
    /// The connection failed during the login.
    #[error("{0}")]
    Connection(ClientError),
}

/// `user<SEP>admin` as (user, admin).
fn master_form(user_name: &str, separator: char) -> Option<(&str, &str)> {
    match user_name.rsplit_once(separator) {
        Some((u, admin)) if !u.is_empty() && !admin.is_empty() => Some((u, admin)),
        _ => None,
    }
}

/// Logs in with a UserName as the CSV gives it: as is for LOGIN; for SASL PLAIN, a master-user
/// form `user<SEP>admin` becomes authzid = user, authcid = admin. The trace log shows neither
/// the password nor the SASL message. Returns the capabilities the server announced with its
/// answer (an untagged CAPABILITY, or the OK's CAPABILITY code), if it did.
pub async fn login(
    client: &mut Client,
    settings: &ImapSettings,
    user_name: &str,
    password: &str,
) -> Result<Option<Vec<String>>, LoginError> {
    let mut announced = None;
    let mut note = |r: Untagged<'_>| {
        if let Untagged::Decoded(Response::Data(Data::Capability(list))) = r {
            announced = Some(list.as_ref().iter().map(|c| c.to_string()).collect());
        }
    };
    let done = match settings.authentication {
        Authentication::Basic => {
            let (user, pass) = (astring(user_name), astring(password));
            client
                .run(
                    &[
                        Part::Text("LOGIN "),
                        user.part(),
                        Part::Text(" "),
                        pass.part(),
                    ],
                    &mut note,
                )
                .await
        }
        Authentication::Plain => {
            let (authzid, authcid) =
                master_form(user_name, settings.master_separator).unwrap_or(("", user_name));
            let sasl = base64::engine::general_purpose::STANDARD
                .encode(format!("{authzid}\0{authcid}\0{password}"));
            client
                .run(
                    &[Part::Text("AUTHENTICATE PLAIN"), Part::Continued(&sasl)],
                    &mut note,
                )
                .await
        }
    };
    match done {
        Ok(Done::Ok(text)) => Ok(capability_code(&text).or(announced)),
        Ok(Done::No(text)) | Err(ClientError::Bad { text, .. }) => Err(match backoff_hint(&text) {
            Some(wait) => LoginError::Throttled { wait, text },
            None => LoginError::Refused(text),
        }),
        Err(e) => Err(LoginError::Connection(e)),
    }
}

/// The capabilities of a `[CAPABILITY ...]` response code at the start of `text`.
fn capability_code(text: &str) -> Option<Vec<String>> {
    let rest = text.strip_prefix('[')?;
    let (code, _) = rest.split_once(']')?;
    let mut words = code.split_ascii_whitespace();
    if !words.next()?.eq_ignore_ascii_case("CAPABILITY") {
        return None;
    }
    Some(words.map(String::from).collect())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_from_a_login_s_ok() {
        assert_eq!(
            capability_code("[CAPABILITY IMAP4rev1 CONDSTORE LITERAL+] Logged in"),
            Some(vec![
                "IMAP4rev1".into(),
                "CONDSTORE".into(),
                "LITERAL+".into()
            ])
        );
        assert_eq!(capability_code("Logged in"), None);
        assert_eq!(capability_code("[ALERT] CAPABILITY soon"), None);
        assert_eq!(capability_code("[CAPABILITY IMAP4rev1"), None);
    }

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
}
