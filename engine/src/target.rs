//! What the engine needs of a migration target. The fake tenant (in-process or over HTTP)
//! implements it through `TenantTarget`; an IMAP server as target comes with the data plane.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
pub use fake_target::{FlagUpdate, ImportOutcome, ImportRequest, ItemFlags, Rejection};
use fake_target::{RecipientKind, TenantApi};

use crate::error::Error;

#[async_trait]
pub trait Target: Send + Sync {
    /// `Ok(None)` when the address can receive a migration, `Ok(Some(message))` with
    /// Exchange's words when it cannot.
    async fn check_recipient(&self, address: &str) -> Result<Option<String>, Error>;
    /// Creates a folder path (and its parents); returns the target's spelling of it.
    async fn ensure_folder(&self, address: &str, path: &str) -> Result<String, Error>;
    /// Imports one message; idempotent by `request.source_key`.
    async fn import(
        &self,
        address: &str,
        request: &ImportRequest,
        mime: Bytes,
    ) -> Result<ImportOutcome, Error>;
    /// The source keys the mailbox holds, for the reconciliation that closes every sync;
    /// `None` when the target cannot tell.
    async fn source_keys(
        &self,
        _address: &str,
    ) -> Result<Option<std::collections::HashSet<String>>, Error> {
        Ok(None)
    }

    /// Re-applies flags to the message imported with `source_key` into `target_folder`.
    async fn update_flags(
        &self,
        address: &str,
        target_folder: &str,
        source_key: &str,
        flags: &ItemFlags,
    ) -> Result<FlagUpdate, Error>;
}

/// A fake tenant, whichever face, as a migration target.
#[derive(Clone)]
pub struct TenantTarget(pub Arc<dyn TenantApi>);

#[async_trait]
impl Target for TenantTarget {
    async fn check_recipient(&self, address: &str) -> Result<Option<String>, Error> {
        let users = self.0.users().await?;
        let found = users.iter().find(|u| {
            u.address.eq_ignore_ascii_case(address)
                || u.aliases.iter().any(|a| a.eq_ignore_ascii_case(address))
        });
        Ok(match found {
            Some(u) if u.kind == RecipientKind::UserMailbox.name() && u.enabled => None,
            Some(u) if u.kind == RecipientKind::UserMailbox.name() => {
                Some(Rejection::MailboxDisabled.message(address))
            }
            _ => Some(Rejection::NoSuchRecipient.message(address)),
        })
    }

    async fn ensure_folder(&self, address: &str, path: &str) -> Result<String, Error> {
        Ok(self.0.create_folder(address, path).await?)
    }

    async fn source_keys(
        &self,
        address: &str,
    ) -> Result<Option<std::collections::HashSet<String>>, Error> {
        let items = self.0.items(address, None).await?;
        Ok(Some(items.into_iter().map(|i| i.source_key).collect()))
    }

    async fn import(
        &self,
        address: &str,
        request: &ImportRequest,
        mime: Bytes,
    ) -> Result<ImportOutcome, Error> {
        Ok(self.0.import(address, request, mime).await?)
    }

    async fn update_flags(
        &self,
        address: &str,
        _target_folder: &str,
        source_key: &str,
        flags: &ItemFlags,
    ) -> Result<FlagUpdate, Error> {
        Ok(self.0.update_flags(address, source_key, flags).await?)
    }
}
