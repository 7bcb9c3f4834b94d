//! What the engine needs of a migration target, and any IMAP server as one ([`imap`]). The fake
//! tenant is made a `Target` outside the engine (the harness crate), so the engine never
//! depends on a test double.

pub mod imap;

use std::collections::HashSet;

use async_trait::async_trait;
use bytes::Bytes;
pub use mailmig_model::{
    DirectoryEntry, DirectoryLinks, DirectoryObject, DirectoryRefusal, FlagUpdate, ImportOutcome,
    ImportRequest, ItemFlags, OrganizationInfo, ProvisionOutcome, Rejection,
};

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

/// What identifies a message's copy in a target that does not keep source keys: its size and
/// [`crate::identity::fingerprint`] (Message-ID, Date, size).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    pub size: u64,
    /// The size with every bare LF made CRLF (a server may store it so).
    pub wire_size: u64,
    pub fingerprint: String,
}

/// A copied message as the checkpoint knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetItem {
    pub source_key: String,
    /// What the target's import returned for it (`Created(id)`), when recorded.
    pub target_id: Option<String>,
    pub probe: Probe,
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
    /// Imports messages of one mailbox, in order: one outcome per message. A target that can
    /// have many writes in flight (an IMAP server, pipelined) overrides this; here they go one
    /// by one, and after an error the rest are not tried (each gets the error).
    async fn import_many(
        &self,
        address: &str,
        requests: &[(ImportRequest, Bytes)],
    ) -> Vec<Result<ImportOutcome, TargetError>> {
        let mut out = Vec::with_capacity(requests.len());
        for (request, mime) in requests {
            let outcome = self.import(address, request, mime.clone()).await;
            let failed = outcome.as_ref().err().cloned();
            out.push(outcome);
            if let Some(e) = failed {
                out.resize(requests.len(), Err(e));
                break;
            }
        }
        out
    }

    /// For a target whose imports are not idempotent by source key on their own (an IMAP
    /// server written to without a key header): the copies it holds of messages whose import
    /// was never acknowledged (a run ended between the write and its record), as candidate
    /// target ids per probe, in the order asked. `None`: the target's import recognises a key
    /// it already holds, so nothing needs finding (the default).
    async fn find_copies(
        &self,
        _address: &str,
        _folder: &str,
        _probes: &[Probe],
    ) -> Result<Option<Vec<Vec<String>>>, TargetError> {
        Ok(None)
    }

    /// [`Target::update_flags`] for a message known by more than its source key: the target
    /// id its import returned and what identifies its copy. A target that needs them (an IMAP
    /// server without a key header) overrides this.
    async fn update_flags_of(
        &self,
        address: &str,
        target_folder: &str,
        item: &TargetItem,
        flags: &ItemFlags,
    ) -> Result<FlagUpdate, TargetError> {
        self.update_flags(address, target_folder, &item.source_key, flags)
            .await
    }

    /// The source keys the mailbox holds, for the reconciliation that closes every sync;
    /// `None` when the target cannot tell. A target that knows its messages by its own ids
    /// (an IMAP server without a key header) holds those ids here instead.
    async fn source_keys(&self, _address: &str) -> Result<Option<HashSet<String>>, TargetError> {
        Ok(None)
    }

    /// The tenant's accepted domains and directory synchronisation; `None` for a target without
    /// a directory (an IMAP server), where a cutover cannot provision.
    async fn organization(&self) -> Result<Option<OrganizationInfo>, TargetError> {
        Ok(None)
    }

    /// Creates or updates one directory object (the first provisioning pass); the inner `Err`
    /// is the tenant's refusal in Exchange's words.
    async fn provision(
        &self,
        _object: &DirectoryObject,
    ) -> Result<Result<ProvisionOutcome, DirectoryRefusal>, TargetError> {
        Err(no_directory())
    }

    /// Sets an object's manager, delegates and owners (the second pass).
    async fn set_links(
        &self,
        _address: &str,
        _links: &DirectoryLinks,
    ) -> Result<Result<(), DirectoryRefusal>, TargetError> {
        Err(no_directory())
    }

    /// A directory object as the tenant shows it (`None` when there is none, or no directory).
    async fn directory_entry(&self, _address: &str) -> Result<Option<DirectoryEntry>, TargetError> {
        Ok(None)
    }

    /// Adds members to a group, at most [`mailmig_model::MEMBERS_PER_CALL`] at a time.
    async fn add_members(
        &self,
        _group: &str,
        _members: &[String],
    ) -> Result<Result<(), DirectoryRefusal>, TargetError> {
        Err(no_directory())
    }

    /// The sync of `address` has ended (however it ended): a target that keeps a session per
    /// mailbox logs it out, instead of leaving it to time out on the server.
    async fn sync_ended(&self, _address: &str) {}

    /// Re-applies flags to the message imported with `source_key` into `target_folder`.
    async fn update_flags(
        &self,
        address: &str,
        target_folder: &str,
        source_key: &str,
        flags: &ItemFlags,
    ) -> Result<FlagUpdate, TargetError>;
}

fn no_directory() -> TargetError {
    TargetError::Refused(
        "This target has no directory: a cutover migration provisions recipients into a tenant (the embedded one or a fake tenant over HTTP), not into an IMAP server.".into(),
    )
}
