//! The tenant's vocabulary: recipients, folders, items, and what an import can come to.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

// The import vocabulary is shared with the engine through the neutral model crate.
pub use mailmig_model::{
    DirectoryEntry, DirectoryKind, DirectoryLinks, DirectoryObject, DirectoryRefusal, FlagUpdate,
    ImportOutcome, ImportRequest, ItemFlags, ItemKind, MEMBERS_PER_CALL, OrganizationInfo,
    PersonAttributes, ProvisionOutcome, RecipientKind, Rejection,
};

/// 35 MiB, Exchange Online's largest message.
pub const DEFAULT_MAX_MESSAGE_SIZE: u64 = 36_700_160;
/// How long an unlicensed mailbox works before it is disabled.
pub const LICENCE_GRACE_DAYS: i64 = 30;

/// A directory entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recipient {
    /// Primary SMTP address.
    pub address: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(flatten)]
    pub kind: RecipientKind,
    /// Disabled by an admin (independent of licences).
    pub enabled: bool,
    pub licensed: bool,
    /// When the mailbox started running without a licence (its creation, usually).
    pub grace_started: DateTime<Utc>,
    /// Mailbox quota in bytes; `None` = unlimited.
    #[serde(default)]
    pub quota_bytes: Option<u64>,
    /// What provisioning wrote (cutover); empty for recipients made by configuration.
    #[serde(default)]
    pub directory: DirectoryAttributes,
}

/// A recipient's directory attributes beyond its addresses and kind.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DirectoryAttributes {
    pub name: Option<String>,
    pub display_name: Option<String>,
    /// Non-SMTP proxy addresses (`X500:` ...); SMTP ones are `aliases`.
    pub proxy_addresses: Vec<String>,
    pub external_address: Option<String>,
    pub person: PersonAttributes,
    pub links: DirectoryLinks,
    /// The generated initial password (kept for the test handle; never shown by the API).
    pub initial_password: Option<String>,
    pub must_change_password: bool,
}

impl Recipient {
    pub fn mailbox(address: &str, licensed: bool, now: DateTime<Utc>) -> Self {
        Self {
            address: address.to_string(),
            aliases: Vec::new(),
            kind: RecipientKind::UserMailbox,
            enabled: true,
            licensed,
            grace_started: now,
            quota_bytes: None,
            directory: DirectoryAttributes::default(),
        }
    }

    pub fn answers_to(&self, address: &str) -> bool {
        self.address.eq_ignore_ascii_case(address)
            || self.aliases.iter().any(|a| a.eq_ignore_ascii_case(address))
    }

    /// Whether the mailbox works at `now`: enabled, and licensed or within the 30-day grace.
    pub fn active_at(&self, now: DateTime<Utc>) -> bool {
        self.enabled
            && (self.licensed
                || now < self.grace_started + chrono::Duration::days(LICENCE_GRACE_DAYS))
    }
}

/// The public view of a recipient (`GET /v1/users`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecipientInfo {
    pub address: String,
    pub aliases: Vec<String>,
    pub kind: String,
    pub licensed: bool,
    /// Effective state now: false once disabled or past the licence grace.
    pub enabled: bool,
    pub quota_bytes: Option<u64>,
    pub used_bytes: u64,
    pub item_count: u64,
}

/// Exchange's well-known folders, with Graph's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WellKnown {
    Inbox,
    Drafts,
    SentItems,
    DeletedItems,
    JunkEmail,
    Archive,
    Outbox,
    Calendar,
    Contacts,
}

impl WellKnown {
    pub const ALL: [WellKnown; 9] = [
        WellKnown::Inbox,
        WellKnown::Drafts,
        WellKnown::SentItems,
        WellKnown::DeletedItems,
        WellKnown::JunkEmail,
        WellKnown::Archive,
        WellKnown::Outbox,
        WellKnown::Calendar,
        WellKnown::Contacts,
    ];

    /// The display name, which is also the folder's path.
    pub fn display_name(self) -> &'static str {
        match self {
            WellKnown::Inbox => "Inbox",
            WellKnown::Drafts => "Drafts",
            WellKnown::SentItems => "Sent Items",
            WellKnown::DeletedItems => "Deleted Items",
            WellKnown::JunkEmail => "Junk Email",
            WellKnown::Archive => "Archive",
            WellKnown::Outbox => "Outbox",
            WellKnown::Calendar => "Calendar",
            WellKnown::Contacts => "Contacts",
        }
    }

    pub fn api_name(self) -> &'static str {
        match self {
            WellKnown::Inbox => "inbox",
            WellKnown::Drafts => "drafts",
            WellKnown::SentItems => "sentitems",
            WellKnown::DeletedItems => "deleteditems",
            WellKnown::JunkEmail => "junkemail",
            WellKnown::Archive => "archive",
            WellKnown::Outbox => "outbox",
            WellKnown::Calendar => "calendar",
            WellKnown::Contacts => "contacts",
        }
    }

    /// The kind of item the folder (and its subfolders) holds.
    pub fn item_kind(self) -> ItemKind {
        match self {
            WellKnown::Calendar => ItemKind::Calendar,
            WellKnown::Contacts => ItemKind::Contact,
            _ => ItemKind::Mail,
        }
    }
}

/// A folder of a mailbox (`GET .../mailFolders`). Paths use `/` between levels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FolderInfo {
    pub path: String,
    pub well_known_name: Option<String>,
    pub item_count: u64,
}

/// An item's metadata (`GET .../messages`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemInfo {
    pub id: String,
    pub folder: String,
    pub source_key: String,
    pub size: u64,
    pub received_time: DateTime<Utc>,
    pub flags: Vec<String>,
    pub kind: ItemKind,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn licence_grace_is_thirty_days() {
        let start = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .to_utc();
        let r = Recipient::mailbox("a@contoso.edu", false, start);
        assert!(r.active_at(start + chrono::Duration::days(29)));
        assert!(!r.active_at(start + chrono::Duration::days(30)));
        let licensed = Recipient::mailbox("b@contoso.edu", true, start);
        assert!(licensed.active_at(start + chrono::Duration::days(400)));
    }
}
