//! The copy's checkpoint: what the target acknowledged, per source message, and what was
//! skipped. A row enters `copied` only after the target said Created or AlreadyPresent, so a
//! crash at any point is followed by a re-run that neither loses nor duplicates anything.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::Tx;
use crate::error::Error;
use crate::source::FolderState;
use crate::sync::{SkipReason, SkippedItem};

/// Where a folder's records live: the mailbox, the source folder, and the UID validity its
/// UIDs belong to.
#[derive(Clone, Copy, Debug)]
pub struct FolderKey<'a> {
    pub email: &'a str,
    pub folder: &'a str,
    pub uid_validity: u32,
}

/// One acknowledged message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopiedRecord {
    pub uid: u32,
    /// The source flags last written to the target, space-separated.
    pub flags: String,
    /// Message-ID, Date and size: the identity that survives a UIDVALIDITY change.
    pub fingerprint: String,
    /// The key the target knows the message by.
    pub source_key: String,
    pub size: u64,
    /// What the target's import returned for it (an IMAP target's `UIDVALIDITY:UID:folder`).
    pub target_id: Option<String>,
}

/// A message a run was about to import when it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Intent {
    pub uid_validity: u32,
    pub target_folder: String,
    pub record: CopiedRecord,
    /// The message's size with every bare LF made CRLF (as a target may hold it).
    pub wire_size: u64,
}

/// A folder as it was when its copy last finished with nothing left out (every listed message
/// recorded as copied, none skipped): a later sync that finds it in the same state need not
/// list it again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FolderSeen {
    pub state: FolderState,
    /// The UIDs it listed then.
    pub uids: Vec<u32>,
}

/// UIDs as an IMAP sequence set (`1:500,502`): ascending UIDs take a few bytes.
pub fn uid_runs(uids: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < uids.len() {
        let mut j = i;
        while j + 1 < uids.len() && uids[j + 1] == uids[j].wrapping_add(1) {
            j += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        match i == j {
            true => out.push_str(&uids[i].to_string()),
            false => out.push_str(&format!("{}:{}", uids[i], uids[j])),
        }
        i = j + 1;
    }
    out
}

/// The UIDs of [`uid_runs`]; `None` for text it did not write.
pub fn parse_uid_runs(text: &str) -> Option<Vec<u32>> {
    let mut uids = Vec::new();
    for run in text.split(',').filter(|r| !r.is_empty()) {
        match run.split_once(':') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
                if a > b {
                    return None;
                }
                uids.extend(a..=b);
            }
            None => uids.push(run.parse().ok()?),
        }
    }
    Some(uids)
}

/// What the checkpoint holds of a mailbox as a whole.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Distinct target items.
    pub items: u64,
    pub bytes: u64,
}

impl Tx<'_> {
    /// The records of one folder under one UID validity, by UID.
    pub fn copied(&self, key: FolderKey<'_>) -> Result<HashMap<u32, CopiedRecord>, Error> {
        let mut stmt = self.0.prepare_cached(
            "SELECT uid, flags, fingerprint, source_key, size, target_id FROM copied
             WHERE email = ?1 AND folder = ?2 AND uidvalidity = ?3",
        )?;
        let rows = stmt.query_map(params![key.email, key.folder, key.uid_validity], |r| {
            let uid = r.get::<_, i64>(0)? as u32;
            Ok((
                uid,
                CopiedRecord {
                    uid,
                    flags: r.get(1)?,
                    fingerprint: r.get(2)?,
                    source_key: r.get(3)?,
                    size: r.get::<_, i64>(4)? as u64,
                    target_id: r.get(5)?,
                },
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// (fingerprint, source key, target id) of a folder's messages recorded under any other
    /// UID validity, oldest first.
    pub fn copied_under_other_validity(
        &self,
        key: FolderKey<'_>,
    ) -> Result<Vec<(String, String, Option<String>)>, Error> {
        let mut stmt = self.0.prepare_cached(
            "SELECT fingerprint, source_key, target_id FROM copied
             WHERE email = ?1 AND folder = ?2 AND uidvalidity <> ?3 ORDER BY uidvalidity, uid",
        )?;
        let rows = stmt.query_map(params![key.email, key.folder, key.uid_validity], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records acknowledged messages of one folder (many per transaction: no fsync per
    /// message); a record that exists already gets the new flags.
    pub fn record_copied(
        &self,
        key: FolderKey<'_>,
        target_folder: &str,
        done: &[CopiedRecord],
    ) -> Result<(), Error> {
        let mut stmt = self.0.prepare_cached(
            "INSERT INTO copied (email, folder, uidvalidity, uid, flags, fingerprint,
                                 target_folder, source_key, size, target_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT(email, folder, uidvalidity, uid) DO UPDATE SET flags = excluded.flags,
                 target_id = COALESCE(excluded.target_id, copied.target_id)",
        )?;
        for r in done {
            stmt.execute(params![
                key.email,
                key.folder,
                key.uid_validity,
                r.uid,
                r.flags,
                r.fingerprint,
                target_folder,
                r.source_key,
                r.size as i64,
                r.target_id
            ])?;
        }
        Ok(())
    }

    /// Write-ahead: the messages of a chunk about to be imported, recorded before the first
    /// import and cleared with the chunk's records. One left behind means a run ended in
    /// between, and its import may or may not have reached the target.
    pub fn record_intents(
        &self,
        key: FolderKey<'_>,
        target_folder: &str,
        intents: &[(CopiedRecord, u64)],
    ) -> Result<(), Error> {
        let mut stmt = self.0.prepare_cached(
            "INSERT OR REPLACE INTO intents (email, folder, uidvalidity, uid, flags, fingerprint,
                                             target_folder, source_key, size, wire_size)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        for (r, wire_size) in intents {
            stmt.execute(params![
                key.email,
                key.folder,
                key.uid_validity,
                r.uid,
                r.flags,
                r.fingerprint,
                target_folder,
                r.source_key,
                r.size as i64,
                *wire_size as i64
            ])?;
        }
        Ok(())
    }

    /// A folder's intents left behind by an earlier run: (UID validity, target folder, record).
    pub fn intents(&self, email: &str, folder: &str) -> Result<Vec<Intent>, Error> {
        let mut stmt = self.0.prepare_cached(
            "SELECT uidvalidity, target_folder, uid, flags, fingerprint, source_key, size,
                    wire_size
             FROM intents WHERE email = ?1 AND folder = ?2 ORDER BY uidvalidity, uid",
        )?;
        let rows = stmt.query_map(params![email, folder], |r| {
            Ok(Intent {
                uid_validity: r.get::<_, i64>(0)? as u32,
                target_folder: r.get(1)?,
                record: CopiedRecord {
                    uid: r.get::<_, i64>(2)? as u32,
                    flags: r.get(3)?,
                    fingerprint: r.get(4)?,
                    source_key: r.get(5)?,
                    size: r.get::<_, i64>(6)? as u64,
                    target_id: None,
                },
                // An older file's intents: the size as it was.
                wire_size: r.get::<_, Option<i64>>(7)?.unwrap_or(r.get(6)?) as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Clears intents: a chunk's (`uids`), or with `None` every one of the folder.
    pub fn clear_intents(
        &self,
        email: &str,
        folder: &str,
        uids: Option<(u32, &[u32])>,
    ) -> Result<(), Error> {
        match uids {
            None => {
                self.0
                    .prepare_cached("DELETE FROM intents WHERE email = ?1 AND folder = ?2")?
                    .execute(params![email, folder])?;
            }
            Some((validity, uids)) => {
                let mut stmt = self.0.prepare_cached(
                    "DELETE FROM intents
                     WHERE email = ?1 AND folder = ?2 AND uidvalidity = ?3 AND uid = ?4",
                )?;
                for uid in uids {
                    stmt.execute(params![email, folder, validity, uid])?;
                }
            }
        }
        Ok(())
    }

    /// Distinct target items recorded for a mailbox, and their bytes.
    pub fn copied_totals(&self, email: &str) -> Result<Totals, Error> {
        Ok(self
            .0
            .prepare_cached(
                "SELECT count(*), coalesce(sum(size), 0) FROM (
                 SELECT source_key, max(size) AS size FROM copied WHERE email = ?1
                 GROUP BY source_key)",
            )?
            .query_row(params![email], |r| {
                Ok(Totals {
                    items: r.get::<_, i64>(0)? as u64,
                    bytes: r.get::<_, i64>(1)? as u64,
                })
            })?)
    }

    /// Forgets every record of the copy (all mailboxes): what a lost state file looks like to
    /// the next run. For tests of the target-side idempotence.
    pub fn forget_copied(&self) -> Result<(), Error> {
        self.0.prepare_cached("DELETE FROM copied")?.execute([])?;
        self.0
            .prepare_cached("DELETE FROM folders_seen")?
            .execute([])?;
        Ok(())
    }

    /// The mailbox's folders as their last complete copies saw them, by folder name.
    pub fn folders_seen(&self, email: &str) -> Result<HashMap<String, FolderSeen>, Error> {
        let mut stmt = self.0.prepare_cached(
            "SELECT folder, uidvalidity, uidnext, messages, highestmodseq, uids
             FROM folders_seen WHERE email = ?1",
        )?;
        let rows = stmt.query_map(params![email], |r| {
            Ok((
                r.get::<_, String>(0)?,
                FolderState {
                    uid_validity: r.get::<_, i64>(1)? as u32,
                    uid_next: r.get::<_, i64>(2)? as u32,
                    exists: r.get::<_, i64>(3)? as u32,
                    highest_modseq: r.get::<_, i64>(4)? as u64,
                },
                r.get::<_, String>(5)?,
            ))
        })?;
        let mut seen = HashMap::new();
        for row in rows {
            let (folder, state, uids) = row?;
            // A row that cannot be read only costs its folder a listing.
            if let Some(uids) = parse_uid_runs(&uids) {
                seen.insert(folder, FolderSeen { state, uids });
            }
        }
        Ok(seen)
    }

    /// Records a folder's state after a copy that left nothing out (replacing the last).
    pub fn record_folder_seen(
        &self,
        email: &str,
        folder: &str,
        seen: &FolderSeen,
    ) -> Result<(), Error> {
        self.0
            .prepare_cached(
                "INSERT INTO folders_seen
                     (email, folder, uidvalidity, uidnext, messages, highestmodseq, uids)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT(email, folder) DO UPDATE SET
                     uidvalidity = excluded.uidvalidity, uidnext = excluded.uidnext,
                     messages = excluded.messages, highestmodseq = excluded.highestmodseq,
                     uids = excluded.uids",
            )?
            .execute(params![
                email,
                folder,
                seen.state.uid_validity,
                seen.state.uid_next,
                seen.state.exists,
                seen.state.highest_modseq as i64,
                uid_runs(&seen.uids),
            ])?;
        Ok(())
    }

    /// Forgets a folder's state: its next sync lists it.
    pub fn forget_folder_seen(&self, email: &str, folder: &str) -> Result<(), Error> {
        self.0
            .prepare_cached("DELETE FROM folders_seen WHERE email = ?1 AND folder = ?2")?
            .execute(params![email, folder])?;
        Ok(())
    }

    /// Records a sync's skipped items (a later skip of the same item replaces the earlier).
    pub fn record_skipped(
        &self,
        email: &str,
        skipped: &[SkippedItem],
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let mut stmt = self.0.prepare_cached(
            "INSERT INTO skipped_items (email, folder, item, reason, detail, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(email, folder, item) DO UPDATE SET reason = excluded.reason,
                 detail = excluded.detail, at = excluded.at",
        )?;
        for s in skipped {
            stmt.execute(params![
                email,
                s.folder,
                s.item,
                s.reason.as_str(),
                s.detail,
                now.to_rfc3339()
            ])?;
        }
        Ok(())
    }

    /// Every skip recorded for a user, in folder and item order.
    pub fn skipped_items(&self, email: &str) -> Result<Vec<SkippedItem>, Error> {
        let mut stmt = self.0.prepare_cached(
            "SELECT folder, item, reason, detail FROM skipped_items WHERE email = ?1
             ORDER BY folder, item",
        )?;
        let rows = stmt.query_map(params![email], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get::<_, String>(2)?, r.get(3)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (folder, item, reason, detail) = row?;
            let reason = SkipReason::parse(&reason).ok_or_else(|| {
                Error::State(format!(
                    "skipped item {folder} {item}: unknown reason {reason:?}"
                ))
            })?;
            out.push(SkippedItem {
                folder,
                item,
                reason,
                detail,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::state::StateDb;

    #[test]
    fn records_round_trip_and_totals_count_distinct_target_items() {
        let dir = tempfile::tempdir().unwrap();
        let db = StateDb::open(dir.path()).unwrap();
        let key = FolderKey {
            email: "a@contoso.edu",
            folder: "INBOX",
            uid_validity: 7,
        };
        let rec = |uid: u32, source_key: &str| CopiedRecord {
            uid,
            flags: "\\Seen".into(),
            fingerprint: format!("fp{uid}"),
            source_key: source_key.into(),
            size: 100,
            target_id: (uid == 2).then(|| format!("9:{uid}:INBOX")),
        };
        db.transaction(|tx| {
            tx.record_copied(key, "Inbox", &[rec(1, "k1"), rec(2, "k2")])?;
            // The same target item under a new UIDVALIDITY is one item, not two.
            tx.record_copied(
                FolderKey {
                    uid_validity: 8,
                    ..key
                },
                "Inbox",
                &[rec(5, "k1")],
            )
        })
        .unwrap();
        let copied = db.read(|tx| tx.copied(key)).unwrap();
        assert_eq!(copied.len(), 2);
        assert_eq!(copied[&2], rec(2, "k2"));
        let other = db
            .read(|tx| {
                tx.copied_under_other_validity(FolderKey {
                    uid_validity: 8,
                    ..key
                })
            })
            .unwrap();
        assert_eq!(
            other,
            vec![
                ("fp1".into(), "k1".into(), None),
                ("fp2".into(), "k2".into(), Some("9:2:INBOX".into()))
            ]
        );
        // A flag update (no id given) keeps the id a record has.
        db.transaction(|tx| {
            tx.record_copied(
                key,
                "Inbox",
                &[CopiedRecord {
                    target_id: None,
                    flags: String::new(),
                    ..rec(2, "k2")
                }],
            )
        })
        .unwrap();
        let copied = db.read(|tx| tx.copied(key)).unwrap();
        assert_eq!(copied[&2].target_id.as_deref(), Some("9:2:INBOX"));
        let totals = db.read(|tx| tx.copied_totals("A@contoso.edu")).unwrap();
        assert_eq!(
            totals,
            Totals {
                items: 2,
                bytes: 200
            }
        );
    }

    #[test]
    fn skipped_items_keep_their_reason() {
        let dir = tempfile::tempdir().unwrap();
        let db = StateDb::open(dir.path()).unwrap();
        let now = Utc::now();
        let skips = vec![
            SkippedItem::message("INBOX", 3, SkipReason::LargeItem, "too big"),
            SkippedItem::folder("a/b", SkipReason::FolderName, "slash"),
        ];
        db.transaction(|tx| tx.record_skipped("a@contoso.edu", &skips, now))
            .unwrap();
        let back = db.read(|tx| tx.skipped_items("a@contoso.edu")).unwrap();
        assert_eq!(back.len(), 2);
        assert!(back.contains(&skips[0]) && back.contains(&skips[1]));
    }

    #[test]
    fn uid_runs_round_trip() {
        for uids in [
            vec![],
            vec![7],
            vec![1, 2, 3, 5, 8, 9, 10],
            (1..=10_000).collect::<Vec<u32>>(),
            vec![1, u32::MAX - 1, u32::MAX],
        ] {
            let text = uid_runs(&uids);
            assert_eq!(parse_uid_runs(&text), Some(uids), "{text}");
        }
        assert_eq!(uid_runs(&[1, 2, 3, 5, 8, 9, 10]), "1:3,5,8:10");
        assert_eq!(uid_runs(&(1..=10_000).collect::<Vec<u32>>()), "1:10000");
        for bad in ["x", "3:1", "1:", ",:2"] {
            assert_eq!(parse_uid_runs(bad), None, "{bad}");
        }
    }

    #[test]
    fn folders_seen_round_trip_and_go_with_the_user() {
        let dir = tempfile::tempdir().unwrap();
        let db = StateDb::open(dir.path()).unwrap();
        let seen = FolderSeen {
            state: FolderState {
                uid_validity: 9,
                uid_next: 31,
                exists: 28,
                highest_modseq: 1 << 40,
            },
            uids: vec![1, 2, 3, 7],
        };
        db.transaction(|tx| tx.record_folder_seen("a@contoso.edu", "INBOX", &seen))
            .unwrap();
        let back = db.read(|tx| tx.folders_seen("A@contoso.edu")).unwrap();
        assert_eq!(back.get("INBOX"), Some(&seen));
        db.transaction(|tx| tx.forget_folder_seen("a@contoso.edu", "INBOX"))
            .unwrap();
        assert!(
            db.read(|tx| tx.folders_seen("a@contoso.edu"))
                .unwrap()
                .is_empty()
        );
    }
}
