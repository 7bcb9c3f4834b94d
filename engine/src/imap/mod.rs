//! The IMAP client layer that the source and the IMAP target share: settings, connections (TLS
//! verified unless untrusted certificates are accepted), logins in every admin form, and
//! commands whose tagged reply is always seen.

mod checked;
mod connect;
mod login;
mod settings;

pub(crate) use checked::{Fetched, fetch_checked, list_checked};
pub use connect::{ConnectError, Connected, ImapStream, connect};
pub use login::{LoginError, SIGN_IN_FAILED, authzid_ignored, backoff_hint, login, server_text};
pub use settings::{Authentication, ImapSettings, Security};
