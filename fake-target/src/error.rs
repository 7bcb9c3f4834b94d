//! fake-target's error type. Import refusals (too large, quota, throttled, ...) are outcomes,
//! not errors; these are failures to reach or use the tenant at all.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no such recipient: {0}")]
    NoSuchRecipient(String),
    #[error("no such folder: {0}")]
    NoSuchFolder(String),
    #[error("no such item: {0}")]
    NoSuchItem(String),
    #[error("invalid folder path {0:?}: {1}")]
    InvalidFolder(String, String),
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("invalid tenant configuration: {0}")]
    Invalid(String),
    #[error("storage error: {0}")]
    Storage(String),
    #[error("HTTP {status}: {message}")]
    Http { status: u16, message: String },
    #[error("unauthorized: missing or wrong bearer token")]
    Unauthorized,
    #[error("cannot reach the tenant: {0}")]
    Transport(String),
    /// The directory refused a provisioning call (Exchange's words in the message).
    #[error("{0}")]
    Directory(mailmig_model::DirectoryRefusal),
    /// A message of a batch not tried because the call failed on an earlier one.
    #[error("not tried, after an earlier message of the call failed: {message}")]
    NotTried { message: String, transient: bool },
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// Whether the same call may succeed if retried later.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Transport(_) | Error::Io(_) => true,
            Error::Http { status, .. } => *status >= 500,
            Error::NotTried { transient, .. } => *transient,
            _ => false,
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Storage(e.to_string())
    }
}
