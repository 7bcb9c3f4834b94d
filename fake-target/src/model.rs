//! The tenant's vocabulary: recipients, folders, items, and what an import can come to.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// 35 MiB, Exchange Online's largest message.
pub const DEFAULT_MAX_MESSAGE_SIZE: u64 = 36_700_160;
/// How long an unlicensed mailbox works before it is disabled.
pub const LICENCE_GRACE_DAYS: i64 = 30;

/// What kind of directory object a recipient is. Cutover provisions all of these; an IMAP
/// migration can only write into `UserMailbox`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum RecipientKind {
    UserMailbox,
    MailUser,
    MailContact,
    DistributionGroup { members: Vec<String> },
    MailEnabledSecurityGroup { members: Vec<String> },
}

impl RecipientKind {
    pub fn name(&self) -> &'static str {
        match self {
            RecipientKind::UserMailbox => "userMailbox",
            RecipientKind::MailUser => "mailUser",
            RecipientKind::MailContact => "mailContact",
            RecipientKind::DistributionGroup { .. } => "distributionGroup",
            RecipientKind::MailEnabledSecurityGroup { .. } => "mailEnabledSecurityGroup",
        }
    }
}

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
}

impl WellKnown {
    pub const ALL: [WellKnown; 7] = [
        WellKnown::Inbox,
        WellKnown::Drafts,
        WellKnown::SentItems,
        WellKnown::DeletedItems,
        WellKnown::JunkEmail,
        WellKnown::Archive,
        WellKnown::Outbox,
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

/// Read / replied / draft / flagged state and keywords, spelt as IMAP flags on the wire
/// (`\Seen`, `\Answered`, `\Draft`, `\Flagged`, keywords as they are).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemFlags {
    pub read: bool,
    pub replied: bool,
    pub draft: bool,
    pub flagged: bool,
    pub keywords: Vec<String>,
}

impl ItemFlags {
    /// Parses IMAP-style flags; `\Deleted` and `\Recent` carry no item state and are dropped.
    pub fn from_imap<S: AsRef<str>>(flags: &[S]) -> Self {
        let mut out = ItemFlags::default();
        for f in flags {
            let f = f.as_ref().trim();
            match f.to_ascii_lowercase().as_str() {
                "" => {}
                "\\seen" => out.read = true,
                "\\answered" => out.replied = true,
                "\\draft" => out.draft = true,
                "\\flagged" => out.flagged = true,
                "\\deleted" | "\\recent" => {}
                _ => {
                    if !out.keywords.iter().any(|k| k == f) {
                        out.keywords.push(f.to_string());
                    }
                }
            }
        }
        out.keywords.sort();
        out
    }

    pub fn to_imap(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.read {
            out.push("\\Seen".to_string());
        }
        if self.replied {
            out.push("\\Answered".to_string());
        }
        if self.draft {
            out.push("\\Draft".to_string());
        }
        if self.flagged {
            out.push("\\Flagged".to_string());
        }
        out.extend(self.keywords.iter().cloned());
        out
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemKind {
    #[default]
    Mail,
    Calendar,
    Contact,
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

/// What an importer says about a message besides its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportRequest {
    pub folder: String,
    /// The caller's identity for the message: the same key never makes a second item.
    pub source_key: String,
    pub received_time: Option<DateTime<Utc>>,
    pub flags: ItemFlags,
}

/// Why an import was refused for good.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "reason")]
pub enum Rejection {
    TooLarge { size: u64, max: u64 },
    QuotaExceeded,
    MailboxDisabled,
    NoSuchRecipient,
    InvalidFolder { message: String },
}

impl Rejection {
    /// Exchange's words, where it has them (exchange-migration.md §5).
    pub fn message(&self, address: &str) -> String {
        match self {
            Rejection::TooLarge { size, max } => {
                format!("The message is {size} bytes, over the limit of {max} bytes.")
            }
            Rejection::QuotaExceeded => {
                "This mailbox is full. Please free up some space so that email can be downloaded."
                    .to_string()
            }
            Rejection::MailboxDisabled => format!("The mailbox {address} is disabled."),
            Rejection::NoSuchRecipient => format!(
                "A recipient wasn't found for {address} on the target. Create a recipient of the \
                 appropriate type for this migration on the target and try again."
            ),
            Rejection::InvalidFolder { message } => message.clone(),
        }
    }
}

/// How an import ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImportOutcome {
    Created(String),
    /// The source key was imported before: nothing new was made.
    AlreadyPresent(String),
    Rejected(Rejection),
    /// Come back after this long.
    Throttled(Duration),
    /// A passing server fault; retrying is safe (imports are idempotent).
    Transient(String),
}

impl ImportOutcome {
    /// The item id when the message is (now or already) in the mailbox.
    pub fn id(&self) -> Option<&str> {
        match self {
            ImportOutcome::Created(id) | ImportOutcome::AlreadyPresent(id) => Some(id),
            _ => None,
        }
    }
}

/// How a flag update by source key ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FlagUpdate {
    Updated,
    Unchanged,
    NotFound,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imap_flags_round_trip() {
        let f = ItemFlags::from_imap(&["\\Seen", "\\FLAGGED", "$Work", "\\Deleted", "$Work"]);
        assert!(f.read && f.flagged && !f.replied && !f.draft);
        assert_eq!(f.keywords, vec!["$Work"]);
        assert_eq!(f.to_imap(), vec!["\\Seen", "\\Flagged", "$Work"]);
    }

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
