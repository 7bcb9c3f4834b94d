//! The mailbox model: users -> folders -> messages.
//!
//! One `Store` is shared by every session of a server and by the test that owns the server (to
//! add or inspect mail while it runs). Message bytes are `Bytes`, so a FETCH hands out a reference
//! to the stored bytes instead of a copy. Folder names are Unicode here; sessions encode them in
//! modified UTF-7 on the wire. `INBOX` is always spelt `INBOX` and matched case-insensitively.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use chrono::{DateTime, FixedOffset, Timelike};

use crate::error::Error;

/// System flags as they are spelt on the wire; anything else without a backslash is a keyword.
pub const SEEN: &str = "\\Seen";
pub const ANSWERED: &str = "\\Answered";
pub const FLAGGED: &str = "\\Flagged";
pub const DELETED: &str = "\\Deleted";
pub const DRAFT: &str = "\\Draft";

/// One stored message.
#[derive(Clone, Debug)]
pub struct Message {
    pub uid: u32,
    pub raw: Bytes,
    pub flags: BTreeSet<String>,
    pub internal_date: DateTime<FixedOffset>,
    /// Set on delivery; cleared when a read-write session first sees the message, which then
    /// holds its \Recent flag alone (RFC 3501 §2.3.2).
    pub recent: bool,
    /// CONDSTORE's MODSEQ: the folder's modification sequence when this message last changed.
    pub modseq: u64,
}

impl Message {
    pub fn size(&self) -> u32 {
        u32::try_from(self.raw.len()).unwrap_or(u32::MAX)
    }
}

/// One folder. Messages are kept in ascending UID order, which is also sequence-number order.
#[derive(Clone, Debug)]
pub struct Folder {
    pub uid_validity: u32,
    pub uid_next: u32,
    pub selectable: bool,
    /// Made as the parent of a CREATEd name, not created itself: LIST shows it \Noselect
    /// until a CREATE names it.
    pub implicit: bool,
    pub messages: Vec<Message>,
    /// The highest MODSEQ given out: every change (a message added, flags changed, a message
    /// expunged) takes the next one, so a session that knows this value knows it saw all.
    pub highest_modseq: u64,
    /// Every keyword ever used in the folder (FLAGS and PERMANENTFLAGS list them).
    pub keywords: BTreeSet<String>,
    /// SPECIAL-USE attribute (`\Sent`, ...).
    pub special_use: Option<String>,
}

impl Folder {
    fn new(uid_validity: u32, selectable: bool) -> Self {
        Self {
            uid_validity,
            uid_next: 1,
            selectable,
            implicit: false,
            messages: Vec::new(),
            highest_modseq: 1,
            keywords: BTreeSet::new(),
            special_use: None,
        }
    }

    /// Takes the next modification sequence.
    pub fn bump(&mut self) -> u64 {
        self.highest_modseq += 1;
        self.highest_modseq
    }

    fn note_keywords(&mut self, flags: &BTreeSet<String>) {
        for f in flags {
            if !f.starts_with('\\') && !self.keywords.contains(f) {
                self.keywords.insert(f.clone());
            }
        }
    }

    /// Replaces the flags of the message at `index`; true (and a new MODSEQ) if they changed.
    pub fn set_flags_at(&mut self, index: usize, flags: BTreeSet<String>) -> bool {
        if self.messages[index].flags == flags {
            return false;
        }
        self.note_keywords(&flags);
        let modseq = self.bump();
        let m = &mut self.messages[index];
        m.flags = flags;
        m.modseq = modseq;
        true
    }

    /// Removes the messages `gone` picks; returns their UIDs.
    pub fn expunge_where(&mut self, mut gone: impl FnMut(&Message) -> bool) -> Vec<u32> {
        let mut removed = Vec::new();
        self.messages.retain(|m| {
            let g = gone(m);
            if g {
                removed.push(m.uid);
            }
            !g
        });
        if !removed.is_empty() {
            self.bump();
        }
        removed
    }

    pub fn position(&self, uid: u32) -> Option<usize> {
        self.messages.binary_search_by_key(&uid, |m| m.uid).ok()
    }

    pub fn get(&self, uid: u32) -> Option<&Message> {
        self.position(uid).map(|i| &self.messages[i])
    }

    pub fn get_mut(&mut self, uid: u32) -> Option<&mut Message> {
        self.position(uid).map(|i| &mut self.messages[i])
    }

    pub fn unseen(&self) -> u32 {
        self.messages
            .iter()
            .filter(|m| !m.flags.contains(SEEN))
            .count() as u32
    }

    pub fn recent(&self) -> u32 {
        self.messages.iter().filter(|m| m.recent).count() as u32
    }

    fn push(&mut self, raw: Bytes, flags: BTreeSet<String>, date: DateTime<FixedOffset>) -> u32 {
        let uid = self.uid_next;
        self.uid_next += 1;
        // IMAP dates have whole seconds; keep what a client can see.
        let date = date.with_nanosecond(0).unwrap_or(date);
        self.note_keywords(&flags);
        let modseq = self.bump();
        self.messages.push(Message {
            uid,
            raw,
            flags,
            internal_date: date,
            recent: true,
            modseq,
        });
        uid
    }
}

/// A user's folders and subscriptions.
#[derive(Clone, Debug, Default)]
pub struct Account {
    pub folders: BTreeMap<String, Folder>,
    pub subscriptions: BTreeSet<String>,
}

struct Inner {
    delimiter: char,
    next_uid_validity: u32,
    users: BTreeMap<String, Account>,
}

/// The shared mail store. Cheap to clone (an `Arc`).
#[derive(Clone)]
pub struct Store {
    inner: Arc<Mutex<Inner>>,
}

/// What a caller wants to know about a folder without holding the lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FolderInfo {
    pub name: String,
    pub uid_validity: u32,
    pub uid_next: u32,
    pub exists: u32,
    pub selectable: bool,
    /// A parent made by CREATE of a child, not a mailbox itself (\NonExistent).
    pub implicit: bool,
    pub special_use: Option<String>,
}

/// Canonical spelling of a folder name: INBOX (and INBOX's children) in upper case.
pub fn canonical(name: &str, delimiter: char) -> String {
    let first_len = name.find(delimiter).unwrap_or(name.len());
    if name[..first_len].eq_ignore_ascii_case("INBOX") {
        format!("INBOX{}", &name[first_len..])
    } else {
        name.to_string()
    }
}

impl Store {
    pub fn new(delimiter: char, first_uid_validity: u32) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                delimiter,
                next_uid_validity: first_uid_validity.max(1),
                users: BTreeMap::new(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panicking test thread must not take every later session down with it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn delimiter(&self) -> char {
        self.lock().delimiter
    }

    /// Adds a user with an empty INBOX (no-op if the user exists).
    pub fn add_user(&self, user: &str) {
        let mut inner = self.lock();
        if inner.users.contains_key(user) {
            return;
        }
        let uv = inner.next_uid_validity;
        inner.next_uid_validity += 1;
        let mut account = Account::default();
        account
            .folders
            .insert("INBOX".to_string(), Folder::new(uv, true));
        account.subscriptions.insert("INBOX".to_string());
        inner.users.insert(user.to_string(), account);
    }

    pub fn users(&self) -> Vec<String> {
        self.lock().users.keys().cloned().collect()
    }

    pub fn has_user(&self, user: &str) -> bool {
        self.lock().users.contains_key(user)
    }

    /// Creates a folder and any missing parents (RFC 3501 says a server SHOULD).
    pub fn create_folder(&self, user: &str, name: &str) -> Result<(), Error> {
        self.create_folder_with(user, name, true, false, false)
    }

    /// CREATE as an IMAP client does it: missing parents become \Noselect placeholders (as
    /// in Dovecot), nothing is subscribed, and naming a placeholder makes it a mailbox.
    pub fn create_folder_by_client(&self, user: &str, name: &str) -> Result<(), Error> {
        self.create_folder_with(user, name, true, false, true)
    }

    /// Creates a folder that can hold no messages (LIST shows it `\Noselect`).
    pub fn create_noselect_folder(&self, user: &str, name: &str) -> Result<(), Error> {
        self.create_folder_with(user, name, false, true, false)
    }

    /// A fixture's folder (`by_client` false: real parents, everything subscribed) or a
    /// client's CREATE (placeholder parents, nothing subscribed).
    fn create_folder_with(
        &self,
        user: &str,
        name: &str,
        selectable: bool,
        exist_ok: bool,
        by_client: bool,
    ) -> Result<(), Error> {
        let mut inner = self.lock();
        let delimiter = inner.delimiter;
        let name = canonical(name, delimiter);
        if name.is_empty() {
            return Err(Error::InvalidFolderName(name));
        }
        let mut uv = inner.next_uid_validity;
        let account = inner
            .users
            .get_mut(user)
            .ok_or_else(|| Error::NoSuchUser(user.to_string()))?;
        match account.folders.get_mut(&name) {
            Some(f) if by_client && f.implicit => {
                f.implicit = false;
                f.selectable = true;
                return Ok(());
            }
            Some(_) if exist_ok => return Ok(()),
            Some(_) => return Err(Error::FolderExists(name)),
            None => {}
        }
        // Parents first, so LIST always shows a connected tree.
        let parts: Vec<&str> = name.split(delimiter).collect();
        for depth in 1..parts.len() {
            let parent = parts[..depth].join(&delimiter.to_string());
            if !parent.is_empty() && !account.folders.contains_key(&parent) {
                let mut folder = Folder::new(uv, !by_client);
                folder.implicit = by_client;
                account.folders.insert(parent.clone(), folder);
                if !by_client {
                    account.subscriptions.insert(parent);
                }
                uv += 1;
            }
        }
        account
            .folders
            .insert(name.clone(), Folder::new(uv, selectable));
        if !by_client {
            account.subscriptions.insert(name);
        }
        inner.next_uid_validity = uv + 1;
        Ok(())
    }

    /// Deletes a folder (INBOX cannot be deleted; children stay, as RFC 3501 allows; so does a
    /// subscription to it).
    pub fn delete_folder(&self, user: &str, name: &str) -> Result<(), Error> {
        let mut inner = self.lock();
        let name = canonical(name, inner.delimiter);
        if name == "INBOX" {
            return Err(Error::InboxReserved);
        }
        let account = inner
            .users
            .get_mut(user)
            .ok_or_else(|| Error::NoSuchUser(user.to_string()))?;
        account
            .folders
            .remove(&name)
            .ok_or(Error::NoSuchFolder(name.clone()))?;
        // The subscription stays: RFC 3501 §6.3.6 forbids removing it unilaterally.
        Ok(())
    }

    /// Renames a folder and its children. Renaming INBOX moves its mail to a new folder and
    /// leaves INBOX empty, as RFC 3501 requires.
    pub fn rename_folder(&self, user: &str, from: &str, to: &str) -> Result<(), Error> {
        let mut inner = self.lock();
        let delimiter = inner.delimiter;
        let from = canonical(from, delimiter);
        let to = canonical(to, delimiter);
        let mut uv = inner.next_uid_validity;
        let account = inner
            .users
            .get_mut(user)
            .ok_or_else(|| Error::NoSuchUser(user.to_string()))?;
        if !account.folders.contains_key(&from) {
            return Err(Error::NoSuchFolder(from));
        }
        if account.folders.contains_key(&to) {
            return Err(Error::FolderExists(to));
        }
        if from == "INBOX" {
            let inbox = account.folders.get_mut("INBOX").expect("checked");
            let mut moved = Folder::new(uv, true);
            uv += 1;
            moved.messages = std::mem::take(&mut inbox.messages);
            moved.uid_next = inbox.uid_next;
            account.folders.insert(to, moved);
        } else {
            let prefix = format!("{from}{delimiter}");
            let names: Vec<String> = account
                .folders
                .keys()
                .filter(|n| **n == from || n.starts_with(&prefix))
                .cloned()
                .collect();
            for old in names {
                let folder = account.folders.remove(&old).expect("listed");
                let new = format!("{to}{}", &old[from.len()..]);
                if account.subscriptions.remove(&old) {
                    account.subscriptions.insert(new.clone());
                }
                account.folders.insert(new, folder);
            }
        }
        inner.next_uid_validity = uv;
        Ok(())
    }

    pub fn folders(&self, user: &str) -> Result<Vec<FolderInfo>, Error> {
        let inner = self.lock();
        let account = inner
            .users
            .get(user)
            .ok_or_else(|| Error::NoSuchUser(user.to_string()))?;
        Ok(account
            .folders
            .iter()
            .map(|(name, f)| FolderInfo {
                name: name.clone(),
                uid_validity: f.uid_validity,
                uid_next: f.uid_next,
                exists: f.messages.len() as u32,
                selectable: f.selectable,
                implicit: f.implicit,
                special_use: f.special_use.clone(),
            })
            .collect())
    }

    pub fn subscriptions(&self, user: &str) -> Result<BTreeSet<String>, Error> {
        let inner = self.lock();
        inner
            .users
            .get(user)
            .map(|a| a.subscriptions.clone())
            .ok_or_else(|| Error::NoSuchUser(user.to_string()))
    }

    pub fn set_subscribed(&self, user: &str, name: &str, on: bool) -> Result<(), Error> {
        let mut inner = self.lock();
        let name = canonical(name, inner.delimiter);
        let account = inner
            .users
            .get_mut(user)
            .ok_or_else(|| Error::NoSuchUser(user.to_string()))?;
        if on {
            account.subscriptions.insert(name);
        } else {
            account.subscriptions.remove(&name);
        }
        Ok(())
    }

    /// Runs `f` on a folder under the store lock. Sessions use this for every mailbox command.
    pub fn with_folder<R>(
        &self,
        user: &str,
        name: &str,
        f: impl FnOnce(&mut Folder) -> R,
    ) -> Result<R, Error> {
        let mut inner = self.lock();
        let name = canonical(name, inner.delimiter);
        let account = inner
            .users
            .get_mut(user)
            .ok_or_else(|| Error::NoSuchUser(user.to_string()))?;
        let folder = account
            .folders
            .get_mut(&name)
            .ok_or(Error::NoSuchFolder(name))?;
        Ok(f(folder))
    }

    /// Delivers a message; returns (UIDVALIDITY, UID).
    pub fn append(
        &self,
        user: &str,
        folder: &str,
        raw: impl Into<Bytes>,
        flags: &[&str],
        internal_date: DateTime<FixedOffset>,
    ) -> Result<(u32, u32), Error> {
        let raw = raw.into();
        let flags = flags.iter().map(|f| f.to_string()).collect();
        self.with_folder(user, folder, |f| {
            if !f.selectable {
                return Err(Error::NotSelectable(folder.to_string()));
            }
            Ok((f.uid_validity, f.push(raw, flags, internal_date)))
        })?
    }

    /// A snapshot of a folder's messages (bytes shared, not copied).
    pub fn messages(&self, user: &str, folder: &str) -> Result<Vec<Message>, Error> {
        self.with_folder(user, folder, |f| f.messages.clone())
    }

    pub fn folder_info(&self, user: &str, folder: &str) -> Result<FolderInfo, Error> {
        let delimiter = self.delimiter();
        self.with_folder(user, folder, |f| FolderInfo {
            name: canonical(folder, delimiter),
            uid_validity: f.uid_validity,
            uid_next: f.uid_next,
            exists: f.messages.len() as u32,
            selectable: f.selectable,
            implicit: f.implicit,
            special_use: f.special_use.clone(),
        })
    }

    pub fn set_special_use(
        &self,
        user: &str,
        folder: &str,
        attribute: Option<&str>,
    ) -> Result<(), Error> {
        self.with_folder(user, folder, |f| {
            f.special_use = attribute.map(str::to_string)
        })
    }

    /// Replaces a message's flags, as another client's STORE would.
    pub fn set_flags(
        &self,
        user: &str,
        folder: &str,
        uid: u32,
        flags: &[&str],
    ) -> Result<(), Error> {
        self.with_folder(user, folder, |f| match f.position(uid) {
            Some(i) => {
                f.set_flags_at(i, flags.iter().map(|s| s.to_string()).collect());
                Ok(())
            }
            None => Err(Error::NoSuchMessage(uid)),
        })?
    }

    /// Removes messages at once, as another client's EXPUNGE would.
    pub fn expunge_uids(&self, user: &str, folder: &str, uids: &[u32]) -> Result<usize, Error> {
        self.with_folder(user, folder, |f| {
            f.expunge_where(|m| uids.contains(&m.uid)).len()
        })
    }

    /// Rebuilds a folder as a server does after index corruption: a new UIDVALIDITY and new UIDs
    /// from 1 for the same messages. Returns the new UIDVALIDITY.
    pub fn reset_uid_validity(&self, user: &str, folder: &str) -> Result<u32, Error> {
        let uv = {
            let mut inner = self.lock();
            let uv = inner.next_uid_validity;
            inner.next_uid_validity += 1;
            uv
        };
        self.with_folder(user, folder, |f| {
            f.uid_validity = uv;
            for (i, m) in f.messages.iter_mut().enumerate() {
                m.uid = i as u32 + 1;
            }
            f.uid_next = f.messages.len() as u32 + 1;
            f.bump();
            uv
        })
    }

    /// Bytes a user's messages take, over all folders (for quota checks).
    pub fn user_bytes(&self, user: &str) -> Result<u64, Error> {
        let inner = self.lock();
        let account = inner
            .users
            .get(user)
            .ok_or_else(|| Error::NoSuchUser(user.to_string()))?;
        Ok(account
            .folders
            .values()
            .flat_map(|f| f.messages.iter())
            .map(|m| m.raw.len() as u64)
            .sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date() -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339("2020-01-02T03:04:05+01:00").unwrap()
    }

    #[test]
    fn uids_ascend_and_survive_expunge() {
        let s = Store::new('/', 100);
        s.add_user("u");
        let a = s.append("u", "inbox", &b"a"[..], &[], date()).unwrap();
        let b = s.append("u", "INBOX", &b"b"[..], &[SEEN], date()).unwrap();
        assert_eq!((a.1, b.1), (1, 2));
        s.expunge_uids("u", "INBOX", &[1]).unwrap();
        let c = s.append("u", "INBOX", &b"c"[..], &[], date()).unwrap();
        assert_eq!(c.1, 3, "a UID is never reused");
        let uids: Vec<u32> = s
            .messages("u", "INBOX")
            .unwrap()
            .iter()
            .map(|m| m.uid)
            .collect();
        assert_eq!(uids, vec![2, 3]);
    }

    #[test]
    fn create_makes_parents_and_rename_moves_children() {
        let s = Store::new('.', 1);
        s.add_user("u");
        s.create_folder("u", "Archive.2019.Q1").unwrap();
        let names: Vec<String> = s
            .folders("u")
            .unwrap()
            .into_iter()
            .map(|f| f.name)
            .collect();
        assert_eq!(
            names,
            vec!["Archive", "Archive.2019", "Archive.2019.Q1", "INBOX"]
        );
        s.rename_folder("u", "Archive", "Old").unwrap();
        let names: Vec<String> = s
            .folders("u")
            .unwrap()
            .into_iter()
            .map(|f| f.name)
            .collect();
        assert_eq!(names, vec!["INBOX", "Old", "Old.2019", "Old.2019.Q1"]);
        assert!(matches!(
            s.create_folder("u", "Old"),
            Err(Error::FolderExists(_))
        ));
    }

    #[test]
    fn rename_inbox_moves_mail_and_keeps_inbox() {
        let s = Store::new('/', 1);
        s.add_user("u");
        s.append("u", "INBOX", &b"a"[..], &[], date()).unwrap();
        s.rename_folder("u", "INBOX", "Old").unwrap();
        assert_eq!(s.messages("u", "INBOX").unwrap().len(), 0);
        assert_eq!(s.messages("u", "Old").unwrap().len(), 1);
    }

    #[test]
    fn reset_uid_validity_renumbers() {
        let s = Store::new('/', 7);
        s.add_user("u");
        for _ in 0..3 {
            s.append("u", "INBOX", &b"x"[..], &[], date()).unwrap();
        }
        s.expunge_uids("u", "INBOX", &[1]).unwrap();
        let before = s.folder_info("u", "INBOX").unwrap().uid_validity;
        let after = s.reset_uid_validity("u", "INBOX").unwrap();
        assert_ne!(before, after);
        let uids: Vec<u32> = s
            .messages("u", "INBOX")
            .unwrap()
            .iter()
            .map(|m| m.uid)
            .collect();
        assert_eq!(uids, vec![1, 2]);
    }
}
