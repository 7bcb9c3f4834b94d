//! The data plane: one user's copy from an IMAP source into a target.
//!
//! Read-only at the source (EXAMINE, BODY.PEEK). Messages are fetched in pipelined UID FETCH
//! ranges, newest first, and imported with the source key `email|folder|UIDVALIDITY|UID`. A
//! message is recorded as copied only after the target acknowledged it (Created or
//! AlreadyPresent), so a crash at any point is followed by a re-run that neither loses nor
//! duplicates anything: the target's import is idempotent by source key, and the record says
//! what is done.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_imap::Session;
use async_imap::imap_proto::NameAttribute;
use async_trait::async_trait;
use bytes::Bytes;
use chrono::Utc;
use rusqlite::params;

use crate::control::Engine;
use crate::error::Error;
use crate::folders::{Plan, SourceFolder, plan};
use crate::imap::{Fetched, ImapStream, connect, fetch_checked, run_checked};
use crate::sync::{SkippedItem, SyncJob, SyncOutcome, SyncReport, UserSync};
use crate::target::{ImportOutcome, ImportRequest, ItemFlags, Rejection, Target};
use crate::test_server::SIGN_IN_FAILED;

/// 35 MiB: bigger messages are skipped as large items, decided before downloading.
pub const MAX_MESSAGE_SIZE: u64 = 36_700_160;
/// Bytes of messages per UID FETCH (a single bigger message still goes alone).
const CHUNK_BYTES: u64 = 64 * 1024 * 1024;
/// At most this many items per mailbox, newest first.
pub const ITEM_CAP: usize = 500_000;

#[derive(Clone, Debug)]
pub struct CopyOptions {
    pub max_message_size: u64,
    pub item_cap: usize,
    /// Messages per UID FETCH command.
    pub fetch_chunk: usize,
    /// Connection and command timeout.
    pub timeout: Duration,
    /// Source errors tolerated per sync before the user fails.
    pub error_budget: u32,
    /// Fetch attempts for a message before it is skipped as a bad item.
    pub fetch_attempts: u32,
}

impl Default for CopyOptions {
    fn default() -> Self {
        Self {
            max_message_size: MAX_MESSAGE_SIZE,
            item_cap: ITEM_CAP,
            fetch_chunk: 256,
            timeout: Duration::from_secs(60),
            error_budget: 10,
            fetch_attempts: 3,
        }
    }
}

/// The real `UserSync`: IMAP source to a `Target`.
pub struct ImapCopy {
    pub engine: Arc<Engine>,
    pub target: Arc<dyn Target>,
    pub options: CopyOptions,
}

/// A source message's metadata from the listing fetch.
#[derive(Clone, Debug)]
struct Meta {
    uid: u32,
    size: u64,
    flags: Vec<String>,
    date: Option<chrono::DateTime<Utc>>,
}

/// A UID FETCH whose tagged reply is seen (see `imap::fetch_checked`); failures reconnect.
async fn checked_fetch(
    s: &mut Session<ImapStream>,
    set: &str,
    items: &str,
) -> Result<(Vec<Fetched>, Option<String>), Abort> {
    fetch_checked(s, set, items).await.map_err(Abort::Source)
}

/// LIST "" "*" whose tagged reply is seen: a NO is an error, not an empty mailbox.
async fn checked_list(
    s: &mut Session<ImapStream>,
) -> Result<Vec<(String, Option<char>, bool)>, Abort> {
    use async_imap::imap_proto::{MailboxDatum, Response};
    let mut out = Vec::new();
    let refused = run_checked(s, "LIST \"\" \"*\"", |r| {
        if let Response::MailboxData(MailboxDatum::List {
            name_attributes,
            delimiter,
            name,
        }) = r
        {
            let selectable = !name_attributes
                .iter()
                .any(|a| matches!(a, NameAttribute::NoSelect));
            out.push((
                name.to_string(),
                delimiter.as_deref().and_then(|d| d.chars().next()),
                selectable,
            ));
        }
    })
    .await
    .map_err(Abort::Source)?;
    match refused {
        None => Ok(out),
        Some(why) => Err(Abort::Source(format!("LIST failed: {why}"))),
    }
}

/// How one user's sync ends early.
enum Abort {
    /// The user fails with this message.
    Fail(String),
    Stopped,
    /// A source problem worth a reconnect (counts against the error budget).
    Source(String),
}

/// Milliseconds a throttled server asks us to wait (Exchange's text or Gmail's code).
pub fn backoff_hint(message: &str) -> Option<Duration> {
    if let Some(at) = message.find("Suggested Backoff Time:") {
        let ms: String = message[at + "Suggested Backoff Time:".len()..]
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        return ms.parse().ok().map(Duration::from_millis);
    }
    message
        .contains("THROTTLED")
        .then(|| Duration::from_secs(1))
}

/// Message-ID, Date and size: the identity that survives a UIDVALIDITY change.
pub fn fingerprint(raw: &[u8]) -> String {
    let header_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    let header = String::from_utf8_lossy(&raw[..header_end]);
    let field = |name: &str| {
        header
            .lines()
            .find(|l| {
                l.get(..name.len())
                    .is_some_and(|p| p.eq_ignore_ascii_case(name))
                    && l.as_bytes().get(name.len()) == Some(&b':')
            })
            .map(|l| l[name.len() + 1..].trim().to_string())
            .unwrap_or_default()
    };
    format!(
        "{}|{}|{}|{}",
        field("Message-ID"),
        field("Date"),
        if field("Message-ID").is_empty() {
            field("Subject")
        } else {
            String::new()
        },
        raw.len()
    )
}

fn source_key(email: &str, folder: &str, uid_validity: u32, uid: u32) -> String {
    format!(
        "{}|{folder}|{uid_validity}|{uid}",
        email.to_ascii_lowercase()
    )
}

/// SASL PLAIN's single message: authzid NUL authcid NUL password (RFC 4616).
struct SaslPlain(String);

impl async_imap::Authenticator for SaslPlain {
    type Response = String;
    fn process(&mut self, _challenge: &[u8]) -> String {
        self.0.clone()
    }
}

/// What a sync listed of one folder (after the item cap), for the closing reconciliation.
struct Listed {
    name: String,
    relative: String,
    uid_validity: u32,
    uids: Vec<u32>,
}

/// Fetch attempts per (folder, UID) over one sync, reconnects included.
type Attempts = HashMap<(String, u32), u32>;

/// What is recorded of a folder's copied messages: UID -> (flags, fingerprint, source key).
type Copied = HashMap<u32, (String, String, String)>;

impl ImapCopy {
    fn copied(&self, email: &str, folder: &str, uid_validity: u32) -> Result<Copied, Error> {
        self.engine.db.read(|tx| {
            let mut stmt = tx.raw().prepare(
                "SELECT uid, flags, fingerprint, source_key FROM copied
                 WHERE email = ?1 AND folder = ?2 AND uidvalidity = ?3",
            )?;
            let rows = stmt.query_map(params![email, folder, uid_validity], |r| {
                Ok((
                    r.get::<_, i64>(0)? as u32,
                    (r.get(1)?, r.get(2)?, r.get(3)?),
                ))
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// Messages of this folder copied under an earlier UIDVALIDITY, by fingerprint, with the
    /// source keys the target knows them by; those also seen under the current UIDVALIDITY are
    /// taken out, so duplicates in the source still count one by one.
    fn renumbered(
        &self,
        email: &str,
        folder: &str,
        uid_validity: u32,
        copied: &Copied,
    ) -> Result<HashMap<String, Vec<String>>, Error> {
        let mut old: HashMap<String, Vec<String>> = self.engine.db.read(|tx| {
            let mut stmt = tx.raw().prepare(
                "SELECT fingerprint, source_key FROM copied
                 WHERE email = ?1 AND folder = ?2 AND uidvalidity <> ?3 ORDER BY uidvalidity, uid",
            )?;
            let rows = stmt.query_map(params![email, folder, uid_validity], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?;
            let mut map: HashMap<String, Vec<String>> = HashMap::new();
            for row in rows {
                let (fp, key) = row?;
                map.entry(fp).or_default().push(key);
            }
            Ok(map)
        })?;
        for (_, fp, key) in copied.values() {
            // A row of this UIDVALIDITY that took over an old key has consumed it.
            if let Some(keys) = old.get_mut(fp) {
                keys.retain(|k| k != key);
            }
        }
        Ok(old)
    }

    /// Records acknowledged imports, many per transaction (no fsync per message).
    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        email: &str,
        folder: &str,
        uid_validity: u32,
        target_folder: &str,
        done: &[(u32, String, String, String, u64)],
    ) -> Result<(), Error> {
        if done.is_empty() {
            return Ok(());
        }
        self.engine.db.transaction(|tx| {
            let mut stmt = tx.raw().prepare(
                "INSERT INTO copied (email, folder, uidvalidity, uid, flags, fingerprint,
                                     target_folder, source_key, size)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT(email, folder, uidvalidity, uid) DO UPDATE SET flags = excluded.flags",
            )?;
            for (uid, flags, fp, key, size) in done {
                stmt.execute(params![
                    email,
                    folder,
                    uid_validity,
                    uid,
                    flags,
                    fp,
                    target_folder,
                    key,
                    *size as i64
                ])?;
            }
            Ok(())
        })
    }

    fn totals(&self, email: &str) -> Result<(u64, u64), Error> {
        self.engine.db.read(|tx| {
            Ok(tx.raw().query_row(
                "SELECT count(*), coalesce(sum(size), 0) FROM (
                     SELECT source_key, max(size) AS size FROM copied WHERE email = ?1
                     GROUP BY source_key)",
                params![email],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
            )?)
        })
    }

    async fn login(&self, job: &SyncJob) -> Result<Session<ImapStream>, Abort> {
        let connected = connect(&job.endpoint, self.options.timeout)
            .await
            .map_err(|e| Abort::Source(format!("{e}")))?;
        let user = &job.user;
        let logged_in = match job.endpoint.authentication {
            crate::endpoint::Authentication::Basic => {
                connected
                    .client
                    .login(&user.user_name, &user.password)
                    .await
            }
            crate::endpoint::Authentication::Plain => {
                let sep = job.endpoint.master_separator;
                let (authzid, authcid) = match user.user_name.rsplit_once(sep) {
                    Some((u, admin)) if !u.is_empty() && !admin.is_empty() => (u, admin),
                    _ => ("", user.user_name.as_str()),
                };
                let sasl = SaslPlain(format!("{authzid}\0{authcid}\0{}", user.password));
                connected.client.authenticate("PLAIN", sasl).await
            }
        };
        match logged_in {
            Ok(s) => Ok(s),
            Err((e, _)) => {
                let text = e.to_string();
                if let Some(wait) = backoff_hint(&text) {
                    tokio::time::sleep(wait).await;
                    return Err(Abort::Source(text));
                }
                Err(Abort::Fail(SIGN_IN_FAILED.to_string()))
            }
        }
    }

    async fn list(
        &self,
        s: &mut Session<ImapStream>,
        job: &SyncJob,
    ) -> Result<Vec<SourceFolder>, Abort> {
        let root = job.user.user_root.clone().unwrap_or_default();
        let names = checked_list(s).await?;
        let mut out = Vec::new();
        for (wire, delimiter, selectable) in names {
            let Ok(name) = mutf7::decode(&wire) else {
                continue;
            };
            let relative = if root.is_empty() {
                name.clone()
            } else {
                let d = delimiter.unwrap_or('/');
                let prefix = format!("{}{d}", root.trim_end_matches(d));
                match name.strip_prefix(&prefix) {
                    Some(r) => r.to_string(),
                    None => continue, // outside the user's root (another user's, the admin's)
                }
            };
            out.push(SourceFolder {
                selectable,
                name,
                relative,
                delimiter,
            });
        }
        Ok(out)
    }

    /// One attempt at the whole user; `attempts` (fetch attempts per message) outlives it, so a
    /// message that breaks the connection every time is still skipped in the end.
    async fn run(
        &self,
        job: &SyncJob,
        report: &mut SyncReport,
        attempts: &mut Attempts,
    ) -> Result<(), Abort> {
        let email = job.user.email_address.clone();
        let mut session = self.login(job).await?;
        let folders = self.list(&mut session, job).await?;
        report.stats = crate::sync::SyncStats::default();
        let plans = plan(
            &folders,
            &job.batch.settings.exclude_folders,
            &job.batch.settings.include_folders,
        );
        // Listing pass: what each folder holds, to apply the item cap newest first.
        let mut work: Vec<(SourceFolder, String, u32, Vec<Meta>)> = Vec::new();
        for (folder, p) in plans {
            match p {
                Plan::Skip { reason, detail } => report.skipped.push(SkippedItem {
                    folder: folder.relative.clone(),
                    item: "(folder)".into(),
                    reason: reason.into(),
                    detail,
                }),
                Plan::Copy { target, merged } => {
                    if let Some(first) = merged {
                        report.skipped.push(SkippedItem {
                            folder: folder.relative.clone(),
                            item: "(folder)".into(),
                            reason: "Merged".into(),
                            detail: format!(
                                "{} is merged into {target} with {first}",
                                folder.relative
                            ),
                        });
                    }
                    if *job.stop.borrow() {
                        return Err(Abort::Stopped);
                    }
                    let (uid_validity, metas) = self.listing(&mut session, &folder).await?;
                    work.push((folder, target, uid_validity, metas));
                }
            }
        }
        // The cap: keep the newest `item_cap` messages over the whole mailbox.
        let mut all: Vec<(Option<chrono::DateTime<Utc>>, usize, u32)> = work
            .iter()
            .enumerate()
            .flat_map(|(i, (_, _, _, m))| m.iter().map(move |m| (m.date, i, m.uid)))
            .collect();
        all.sort_by(|a, b| b.0.cmp(&a.0).then(b.2.cmp(&a.2)));
        let over_cap: HashSet<(usize, u32)> = all
            .iter()
            .skip(self.options.item_cap)
            .map(|&(_, i, uid)| (i, uid))
            .collect();
        let mut listed: Vec<Listed> = Vec::new();
        for (i, (folder, target, uid_validity, metas)) in work.into_iter().enumerate() {
            let capped: Vec<Meta> = metas
                .into_iter()
                .filter(|m| {
                    if over_cap.contains(&(i, m.uid)) {
                        report.skipped.push(SkippedItem {
                            folder: folder.relative.clone(),
                            item: format!("UID {}", m.uid),
                            reason: "ItemCap".into(),
                            detail: format!(
                                "over the limit of {} items a mailbox",
                                self.options.item_cap
                            ),
                        });
                        false
                    } else {
                        true
                    }
                })
                .collect();
            listed.push(Listed {
                name: folder.name.clone(),
                relative: folder.relative.clone(),
                uid_validity,
                uids: capped.iter().map(|m| m.uid).collect(),
            });
            self.copy_folder(
                &mut session,
                job,
                &email,
                &folder,
                &target,
                uid_validity,
                capped,
                report,
                attempts,
            )
            .await?;
        }
        let _ = session.logout().await;
        report.stats.missing_in_target = self.reconcile(job, &listed, report).await?;
        Ok(())
    }

    /// Closes a sync: every listed, not skipped message must be recorded as copied and be in
    /// the target ("in source, not in target" must be empty).
    async fn reconcile(
        &self,
        job: &SyncJob,
        listed: &[Listed],
        report: &SyncReport,
    ) -> Result<Option<u64>, Abort> {
        let email = &job.user.email_address;
        let Some(target_keys) = self
            .target
            .source_keys(email)
            .await
            .map_err(|e| Abort::Source(format!("target: {e}")))?
        else {
            return Ok(None);
        };
        let skipped: HashSet<(String, String)> = report
            .skipped
            .iter()
            .map(|s| (s.folder.clone(), s.item.clone()))
            .collect();
        let mut missing = 0u64;
        for l in listed {
            let copied = self
                .copied(email, &l.name, l.uid_validity)
                .map_err(|e| Abort::Source(e.to_string()))?;
            for uid in &l.uids {
                if skipped.contains(&(l.relative.clone(), format!("UID {uid}"))) {
                    continue;
                }
                let present = copied
                    .get(uid)
                    .is_some_and(|(_, _, key)| target_keys.contains(key));
                if !present {
                    missing += 1;
                    tracing::warn!(%email, folder = %l.relative, uid, "in source, not in target");
                }
            }
        }
        Ok(Some(missing))
    }

    /// EXAMINE (read-only); returns UIDVALIDITY and the message count.
    async fn examine(
        &self,
        s: &mut Session<ImapStream>,
        folder: &SourceFolder,
    ) -> Result<(u32, u32), Abort> {
        let wire = mutf7::encode(&folder.name);
        let mailbox = s
            .examine(&wire)
            .await
            .map_err(|e| Abort::Source(e.to_string()))?;
        let uid_validity = match mailbox.uid_validity {
            Some(v) => v,
            None => {
                // Courier gives UIDVALIDITY only on SELECT; STATUS tells without selecting.
                let st = s
                    .status(&wire, "(UIDVALIDITY)")
                    .await
                    .map_err(|e| Abort::Source(e.to_string()))?;
                st.uid_validity.unwrap_or(0)
            }
        };
        Ok((uid_validity, mailbox.exists))
    }

    async fn listing(
        &self,
        s: &mut Session<ImapStream>,
        folder: &SourceFolder,
    ) -> Result<(u32, Vec<Meta>), Abort> {
        let (uid_validity, exists) = self.examine(s, folder).await?;
        if exists == 0 {
            return Ok((uid_validity, Vec::new()));
        }
        let (fetched, refused) =
            checked_fetch(s, "1:*", "(UID FLAGS RFC822.SIZE INTERNALDATE)").await?;
        if let Some(why) = refused {
            // The listing must be whole, or messages would silently wait for another sync.
            return Err(Abort::Source(format!(
                "{}: listing refused: {why}",
                folder.relative
            )));
        }
        let metas: Vec<Meta> = fetched
            .into_iter()
            .filter_map(|f| {
                Some(Meta {
                    uid: f.uid?,
                    size: u64::from(f.size.unwrap_or(0)),
                    flags: f.flags,
                    date: f.date,
                })
            })
            .collect();
        Ok((uid_validity, metas))
    }

    #[allow(clippy::too_many_arguments)]
    async fn copy_folder(
        &self,
        s: &mut Session<ImapStream>,
        job: &SyncJob,
        email: &str,
        folder: &SourceFolder,
        target: &str,
        uid_validity: u32,
        metas: Vec<Meta>,
        report: &mut SyncReport,
        attempts: &mut Attempts,
    ) -> Result<(), Abort> {
        let fail = |e: Error| Abort::Source(e.to_string());
        let copied = self
            .copied(email, &folder.name, uid_validity)
            .map_err(fail)?;
        let mut renumbered = self
            .renumbered(email, &folder.name, uid_validity, &copied)
            .map_err(fail)?;
        // Flags changed at the source on messages copied before: re-apply them.
        let mut flag_updates = Vec::new();
        for m in &metas {
            if let Some((flags, _, key)) = copied.get(&m.uid) {
                let now = m.flags.join(" ");
                if *flags != now {
                    let key = key.clone();
                    self.target
                        .update_flags(email, target, &key, &ItemFlags::from_imap(&m.flags))
                        .await
                        .map_err(fail)?;
                    flag_updates.push((m.uid, now, String::new(), key, m.size));
                }
            }
        }
        if !flag_updates.is_empty() {
            self.record(email, &folder.name, uid_validity, target, &flag_updates)
                .map_err(fail)?;
        }
        // New messages, newest first; too large ones are skipped without downloading.
        let mut todo: Vec<&Meta> = metas
            .iter()
            .filter(|m| !copied.contains_key(&m.uid))
            .collect();
        todo.sort_by(|a, b| b.date.cmp(&a.date).then(b.uid.cmp(&a.uid)));
        let mut pending: Vec<&Meta> = Vec::new();
        for m in todo {
            if m.size > self.options.max_message_size {
                report.skipped.push(SkippedItem {
                    folder: folder.relative.clone(),
                    item: format!("UID {}", m.uid),
                    reason: "LargeItem".into(),
                    detail: format!(
                        "{} bytes, over the limit of {}",
                        m.size, self.options.max_message_size
                    ),
                });
            } else {
                pending.push(m);
            }
        }
        if pending.is_empty() {
            return Ok(());
        }
        match self.target.ensure_folder(email, target).await {
            Ok(_) => {}
            // The target will not have this folder: its messages are reported, not copied.
            Err(Error::Refused(why)) => {
                for m in pending {
                    report.skipped.push(SkippedItem {
                        folder: folder.relative.clone(),
                        item: format!("UID {}", m.uid),
                        reason: "FolderName".into(),
                        detail: why.clone(),
                    });
                }
                return Ok(());
            }
            Err(e) => return Err(fail(e)),
        }
        // The listing pass left another folder selected: select this one again, and make sure
        // its UIDs still mean what they meant when it was listed.
        let (now_validity, _) = self.examine(s, folder).await?;
        if now_validity != uid_validity {
            return Err(Abort::Source(format!(
                "{}: UIDVALIDITY changed from {uid_validity} to {now_validity} during the sync",
                folder.relative
            )));
        }
        while !pending.is_empty() {
            if *job.stop.borrow() {
                return Err(Abort::Stopped);
            }
            // A chunk: up to fetch_chunk messages and CHUNK_BYTES (at least one message), so
            // memory is bounded by the chunk, not the folder.
            let mut take = 0;
            let mut bytes = 0u64;
            while take < pending.len() && take < self.options.fetch_chunk {
                bytes += pending[take].size;
                if take > 0 && bytes > CHUNK_BYTES {
                    break;
                }
                take += 1;
            }
            let chunk: Vec<&Meta> = pending.drain(..take).collect();
            let set = chunk
                .iter()
                .map(|m| m.uid.to_string())
                .collect::<Vec<_>>()
                .join(",");
            let (fetched, refused) =
                checked_fetch(s, &set, "(UID FLAGS INTERNALDATE BODY.PEEK[])").await?;
            let mut got: HashMap<u32, Fetched> = HashMap::new();
            for f in fetched {
                if let (Some(uid), Some(_)) = (f.uid, &f.body) {
                    got.insert(uid, f);
                }
            }
            // Messages the fetch did not return: still there (refused: retry, then skip as a
            // bad item) or expunged meanwhile (gone at the source: reported, not retried).
            let missing: Vec<u32> = chunk
                .iter()
                .map(|m| m.uid)
                .filter(|u| !got.contains_key(u))
                .collect();
            let still_there: HashSet<u32> = if missing.is_empty() {
                HashSet::new()
            } else {
                let set = missing
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(",");
                let (present, _) = checked_fetch(s, &set, "(UID)").await?;
                present.iter().filter_map(|f| f.uid).collect()
            };
            if refused.is_some() {
                tracing::debug!(?refused, missing = missing.len(), "FETCH partly refused");
            }
            let mut done = Vec::new();
            for m in &chunk {
                let Some(f) = got.get(&m.uid) else {
                    if !still_there.contains(&m.uid) {
                        report.skipped.push(SkippedItem {
                            folder: folder.relative.clone(),
                            item: format!("UID {}", m.uid),
                            reason: "Vanished".into(),
                            detail: "expunged at the source during the sync".into(),
                        });
                        continue;
                    }
                    let n = attempts.entry((folder.name.clone(), m.uid)).or_default();
                    *n += 1;
                    if *n < self.options.fetch_attempts {
                        pending.push(m);
                    } else {
                        report.skipped.push(SkippedItem {
                            folder: folder.relative.clone(),
                            item: format!("UID {}", m.uid),
                            reason: "BadItem".into(),
                            detail: format!(
                                "the server refused to return the message {} times",
                                self.options.fetch_attempts
                            ),
                        });
                    }
                    continue;
                };
                let raw = f.body.clone().expect("checked");
                let fp = fingerprint(&raw);
                let key = source_key(email, &folder.name, uid_validity, m.uid);
                let flags: Vec<String> = f.flags.clone();
                if let Some(old_key) = renumbered.get_mut(&fp).and_then(|keys| keys.pop()) {
                    // In the target already, from before a UIDVALIDITY change: not copied
                    // again; its flags follow under the key the target knows.
                    self.target
                        .update_flags(email, target, &old_key, &ItemFlags::from_imap(&flags))
                        .await
                        .map_err(fail)?;
                    done.push((m.uid, flags.join(" "), fp, old_key, raw.len() as u64));
                    continue;
                }
                let request = ImportRequest {
                    folder: target.to_string(),
                    source_key: key.clone(),
                    received_time: f.date.or(m.date),
                    flags: ItemFlags::from_imap(&flags),
                };
                match self.import(email, &request, raw.clone(), job).await? {
                    Imported::Yes => done.push((m.uid, flags.join(" "), fp, key, raw.len() as u64)),
                    Imported::Skipped(reason, detail) => report.skipped.push(SkippedItem {
                        folder: folder.relative.clone(),
                        item: format!("UID {}", m.uid),
                        reason: reason.into(),
                        detail,
                    }),
                }
            }
            // Acknowledged by the target: now, and only now, recorded.
            self.record(email, &folder.name, uid_validity, target, &done)
                .map_err(fail)?;
        }
        Ok(())
    }

    /// Imports one message, waiting out throttling and retrying transient faults.
    async fn import(
        &self,
        email: &str,
        request: &ImportRequest,
        raw: Bytes,
        job: &SyncJob,
    ) -> Result<Imported, Abort> {
        let mut transient = 0u32;
        loop {
            let outcome = self
                .target
                .import(email, request, raw.clone())
                .await
                .map_err(|e| Abort::Source(format!("target: {e}")))?;
            match outcome {
                ImportOutcome::Created(_) => return Ok(Imported::Yes),
                ImportOutcome::AlreadyPresent(_) => {
                    // Landed before (a crash, a lost acknowledgement): its flags may have
                    // changed at the source since.
                    self.target
                        .update_flags(email, &request.folder, &request.source_key, &request.flags)
                        .await
                        .map_err(|e| Abort::Source(format!("target: {e}")))?;
                    return Ok(Imported::Yes);
                }
                ImportOutcome::Throttled(wait) => {
                    if *job.stop.borrow() {
                        return Err(Abort::Stopped);
                    }
                    // The target's Retry-After is in the target's time (the engine's clock).
                    self.engine.clock.sleep(wait).await;
                }
                ImportOutcome::Transient(m) => {
                    transient += 1;
                    if transient > self.options.error_budget {
                        return Err(Abort::Fail(format!("The target kept failing: {m}")));
                    }
                    tokio::time::sleep(Duration::from_millis(20 << transient.min(8))).await;
                }
                ImportOutcome::Rejected(Rejection::TooLarge { size, max }) => {
                    return Ok(Imported::Skipped(
                        "LargeItem",
                        format!("{size} bytes, over the target's limit of {max}"),
                    ));
                }
                ImportOutcome::Rejected(r @ Rejection::InvalidFolder { .. }) => {
                    return Ok(Imported::Skipped("FolderName", r.message(email)));
                }
                ImportOutcome::Rejected(r) => return Err(Abort::Fail(r.message(email))),
            }
        }
    }
}

enum Imported {
    Yes,
    Skipped(&'static str, String),
}

#[async_trait]
impl UserSync for ImapCopy {
    async fn sync(&self, job: SyncJob) -> SyncReport {
        let mut report = SyncReport {
            outcome: SyncOutcome::Completed,
            items_synced: 0,
            items_skipped: 0,
            bytes_synced: 0,
            skipped: Vec::new(),
            stats: crate::sync::SyncStats::default(),
        };
        let started = std::time::Instant::now();
        let before = self.totals(&job.user.email_address).unwrap_or((0, 0));
        let mut errors = 0;
        let mut attempts = Attempts::new();
        loop {
            report.skipped.clear();
            match self.run(&job, &mut report, &mut attempts).await {
                Ok(()) => break,
                Err(Abort::Stopped) => {
                    report.outcome = SyncOutcome::Stopped;
                    break;
                }
                Err(Abort::Fail(m)) => {
                    report.outcome = SyncOutcome::Failed(m);
                    break;
                }
                Err(Abort::Source(m)) => {
                    errors += 1;
                    if errors > self.options.error_budget {
                        report.outcome = SyncOutcome::Failed(format!(
                            "The source server kept failing ({errors} errors); the last: {m}"
                        ));
                        break;
                    }
                    // Capped exponential backoff with jitter, or what a throttling server asked.
                    let base = Duration::from_millis(50u64 << errors.min(7));
                    let jitter = Duration::from_millis(rand::random::<u64>() % 50);
                    let wait = backoff_hint(&m)
                        .unwrap_or(base + jitter)
                        .min(Duration::from_secs(300));
                    tracing::debug!(error = %m, ?wait, "source error; reconnecting");
                    tokio::time::sleep(wait).await;
                }
            }
        }
        if let Ok((items, bytes)) = self.totals(&job.user.email_address) {
            report.items_synced = items;
            report.bytes_synced = bytes;
            report.stats.items = items.saturating_sub(before.0);
            report.stats.bytes = bytes.saturating_sub(before.1);
        }
        report.stats.elapsed_ms = started.elapsed().as_millis() as u64;
        report.items_skipped = report
            .skipped
            .iter()
            .filter(|s| s.item != "(folder)")
            .count() as u64;
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_hints() {
        assert_eq!(
            backoff_hint("NO Request is throttled. Suggested Backoff Time: 299961 milliseconds"),
            Some(Duration::from_millis(299_961))
        );
        assert_eq!(
            backoff_hint("NO [THROTTLED] slow down"),
            Some(Duration::from_secs(1))
        );
        assert_eq!(backoff_hint("NO nope"), None);
    }

    #[test]
    fn fingerprints_never_panic_on_non_ascii() {
        let raw = "From: \"Zoë\" <z@x>\r\nSubjéct: é\r\nMessage-ID: <1@x>\r\n\r\nbody".as_bytes();
        assert!(fingerprint(raw).starts_with("<1@x>|"));
    }

    #[test]
    fn fingerprints_ignore_other_headers() {
        let a = b"Received: x\r\nMessage-ID: <1@x>\r\nDate: Mon\r\n\r\nbody";
        let b = b"Received: y\r\nMessage-ID: <1@x>\r\nDate: Mon\r\n\r\nbody";
        assert_eq!(fingerprint(a), fingerprint(b));
        let c = b"Message-ID: <2@x>\r\nDate: Mon\r\n\r\nbody";
        assert_ne!(fingerprint(a), fingerprint(c));
    }
}
