//! What the engine needs of a migration target, and any IMAP server as one ([`imap`]). The fake
//! tenant is made a `Target` outside the engine (the harness crate), so the engine never
//! depends on a test double.

pub mod imap;

use std::collections::HashSet;

use async_trait::async_trait;
use bytes::Bytes;
pub use mailmig_model::{FlagUpdate, ImportOutcome, ImportRequest, ItemFlags, Rejection};

/// A target's failure to do what was asked (its refusals of a message are
/// [`ImportOutcome::Rejected`], not errors).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// A passing fault (the network, a 5xx): the same call may succeed later.
    #[error("{0}")]
    Transient(String),
    /// The target refuses this for good, in its own words (a login, a folder name).
    #[error("{0}")]
    Refused(String),
    /// Any other failure that a retry will not fix.
    #[error("{0}")]
    Failed(String),
}

impl TargetError {
    pub fn is_transient(&self) -> bool {
        matches!(self, TargetError::Transient(_))
    }
}

/// One address's check: `Ok(None)` can receive a migration, `Ok(Some(message))` cannot (in
/// Exchange's words), `Err` the target did not answer.
pub type RecipientCheck = Result<Option<String>, TargetError>;

#[async_trait]
pub trait Target: Send + Sync {
    /// `Ok(None)` when the address can receive a migration, `Ok(Some(message))` with
    /// Exchange's words when it cannot.
    async fn check_recipient(&self, address: &str) -> Result<Option<String>, TargetError>;
    /// [`Target::check_recipient`] for many addresses at once, answered in order; an error for
    /// an address the target could not be asked about (the row stays Validating, with the
    /// reason). A target that can look them all up in one go (one directory listing) overrides
    /// this, so checking a 50,000-row CSV is not 50,000 round trips or 50,000 listings.
    async fn check_recipients(&self, addresses: &[String]) -> Vec<RecipientCheck> {
        let mut out = Vec::with_capacity(addresses.len());
        for a in addresses {
            out.push(self.check_recipient(a).await);
        }
        out
    }
    /// Creates a folder path (and its parents); returns the target's spelling of it.
    async fn ensure_folder(&self, address: &str, path: &str) -> Result<String, TargetError>;
    /// Imports one message; idempotent by `request.source_key`.
    async fn import(
        &self,
        address: &str,
        request: &ImportRequest,
        mime: Bytes,
    ) -> Result<ImportOutcome, TargetError>;
    /// The source keys the mailbox holds, for the reconciliation that closes every sync;
    /// `None` when the target cannot tell.
    async fn source_keys(&self, _address: &str) -> Result<Option<HashSet<String>>, TargetError> {
        Ok(None)
    }

    /// Re-applies flags to the message imported with `source_key` into `target_folder`.
    async fn update_flags(
        &self,
        address: &str,
        target_folder: &str,
        source_key: &str,
        flags: &ItemFlags,
    ) -> Result<FlagUpdate, TargetError>;
}
