//! The engine's control-plane error. Refusals of an operation (Exchange's messages) are
//! `Refused`; `is_transient` tells a passing failure (network, throttling) from a permanent one.
//! The copy has its own typed error, [`crate::pipeline::SyncError`].

use std::path::PathBuf;

use crate::target::TargetError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operation the migration service refuses, with its message.
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("state database: {0}")]
    State(String),
    #[error("the target: {0}")]
    Target(#[from] TargetError),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Target(e) => e.is_transient(),
            Error::Io(_) => true,
            _ => false,
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        match e {
            // A value the state holds that cannot be read: its own words.
            rusqlite::Error::FromSqlConversionFailure(_, _, inner) => {
                Error::State(inner.to_string())
            }
            e => Error::State(e.to_string()),
        }
    }
}
