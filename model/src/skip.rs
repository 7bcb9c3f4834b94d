//! Why an item or a folder was not migrated. The names are the ones reports and the state
//! database use (`LargeItem`, `BadItem`, ...), so they never change spelling.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SkipReason {
    /// Over the size limit (the engine's, decided before downloading, or the target's).
    LargeItem,
    /// The source would not return it, or returned something unusable.
    BadItem,
    /// Over the item cap of a mailbox (the newest are kept).
    ItemCap,
    /// The folder's name cannot be migrated (a `/` in a level, an empty level, refused by the
    /// target).
    FolderName,
    /// Expunged at the source while the sync ran.
    Vanished,
    /// Merged into another folder with the same target (a case-only collision).
    Merged,
    /// Left out by the batch's folder filters.
    Excluded,
    /// Not a mail folder (calendar, contacts, public folders in an IMAP listing).
    NotMail,
    /// A `\Noselect` folder: it holds no messages.
    NoSelect,
}

impl SkipReason {
    pub const ALL: [SkipReason; 9] = [
        SkipReason::LargeItem,
        SkipReason::BadItem,
        SkipReason::ItemCap,
        SkipReason::FolderName,
        SkipReason::Vanished,
        SkipReason::Merged,
        SkipReason::Excluded,
        SkipReason::NotMail,
        SkipReason::NoSelect,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::LargeItem => "LargeItem",
            SkipReason::BadItem => "BadItem",
            SkipReason::ItemCap => "ItemCap",
            SkipReason::FolderName => "FolderName",
            SkipReason::Vanished => "Vanished",
            SkipReason::Merged => "Merged",
            SkipReason::Excluded => "Excluded",
            SkipReason::NotMail => "NotMail",
            SkipReason::NoSelect => "NoSelect",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for r in SkipReason::ALL {
            assert_eq!(SkipReason::parse(r.as_str()), Some(r));
            assert_eq!(r.to_string(), r.as_str());
        }
        assert_eq!(SkipReason::parse("largeitem"), None, "spelling is exact");
    }
}
