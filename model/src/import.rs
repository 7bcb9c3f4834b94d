//! What an importer asks of a target, and what the target answers.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

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

/// What an importer says about a message besides its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportRequest {
    pub folder: String,
    /// Mail (RFC 5322), a calendar item (iCalendar) or a contact (vCard).
    pub kind: ItemKind,
    /// The caller's identity for the message: the same key never makes a second item.
    pub source_key: String,
    pub received_time: Option<DateTime<Utc>>,
    pub flags: ItemFlags,
}

/// What an item is, which decides the folders it may go to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemKind {
    #[default]
    Mail,
    Calendar,
    Contact,
}

impl ItemKind {
    pub fn name(self) -> &'static str {
        match self {
            ItemKind::Mail => "mail",
            ItemKind::Calendar => "calendar",
            ItemKind::Contact => "contact",
        }
    }
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
}
