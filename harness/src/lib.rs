//! Where the engine meets the fakes.
//!
//! - [`TenantTarget`]: the fake tenant (in-process or over HTTP) as an engine [`Target`];
//! - [`source_from_fake_imap`]: a fake-imap user's mail as input to the tenant's reconciliation;
//! - [`contoso_tenant`]: the in-process tenant most tests start from;
//! - [`hostile`]: a scripted IMAP server that breaks the rules on demand.
//!
//! Invariant: nothing here is needed by the engine or by a fake; this crate only adapts one to
//! the other, so the engine's vocabulary never comes from a test double.

pub mod crash;
pub mod hostile;

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use engine::target::{RecipientCheck, Target, TargetError};
use fake_target::TenantApi;
use fake_target::inspect::{SourceMessage, fingerprint};
use mailmig_model::{
    DirectoryEntry, DirectoryLinks, DirectoryObject, DirectoryRefusal, FlagUpdate, ImportOutcome,
    ImportRequest, ItemFlags, OrganizationInfo, ProvisionOutcome, RecipientKind, Rejection,
};

/// An in-process tenant for tests: `settings` with contoso.edu accepted, and a licensed user
/// mailbox for each address.
pub fn contoso_tenant(
    clock: Arc<dyn fake_target::Clock>,
    settings: fake_target::Settings,
    mailboxes: &[String],
) -> fake_target::Tenant {
    let tenant = fake_target::Tenant::with_clock(
        fake_target::Settings {
            accepted_domains: vec!["contoso.edu".into()],
            ..settings
        },
        clock,
    );
    for address in mailboxes {
        tenant
            .add_recipient(fake_target::Recipient::mailbox(address, true, tenant.now()))
            .expect("a new mailbox in an accepted domain");
    }
    tenant
}

/// The cutover endpoint settings for a running fake organisation with the seed's servers
/// (mail.contoso.com, dc01.contoso.com) and admin, as test-server finds them (Autodiscover,
/// impersonation), without asking the organisation: faults may be scripted from its first
/// request. `ca_file` holds the organisation's CA.
pub fn cutover_settings(
    exchange: &fake_exchange::RunningExchange,
    ca_file: &std::path::Path,
) -> engine::exchange::ExchangeSettings {
    engine::exchange::test::ConnectionSettings {
        has_autodiscovery: true,
        incoming_email_address: "administrator@contoso.com".into(),
        incoming_user_name: "administrator@contoso.com".into(),
        incoming_exchange_server: "mail.contoso.com".into(),
        incoming_rpc_proxy_server: "mail.contoso.com".into(),
        incoming_nspi_server: "dc01.contoso.com".into(),
        ews_url: "https://mail.contoso.com/EWS/Exchange.asmx".into(),
        ews_access: engine::exchange::EwsAccess::Impersonation,
        ca_file: Some(ca_file.to_path_buf()),
        connect_to: exchange
            .connect_to()
            .iter()
            .filter_map(|c| c.parse().ok())
            .collect(),
        ..Default::default()
    }
    .endpoint_settings("P@ssw0rd")
}

/// A fake tenant, whichever face, as a migration target.
#[derive(Clone)]
pub struct TenantTarget(pub Arc<dyn TenantApi>);

impl TenantTarget {
    pub fn new(tenant: impl TenantApi + 'static) -> Self {
        Self(Arc::new(tenant))
    }
}

/// The tenant's own failures, sorted into what a retry may fix and what it cannot.
fn target_error(e: fake_target::Error) -> TargetError {
    if e.is_transient() {
        TargetError::Transient(e.to_string())
    } else {
        TargetError::Failed(e.to_string())
    }
}

/// A directory call's refusal is an answer (inner `Err`); other failures are the target's.
fn refusal_or<T>(
    r: Result<T, fake_target::Error>,
) -> Result<Result<T, DirectoryRefusal>, TargetError> {
    match r {
        Ok(v) => Ok(Ok(v)),
        Err(fake_target::Error::Directory(refusal)) => Ok(Err(refusal)),
        Err(e) => Err(target_error(e)),
    }
}

/// The tenant's recipients by lower-cased address and alias.
struct Directory(std::collections::HashMap<String, (bool, bool)>);

impl Directory {
    async fn read(tenant: &dyn TenantApi) -> Result<Self, TargetError> {
        let users = tenant.users().await.map_err(target_error)?;
        let mut map = std::collections::HashMap::with_capacity(users.len());
        for u in users {
            // Room and equipment mailboxes hold items too (a cutover copies into them).
            let mailbox = [
                RecipientKind::UserMailbox,
                RecipientKind::RoomMailbox,
                RecipientKind::EquipmentMailbox,
            ]
            .iter()
            .any(|k| u.kind == k.name());
            for a in std::iter::once(&u.address).chain(u.aliases.iter()) {
                map.entry(a.to_ascii_lowercase())
                    .or_insert((mailbox, u.enabled));
            }
        }
        Ok(Self(map))
    }

    fn check(&self, address: &str) -> Option<String> {
        match self.0.get(&address.to_ascii_lowercase()) {
            Some((true, true)) => None,
            Some((true, false)) => Some(Rejection::MailboxDisabled.message(address)),
            _ => Some(Rejection::NoSuchRecipient.message(address)),
        }
    }
}

#[async_trait]
impl Target for TenantTarget {
    async fn check_recipient(&self, address: &str) -> Result<Option<String>, TargetError> {
        let directory = Directory::read(&*self.0).await?;
        Ok(directory.check(address))
    }

    /// One listing of the tenant's recipients for every address.
    async fn check_recipients(&self, addresses: &[String]) -> Vec<RecipientCheck> {
        match Directory::read(&*self.0).await {
            Ok(directory) => addresses.iter().map(|a| Ok(directory.check(a))).collect(),
            Err(e) => vec![Err(e); addresses.len()],
        }
    }

    async fn ensure_folder(&self, address: &str, path: &str) -> Result<String, TargetError> {
        self.0
            .create_folder(address, path)
            .await
            .map_err(target_error)
    }

    async fn source_keys(&self, address: &str) -> Result<Option<HashSet<String>>, TargetError> {
        let items = self.0.items(address, None).await.map_err(target_error)?;
        Ok(Some(items.into_iter().map(|i| i.source_key).collect()))
    }

    async fn import(
        &self,
        address: &str,
        request: &ImportRequest,
        mime: Bytes,
    ) -> Result<ImportOutcome, TargetError> {
        self.0
            .import(address, request, mime)
            .await
            .map_err(target_error)
    }

    /// One call for the chunk: the in-process tenant writes it in one transaction.
    async fn import_many(
        &self,
        address: &str,
        requests: &[(ImportRequest, Bytes)],
    ) -> Vec<Result<ImportOutcome, TargetError>> {
        self.0
            .import_many(address, requests)
            .await
            .into_iter()
            .map(|r| r.map_err(target_error))
            .collect()
    }

    async fn organization(&self) -> Result<Option<OrganizationInfo>, TargetError> {
        self.0.organization().await.map(Some).map_err(target_error)
    }

    async fn provision(
        &self,
        object: &DirectoryObject,
    ) -> Result<Result<ProvisionOutcome, DirectoryRefusal>, TargetError> {
        refusal_or(self.0.provision(object).await)
    }

    async fn set_links(
        &self,
        address: &str,
        links: &DirectoryLinks,
    ) -> Result<Result<(), DirectoryRefusal>, TargetError> {
        refusal_or(self.0.set_links(address, links).await)
    }

    async fn directory_entry(&self, address: &str) -> Result<Option<DirectoryEntry>, TargetError> {
        self.0.directory_entry(address).await.map_err(target_error)
    }

    async fn add_members(
        &self,
        group: &str,
        members: &[String],
    ) -> Result<Result<(), DirectoryRefusal>, TargetError> {
        refusal_or(self.0.add_members(group, members).await)
    }

    async fn update_flags(
        &self,
        address: &str,
        _target_folder: &str,
        source_key: &str,
        flags: &ItemFlags,
    ) -> Result<FlagUpdate, TargetError> {
        self.0
            .update_flags(address, source_key, flags)
            .await
            .map_err(target_error)
    }
}

/// A fake-imap user's mail as reconciliation input; `map_folder` gives each source folder's
/// target path (None: the folder is not migrated).
pub fn source_from_fake_imap(
    store: &fake_imap::Store,
    user: &str,
    map_folder: impl Fn(&str) -> Option<String>,
) -> Result<Vec<SourceMessage>, fake_target::Error> {
    let invalid = |e: fake_imap::Error| fake_target::Error::Invalid(e.to_string());
    let mut out = Vec::new();
    for f in store.folders(user).map_err(invalid)? {
        let Some(target) = map_folder(&f.name) else {
            continue;
        };
        for m in store.messages(user, &f.name).map_err(invalid)? {
            let flags: Vec<&str> = m.flags.iter().map(String::as_str).collect();
            out.push(SourceMessage {
                label: format!("{} UID {}", f.name, m.uid),
                folder: target.clone(),
                fingerprint: fingerprint(&m.raw),
                flags: ItemFlags::from_imap(&flags),
                received_time: Some(m.internal_date.to_utc()),
            });
        }
    }
    Ok(out)
}

/// A fake-exchange mailbox's mail, events and contacts as reconciliation input: folder paths
/// below the top of the store (as the tenant names them), the read flag of messages. Items the
/// fake serves broken are left out: the migration skips them (and reports them so). None when
/// the organisation has no such mailbox.
pub fn source_from_fake_exchange(
    org: &fake_exchange::Organisation,
    mailbox: &str,
) -> Option<Vec<SourceMessage>> {
    use fake_exchange::org::{FolderClass, ItemKind};
    let state = org.lock();
    let mb = state.mailbox(mailbox)?;
    let path = |mut id: u32| {
        let mut parts = Vec::new();
        while let Some(parent) = mb.folders[id as usize].parent {
            if mb.folders[id as usize].class == FolderClass::Root {
                break;
            }
            parts.push(mb.folders[id as usize].name.clone());
            id = parent;
        }
        parts.reverse();
        parts.join("/")
    };
    let mut out = Vec::new();
    for f in &mb.folders {
        if !matches!(
            f.class,
            FolderClass::Mail | FolderClass::Calendar | FolderClass::Contacts
        ) {
            continue;
        }
        let folder = path(f.id);
        for i in f.items.values().filter(|i| i.broken.is_none()) {
            let read: &[&str] = if i.is_read && i.kind == ItemKind::Message {
                &["\\Seen"]
            } else {
                &[]
            };
            out.push(SourceMessage {
                label: format!("{folder} item {}", i.id),
                folder: folder.clone(),
                fingerprint: fingerprint(&i.mime),
                flags: ItemFlags::from_imap(read),
                received_time: Some(i.received),
            });
        }
    }
    Some(out)
}
