//! The IMAP client layer that the source and the IMAP target share: settings, connections (TLS
//! verified unless untrusted certificates are accepted), mailmig's own client (replies read
//! with imap-codec, timeouts, stop, a trace without secrets), logins in every admin form, and
//! the commands, each read to its tagged reply.

pub mod client;
pub mod commands;
mod connect;
mod login;
mod settings;

pub use client::{Client, ClientError, Done, Limits};
pub use connect::{ConnectError, Connected, ImapStream, connect, connect_with};
pub use login::{LoginError, SIGN_IN_FAILED, authzid_ignored, backoff_hint, login};
pub use settings::{Authentication, ImapSettings, Security};
