//! fake-imap's error type. IMAP NO/BAD replies are protocol data sent to the client, not errors;
//! these are failures of the library calls a test makes (bad config, unknown user, I/O).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no such user: {0}")]
    NoSuchUser(String),
    #[error("no such folder: {0}")]
    NoSuchFolder(String),
    #[error("folder already exists: {0}")]
    FolderExists(String),
    #[error("folder cannot hold messages (\\Noselect): {0}")]
    NotSelectable(String),
    #[error("invalid folder name: {0:?}")]
    InvalidFolderName(String),
    #[error("INBOX cannot be deleted")]
    InboxReserved,
    #[error("no message with UID {0}")]
    NoSuchMessage(u32),
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
    #[error("TLS setup failed: {0}")]
    Tls(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// Whether retrying the same call could succeed (only I/O can be passing).
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Io(_))
    }
}
