//! The kinds of per-user sync the migration service runs.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What kind of sync a user's running (or next) job is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SyncKind {
    /// The first copy of a mailbox.
    Initial,
    /// The daily sync of what changed since.
    Incremental,
    /// The last incremental sync, when a batch is completed.
    Final,
}

impl SyncKind {
    pub const ALL: [SyncKind; 3] = [SyncKind::Initial, SyncKind::Incremental, SyncKind::Final];

    pub fn as_str(self) -> &'static str {
        match self {
            SyncKind::Initial => "Initial",
            SyncKind::Incremental => "Incremental",
            SyncKind::Final => "Final",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for SyncKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SyncKind::Initial => "initial",
            SyncKind::Incremental => "incremental",
            SyncKind::Final => "final",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in SyncKind::ALL {
            assert_eq!(SyncKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(SyncKind::Incremental.to_string(), "incremental");
    }
}
