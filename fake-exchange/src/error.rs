//! fake-exchange's errors: configuration, startup, and handle calls on things that do not exist.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("configuration: {0}")]
    Config(String),
    #[error("certificates: {0}")]
    Tls(String),
    #[error("listening on 127.0.0.1: {0}")]
    Io(#[from] std::io::Error),
    #[error("no such {0}")]
    NotFound(String),
    /// A change the organisation can't make (an item moved into another kind of folder).
    #[error("{0}")]
    Invalid(String),
}
