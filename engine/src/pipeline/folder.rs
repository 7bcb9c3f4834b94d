//! Copying one folder: flags re-applied to what was copied before, new messages in UID order
//! (too large ones skipped before downloading), fetched in chunks bounded in count and bytes,
//! imported, and recorded once the target acknowledged them.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;

use super::import::{Imported, settle};
use super::{Attempts, CHUNK_BYTES, Copier, SyncError, fingerprint};
use crate::control::state::checkpoint::{CopiedRecord, FolderKey, FolderSeen, Intent};
use crate::identity::{keyed, source_key_prefix, wire_size};
use crate::source::{FetchOutcome, FolderListing, ItemMeta, MailSource, SourceFolder, SourceItem};
use crate::sync::{SkipReason, SkippedItem, SyncJob, SyncProgress, SyncReport};
use crate::target::{ImportOutcome, ImportRequest, ItemFlags, Probe, TargetError, TargetItem};

/// A folder to copy: where it lands and what its listing showed (after the item cap).
pub(super) struct FolderWork {
    pub folder: SourceFolder,
    pub target: String,
    pub listing: FolderListing,
    /// The folder is as its last complete copy left it: its records (its listing's items are
    /// made from them), and nothing to copy.
    pub unchanged: Option<HashMap<u32, CopiedRecord>>,
}

/// Fingerprint -> (source key, target id) of copies from before a UIDVALIDITY change.
type Renumbered = HashMap<String, Vec<(String, Option<String>)>>;

/// One folder's copy in progress.
struct FolderCopy<'a> {
    copier: &'a Copier,
    job: &'a SyncJob,
    folder: &'a SourceFolder,
    target: &'a str,
    uid_validity: u32,
    /// What this folder's source keys share under this UIDVALIDITY.
    key_prefix: String,
    /// Fingerprint -> source keys (and target ids) the target holds from before a UIDVALIDITY
    /// change, not yet taken over by a message of the current numbering.
    renumbered: std::sync::Mutex<Renumbered>,
}

/// What a folder's copy leaves for the closing reconciliation: the checkpoint's records of the
/// folder when the copy recorded nothing new (so they need not be read again).
pub(super) type Unchanged = Option<HashMap<u32, CopiedRecord>>;

pub(super) async fn copy(
    copier: &Copier,
    job: &SyncJob,
    source: &mut dyn MailSource,
    work: FolderWork,
    report: &mut SyncReport,
    attempts: &mut Attempts,
) -> Result<Unchanged, SyncError> {
    let FolderWork {
        folder,
        target,
        listing,
        unchanged,
    } = work;
    if let Some(records) = unchanged {
        return Ok(Some(records));
    }
    // What the folder's state will say once its copy left nothing out.
    let seen = listing.state.map(|state| FolderSeen {
        state,
        uids: listing.items.iter().map(|m| m.uid).collect(),
    });
    let skips = report.skipped.len();
    let mut c = FolderCopy {
        copier,
        job,
        folder: &folder,
        target: &target,
        uid_validity: listing.uid_validity,
        key_prefix: source_key_prefix(&job.email_address, &folder.name, listing.uid_validity),
        renumbered: std::sync::Mutex::new(HashMap::new()),
    };
    // The folder's records under this UIDVALIDITY and under others, and the intents an
    // earlier run left, in one read.
    let (mut copied, mut other_validity, stale) = copier.engine.db.read(|tx| {
        Ok((
            tx.copied(c.key())?,
            tx.copied_under_other_validity(c.key())?,
            tx.intents(&job.email_address, &folder.name)?,
        ))
    })?;
    if !stale.is_empty() {
        c.resolve_intents(stale).await?;
        (copied, other_validity) = copier.engine.db.read(|tx| {
            Ok((
                tx.copied(c.key())?,
                tx.copied_under_other_validity(c.key())?,
            ))
        })?;
    }
    c.renumbered = std::sync::Mutex::new(renumbered(other_validity, &copied));
    c.reapply_flags(&listing.items, &copied).await?;
    let pending = c.new_items(listing.items, &copied, report);
    if pending.is_empty() || !c.ensure_target_folder(&pending, report).await? {
        c.note_seen(seen, report.skipped.len() == skips)?;
        // Flag updates change no key: the records still say what the target holds.
        return Ok(Some(copied));
    }
    // The listing pass left another folder open: open this one again, and make sure its UIDs
    // still mean what they meant when it was listed.
    let now_validity = source.open(&folder).await?;
    if now_validity != c.uid_validity {
        return Err(SyncError::Source {
            transient: true,
            message: format!(
                "{}: UIDVALIDITY changed from {} to {now_validity} during the sync",
                folder.relative, c.uid_validity
            ),
        });
    }
    c.copy_chunks(source, pending, report, attempts).await?;
    c.note_seen(seen, report.skipped.len() == skips)?;
    Ok(None)
}

/// A chunk ready for the target: its UIDs, what is recorded as there already, the imports,
/// and what was skipped.
struct Prepared {
    uids: Vec<u32>,
    /// Written ahead of the chunk's imports (on a blocking thread, when the chunk is settled,
    /// so the source's reply is read on meanwhile).
    intents: Vec<(CopiedRecord, u64)>,
    done: Vec<CopiedRecord>,
    ready: Ready,
    skipped: Vec<SkippedItem>,
}

/// Messages in a folder's first chunk.
const FIRST_CHUNK: usize = 32;

/// A fetched chunk: its messages as listed, and what the source returned for each.
type Fetched = (Vec<ItemMeta>, HashMap<u32, FetchOutcome>);

/// Fetches a chunk; `following`, the chunk after it, is asked for ahead (a pipelining source
/// sends it before reading this one's answer, so the server does not wait on mailmig).
async fn fetch(
    source: &mut dyn MailSource,
    chunk: Vec<ItemMeta>,
    following: &[ItemMeta],
) -> Result<Fetched, SyncError> {
    source.ask_ahead(following);
    let outcomes = source
        .fetch(&chunk)
        .await?
        .into_iter()
        .map(|o| (outcome_uid(&o), o))
        .collect();
    Ok((chunk, outcomes))
}

/// A state write on a blocking thread, so the task's other half (the fetch) goes on.
async fn blocking(
    write: impl FnOnce() -> Result<(), crate::error::Error> + Send + 'static,
) -> Result<(), SyncError> {
    match tokio::task::spawn_blocking(write).await {
        Ok(r) => Ok(r?),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(SyncError::Stopped),
    }
}

/// What a prepared message becomes once the target acknowledged it.
struct About {
    uid: u32,
    flags: String,
    probe: Probe,
}

impl About {
    fn record(self, source_key: String, target_id: Option<String>) -> CopiedRecord {
        CopiedRecord {
            uid: self.uid,
            flags: self.flags,
            fingerprint: self.probe.fingerprint,
            source_key,
            size: self.probe.size,
            target_id,
        }
    }
}

/// A chunk's messages ready for the target, in order.
#[derive(Default)]
struct Ready {
    requests: Vec<(ImportRequest, Bytes)>,
    about: Vec<About>,
}

impl Ready {
    fn push(&mut self, request: ImportRequest, raw: Bytes, about: About) {
        self.requests.push((request, raw));
        self.about.push(about);
    }
}

/// What [`FolderCopy::take`] made of one message of a chunk.
enum Taken {
    Ready(ImportRequest, Bytes, About),
    /// In the target already (from before a renumbering): recorded as it is.
    Done(CopiedRecord),
    Nothing,
}

/// Why a message is too large to copy (`None`: it fits), decided on the listed size before
/// anything is downloaded.
pub(super) fn large_item(m: &ItemMeta, max: u64) -> Option<String> {
    (m.size > max).then(|| format!("{} bytes, over the limit of {max}", m.size))
}

/// Fingerprint -> the old keys not yet taken over by a record of the current numbering.
fn renumbered(
    other_validity: Vec<(String, String, Option<String>)>,
    copied: &HashMap<u32, CopiedRecord>,
) -> Renumbered {
    let mut old: Renumbered = HashMap::new();
    for (fp, key, id) in other_validity {
        old.entry(fp).or_default().push((key, id));
    }
    for r in copied.values() {
        // A row of this UIDVALIDITY that took over an old key has consumed it.
        if let Some(keys) = old.get_mut(&r.fingerprint) {
            keys.retain(|(k, _)| *k != r.source_key);
        }
    }
    old
}

fn outcome_uid(o: &FetchOutcome) -> u32 {
    match o {
        FetchOutcome::Item(item) => item.uid,
        FetchOutcome::Vanished(uid) | FetchOutcome::Refused(uid) => *uid,
        FetchOutcome::Damaged(uid, _) | FetchOutcome::Retry(uid) => *uid,
    }
}

/// The next chunk: up to `max_items` messages and `max_bytes` (at least one message), so
/// memory is bounded by the chunk, not the folder.
fn next_chunk(pending: &mut Vec<ItemMeta>, max_items: usize, max_bytes: u64) -> Vec<ItemMeta> {
    let mut take = 0;
    let mut bytes = 0u64;
    while take < pending.len() && take < max_items.max(1) {
        bytes += pending[take].size;
        if take > 0 && bytes > max_bytes {
            break;
        }
        take += 1;
    }
    pending.drain(..take).collect()
}

impl FolderCopy<'_> {
    fn email(&self) -> &str {
        &self.job.email_address
    }

    /// After a copy that ended well: the folder's state as listed, to skip it by while it
    /// stays so, when nothing was skipped (a skipped message is looked at again next time);
    /// else whatever state was kept goes.
    fn note_seen(&self, seen: Option<FolderSeen>, nothing_skipped: bool) -> Result<(), SyncError> {
        let Some(seen) = seen else {
            return Ok(());
        };
        let (email, folder) = (self.email(), self.folder.name.as_str());
        Ok(self
            .copier
            .engine
            .db
            .transaction(|tx| match nothing_skipped {
                true => tx.record_folder_seen(email, folder, &seen),
                false => tx.forget_folder_seen(email, folder),
            })?)
    }

    fn key(&self) -> FolderKey<'_> {
        FolderKey {
            email: &self.job.email_address,
            folder: &self.folder.name,
            uid_validity: self.uid_validity,
        }
    }

    fn skip(&self, uid: u32, reason: SkipReason, detail: impl Into<String>) -> SkippedItem {
        SkippedItem::message(&self.folder.relative, uid, reason, detail)
    }

    /// The folder's new messages, chunk by chunk.
    async fn copy_chunks(
        &self,
        source: &mut dyn MailSource,
        mut pending: Vec<ItemMeta>,
        report: &mut SyncReport,
        attempts: &mut Attempts,
    ) -> Result<(), SyncError> {
        // Chunk n+1 is fetched and prepared (its intents written ahead) while chunk n's writes
        // are in flight, so the target never waits on mailmig: at most two chunks in memory
        // (and chunk n+2 is asked for ahead, so the source does not wait either: a server that
        // runs pipelined fetches at once, as Dovecot does, may send part of it early, which is
        // held for it until it is read).
        // The first chunks are small, so the target's writes start at once, and grow to the
        // configured size (a damaged reply makes it 1 for good).
        let most = self.copier.options.fetch_chunk;
        let mut chunk_size = most.min(FIRST_CHUNK);
        // The byte bound grows with the count: [`CHUNK_BYTES`] once at the configured size.
        let bytes =
            |n: usize| (CHUNK_BYTES / most.max(1) as u64 * n as u64).clamp(1 << 20, CHUNK_BYTES);
        let grown = |n: usize| if n == 1 { 1 } else { (n * 2).min(most) };
        let first = next_chunk(&mut pending, chunk_size, bytes(chunk_size));
        // The chunk asked for ahead: the next one fetched.
        let mut ahead = next_chunk(&mut pending, grown(chunk_size), bytes(grown(chunk_size)));
        let first = fetch(source, first, &ahead).await?;
        let mut prepared = Some(
            self.prepare_chunk(first, &mut pending, &mut chunk_size, attempts)
                .await?,
        );
        while let Some(p) = prepared {
            if *self.job.stop.borrow() {
                return Err(SyncError::Stopped);
            }
            report.skipped.extend(p.skipped);
            if chunk_size == 1 {
                // After a damaged reply, one message at a time: those asked for ahead too.
                pending.splice(0..0, std::mem::take(&mut ahead));
            }
            chunk_size = grown(chunk_size);
            let next = match ahead.is_empty() {
                true => next_chunk(&mut pending, chunk_size, bytes(chunk_size)),
                false => std::mem::take(&mut ahead),
            };
            ahead = next_chunk(&mut pending, grown(chunk_size), bytes(grown(chunk_size)));
            let (pending, chunk_size, attempts) = (&mut pending, &mut chunk_size, &mut *attempts);
            let following = &ahead;
            let (after, settled) = tokio::join!(
                async {
                    if next.is_empty() {
                        return Ok(None);
                    }
                    let fetched = fetch(source, next, following).await?;
                    self.prepare_chunk(fetched, pending, chunk_size, attempts)
                        .await
                        .map(Some)
                },
                self.settle_chunk(p.intents, p.ready, p.done, p.uids),
            );
            let (skipped, failed) = settled?;
            report.skipped.extend(skipped);
            if let Some(e) = failed {
                return Err(e);
            }
            prepared = after?;
        }
        Ok(())
    }

    /// Chunk n's intents, its writes, then its records: while chunk n+1 is fetched.
    /// Acknowledged by the target: now, and only now, recorded (their intents cleared in the
    /// same transaction).
    /// After a failure the others' intents stay: the next attempt finds out whether their
    /// writes landed. Returns the chunk's skips and the import's failure, if any.
    async fn settle_chunk(
        &self,
        intents: Vec<(CopiedRecord, u64)>,
        ready: Ready,
        mut done: Vec<CopiedRecord>,
        uids: Vec<u32>,
    ) -> Result<(Vec<SkippedItem>, Option<SyncError>), SyncError> {
        self.record_intents(intents).await?;
        let (failed, skipped) = self.import_ready(ready, &mut done).await;
        let settled: Vec<u32> = match &failed {
            None => uids,
            Some(_) => done.iter().map(|r| r.uid).collect(),
        };
        let (items, bytes) = (done.len() as u64, done.iter().map(|r| r.size).sum());
        self.record_chunk(done, settled).await?;
        self.job.tell(SyncProgress::Copied { items, bytes });
        Ok((skipped, failed))
    }

    /// A fetched chunk made ready: its intents, each message taken (ready, there already, to
    /// retry, or skipped).
    async fn prepare_chunk(
        &self,
        (chunk, mut outcomes): Fetched,
        pending: &mut Vec<ItemMeta>,
        chunk_size: &mut usize,
        attempts: &mut Attempts,
    ) -> Result<Prepared, SyncError> {
        // After a reply that broke the connection, the rest goes one message at a time, so a
        // bad message costs itself only.
        if outcomes
            .values()
            .any(|o| matches!(o, FetchOutcome::Retry(_) | FetchOutcome::Damaged(..)))
        {
            *chunk_size = 1;
        }
        // Each message's fingerprint, once: for its intent and for its record.
        let mut prints: HashMap<u32, String> = outcomes
            .values()
            .filter_map(|o| match o {
                FetchOutcome::Item(item) => Some((item.uid, fingerprint(&item.raw))),
                _ => None,
            })
            .collect();
        let mut p = Prepared {
            uids: chunk.iter().map(|m| m.uid).collect(),
            intents: self.intents(&outcomes, &prints),
            done: Vec::new(),
            ready: Ready::default(),
            skipped: Vec::new(),
        };
        for meta in chunk {
            let outcome = outcomes.remove(&meta.uid);
            let print = prints.remove(&meta.uid);
            match self
                .take(meta, outcome, print, pending, &mut p.skipped, attempts)
                .await?
            {
                Taken::Ready(request, raw, about) => p.ready.push(request, raw, about),
                Taken::Done(record) => p.done.push(record),
                Taken::Nothing => {}
            }
        }
        Ok(p)
    }

    /// Intents left by a run that ended between a chunk's imports and its records. Under the
    /// current UIDVALIDITY: a target whose import knows its keys needs nothing (a new import
    /// of the same key is idempotent); one that does not (an IMAP target without the key
    /// header) is asked for copies matching each intent, and those it holds are recorded as
    /// copied (each copy taken once: not one another record already names). Under an earlier
    /// UIDVALIDITY the message would come back under a new key, so those the target holds
    /// are recorded under their old numbering, where the renumbering match by fingerprint
    /// finds them. A target that cannot list its keys leaves them unknown.
    async fn resolve_intents(&self, stale: Vec<Intent>) -> Result<(), SyncError> {
        let db = &self.copier.engine.db;
        let (current, earlier): (Vec<&Intent>, Vec<&Intent>) = stale
            .iter()
            .partition(|i| i.uid_validity == self.uid_validity);
        let landed = self.landed(&current).await?;
        let held = self.copier.target.source_keys(self.email()).await?;
        // Of the current numbering, those the target holds under their keys and `landed` did
        // not name: the next import of such a message would be idempotent, but the message
        // may have left the source meanwhile and never be imported again (its copy would
        // then be in the target and in no record).
        let named: HashSet<&str> = landed
            .iter()
            .map(|(i, _)| i.record.source_key.as_str())
            .collect();
        let kept: Vec<&Intent> = match &held {
            Some(held) => current
                .iter()
                .copied()
                .filter(|i| {
                    !named.contains(i.record.source_key.as_str())
                        && held.contains(&i.record.source_key)
                })
                .collect(),
            None => Vec::new(),
        };
        Ok(db.transaction(|tx| {
            for i in &kept {
                tx.record_copied(
                    self.key(),
                    &i.target_folder,
                    std::slice::from_ref(&i.record),
                )?;
                tx.add_user_progress(self.email(), 1, i.record.size)?;
            }
            if let Some(held) = &held {
                for i in earlier
                    .iter()
                    .filter(|i| held.contains(&i.record.source_key))
                {
                    let key = FolderKey {
                        uid_validity: i.uid_validity,
                        ..self.key()
                    };
                    tx.record_copied(key, &i.target_folder, std::slice::from_ref(&i.record))?;
                }
            }
            for (i, id) in &landed {
                let record = CopiedRecord {
                    target_id: Some(id.clone()),
                    ..i.record.clone()
                };
                tx.record_copied(self.key(), &i.target_folder, std::slice::from_ref(&record))?;
                tx.add_user_progress(self.email(), 1, i.record.size)?;
            }
            tx.clear_intents(self.email(), &self.folder.name, None)
        })?)
    }

    /// Which intents of the current numbering the target holds a copy of, and which copy.
    async fn landed<'i>(
        &self,
        intents: &[&'i Intent],
    ) -> Result<Vec<(&'i Intent, String)>, SyncError> {
        let mut landed = Vec::new();
        let mut folders: Vec<&str> = intents.iter().map(|i| i.target_folder.as_str()).collect();
        folders.sort_unstable();
        folders.dedup();
        for folder in folders {
            let group: Vec<&Intent> = intents
                .iter()
                .copied()
                .filter(|i| i.target_folder == folder)
                .collect();
            let probes: Vec<Probe> = group
                .iter()
                .map(|i| Probe {
                    size: i.record.size,
                    wire_size: i.wire_size,
                    fingerprint: i.record.fingerprint.clone(),
                })
                .collect();
            let Some(found) = self
                .copier
                .target
                .find_copies(self.email(), folder, &probes)
                .await?
            else {
                continue;
            };
            let recorded = self.copier.engine.db.read(|tx| tx.copied(self.key()))?;
            let mut taken: HashSet<String> = recorded
                .values()
                .filter_map(|r| r.target_id.clone())
                .collect();
            // Records without an id (a target without UIDPLUS) own the oldest matching copies.
            let mut unnamed: HashMap<&str, usize> = HashMap::new();
            for r in recorded.values().filter(|r| r.target_id.is_none()) {
                *unnamed.entry(r.fingerprint.as_str()).or_default() += 1;
            }
            for (i, candidates) in group.into_iter().zip(found) {
                let skip = unnamed
                    .get(i.record.fingerprint.as_str())
                    .copied()
                    .unwrap_or(0);
                if let Some(id) = candidates
                    .into_iter()
                    .skip(skip)
                    .find(|id| !taken.contains(id))
                {
                    taken.insert(id.clone());
                    landed.push((i, id));
                }
            }
        }
        Ok(landed)
    }

    /// What each fetched message will be imported as (and its size on the wire).
    fn intents(
        &self,
        outcomes: &HashMap<u32, FetchOutcome>,
        prints: &HashMap<u32, String>,
    ) -> Vec<(CopiedRecord, u64)> {
        outcomes
            .values()
            .filter_map(|o| match o {
                FetchOutcome::Item(item) => Some((
                    CopiedRecord {
                        uid: item.uid,
                        flags: item.flags.join(" "),
                        fingerprint: prints.get(&item.uid).cloned().unwrap_or_default(),
                        source_key: keyed(&self.key_prefix, item.uid),
                        size: item.raw.len() as u64,
                        target_id: None,
                    },
                    wire_size(&item.raw),
                )),
                _ => None,
            })
            .collect()
    }

    /// Write-ahead, before a chunk's imports: its intents, on a blocking thread.
    async fn record_intents(&self, intents: Vec<(CopiedRecord, u64)>) -> Result<(), SyncError> {
        if intents.is_empty() {
            return Ok(());
        }
        let engine = self.copier.engine.clone();
        let (email, folder, target) = (
            self.email().to_string(),
            self.folder.name.clone(),
            self.target.to_string(),
        );
        let uid_validity = self.uid_validity;
        blocking(move || {
            let key = FolderKey {
                email: &email,
                folder: &folder,
                uid_validity,
            };
            engine
                .db
                .transaction(|tx| tx.record_intents(key, &target, &intents))
        })
        .await
    }

    /// A chunk's acknowledged records, its intents cleared and the user's progress, in one
    /// transaction; written on a blocking thread, so the chunk fetched meanwhile goes on.
    async fn record_chunk(&self, done: Vec<CopiedRecord>, uids: Vec<u32>) -> Result<(), SyncError> {
        // New to the target: imported under this numbering's key (not an old copy taken over).
        let (items, bytes) = done
            .iter()
            .filter(|r| {
                r.source_key
                    .strip_prefix(&self.key_prefix)
                    .is_some_and(|uid| uid.parse() == Ok(r.uid))
            })
            .fold((0u64, 0u64), |(n, b), r| (n + 1, b + r.size));
        let engine = self.copier.engine.clone();
        let (email, folder, target) = (
            self.email().to_string(),
            self.folder.name.clone(),
            self.target.to_string(),
        );
        let uid_validity = self.uid_validity;
        blocking(move || {
            let key = FolderKey {
                email: &email,
                folder: &folder,
                uid_validity,
            };
            engine.db.transaction(|tx| {
                tx.record_copied(key, &target, &done)?;
                if items > 0 {
                    tx.add_user_progress(&email, items, bytes)?;
                }
                tx.clear_intents(&email, &folder, Some((uid_validity, &uids)))
            })
        })
        .await
    }

    fn record(&self, done: &[CopiedRecord]) -> Result<(), SyncError> {
        if done.is_empty() {
            return Ok(());
        }
        Ok(self
            .copier
            .engine
            .db
            .transaction(|tx| tx.record_copied(self.key(), self.target, done))?)
    }

    /// Messages of this folder copied under an earlier UIDVALIDITY, by fingerprint, with the
    /// source keys the target knows them by; those also seen under the current UIDVALIDITY are
    /// taken out, so duplicates in the source still count one by one.
    /// Flags changed at the source on messages copied before: re-applied.
    async fn reapply_flags(
        &self,
        items: &[ItemMeta],
        copied: &HashMap<u32, CopiedRecord>,
    ) -> Result<(), SyncError> {
        let mut updated = Vec::new();
        for m in items {
            let Some(r) = copied.get(&m.uid) else {
                continue;
            };
            let now = m.flags.join(" ");
            if r.flags == now {
                continue;
            }
            let item = TargetItem {
                source_key: r.source_key.clone(),
                target_id: r.target_id.clone(),
                probe: Probe {
                    size: r.size,
                    // Not kept with a record (its copy is found by its target id first).
                    wire_size: r.size,
                    fingerprint: r.fingerprint.clone(),
                },
            };
            self.copier
                .target
                .update_flags_of(
                    self.email(),
                    self.target,
                    &item,
                    &ItemFlags::from_imap(&m.flags),
                )
                .await?;
            updated.push(CopiedRecord {
                uid: m.uid,
                flags: now,
                fingerprint: String::new(), // only the flags of an existing row change
                source_key: r.source_key.clone(),
                size: m.size,
                target_id: None,
            });
        }
        self.record(&updated)
    }

    /// Messages not copied yet, in the source's order (UIDs ascending, so a target that numbers
    /// what it receives numbers it as the source did); too large ones are skipped without
    /// downloading. Which messages are copied at all (the item cap keeps the newest) is
    /// decided before, over the whole mailbox.
    fn new_items(
        &self,
        items: Vec<ItemMeta>,
        copied: &HashMap<u32, CopiedRecord>,
        report: &mut SyncReport,
    ) -> Vec<ItemMeta> {
        let max = self.copier.options.max_message_size;
        let mut todo: Vec<ItemMeta> = items
            .into_iter()
            .filter(|m| !copied.contains_key(&m.uid))
            .collect();
        todo.sort_by_key(|m| m.uid);
        todo.retain(|m| match large_item(m, max) {
            None => true,
            Some(detail) => {
                report
                    .skipped
                    .push(self.skip(m.uid, SkipReason::LargeItem, detail));
                false
            }
        });
        todo
    }

    /// Creates the target folder; `false` when the target refuses it (its messages are then
    /// reported, not copied).
    async fn ensure_target_folder(
        &self,
        pending: &[ItemMeta],
        report: &mut SyncReport,
    ) -> Result<bool, SyncError> {
        match self
            .copier
            .target
            .ensure_folder(self.email(), self.target)
            .await
        {
            Ok(_) => Ok(true),
            Err(TargetError::Refused(why)) => {
                for m in pending {
                    report
                        .skipped
                        .push(self.skip(m.uid, SkipReason::FolderName, why.clone()));
                }
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// One message of a chunk: ready for the target, recorded as there already, retried
    /// later, or reported as skipped.
    async fn take(
        &self,
        meta: ItemMeta,
        outcome: Option<FetchOutcome>,
        print: Option<String>,
        pending: &mut Vec<ItemMeta>,
        skipped: &mut Vec<SkippedItem>,
        attempts: &mut Attempts,
    ) -> Result<Taken, SyncError> {
        let item = match outcome {
            Some(FetchOutcome::Item(item)) => item,
            Some(FetchOutcome::Retry(_)) => {
                pending.push(meta);
                return Ok(Taken::Nothing);
            }
            Some(FetchOutcome::Vanished(uid)) => {
                skipped.push(self.skip(
                    uid,
                    SkipReason::Vanished,
                    "expunged at the source during the sync",
                ));
                return Ok(Taken::Nothing);
            }
            // Refused, unreadable, or not answered at all: retried, then skipped as a bad item.
            other => {
                let tries = self.copier.options.fetch_attempts;
                let n = attempts
                    .entry((self.folder.name.clone(), meta.uid))
                    .or_default();
                *n += 1;
                if *n < tries {
                    pending.push(meta);
                } else {
                    let detail = match other {
                        Some(FetchOutcome::Damaged(_, why)) => {
                            format!("{why} ({tries} attempts)")
                        }
                        _ => format!("the server refused to return the message {tries} times"),
                    };
                    skipped.push(self.skip(meta.uid, SkipReason::BadItem, detail));
                }
                return Ok(Taken::Nothing);
            }
        };
        let print = print.unwrap_or_else(|| fingerprint(&item.raw));
        self.prepare_item(&meta, item, print).await
    }

    /// A fetched message: its import request, or its record when the target holds it from
    /// before a UIDVALIDITY change (not copied again; its flags follow).
    async fn prepare_item(
        &self,
        meta: &ItemMeta,
        item: SourceItem,
        fingerprint: String,
    ) -> Result<Taken, SyncError> {
        let flags = ItemFlags::from_imap(&item.flags);
        let about = About {
            uid: meta.uid,
            flags: item.flags.join(" "),
            probe: Probe {
                size: item.raw.len() as u64,
                // Counted once, for the intent (what a crash leaves to be found by size); a
                // landed copy is known by its target id or source key.
                wire_size: item.raw.len() as u64,
                fingerprint,
            },
        };
        let taken_over = self
            .renumbered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(&about.probe.fingerprint)
            .and_then(|keys| keys.pop());
        if let Some((old_key, old_id)) = taken_over {
            let old = TargetItem {
                source_key: old_key.clone(),
                target_id: old_id.clone(),
                probe: about.probe.clone(),
            };
            self.copier
                .target
                .update_flags_of(self.email(), self.target, &old, &flags)
                .await?;
            return Ok(Taken::Done(about.record(old_key, old_id)));
        }
        let request = ImportRequest {
            kind: self.folder.content.item_kind(),
            folder: self.target.to_string(),
            source_key: keyed(&self.key_prefix, meta.uid),
            received_time: item.date.or(meta.date),
            flags,
        };
        Ok(Taken::Ready(request, item.raw, about))
    }

    /// A chunk's ready messages to the target in one go (pipelined where it can), then each
    /// settled: acknowledged ones go to `done`, refused ones are returned as skipped. The
    /// first failure that ends the attempt is returned; what was acknowledged besides is
    /// still recorded.
    async fn import_ready(
        &self,
        ready: Ready,
        done: &mut Vec<CopiedRecord>,
    ) -> (Option<SyncError>, Vec<SkippedItem>) {
        let mut skipped = Vec::new();
        if ready.requests.is_empty() {
            return (None, skipped);
        }
        let first = self
            .copier
            .target
            .import_many(self.email(), &ready.requests)
            .await;
        let mut failed = None;
        for (((request, raw), about), outcome) in
            ready.requests.into_iter().zip(ready.about).zip(first)
        {
            if failed.is_some() {
                if let Ok(ImportOutcome::Created(id) | ImportOutcome::AlreadyPresent(id)) = outcome
                {
                    done.push(about.record(request.source_key, Some(id)));
                }
                continue;
            }
            match settle(self.copier, self.job, &request, &raw, &about.probe, outcome).await {
                Ok(Imported::Yes(id)) => done.push(about.record(request.source_key, id)),
                Ok(Imported::Skipped(reason, detail)) => {
                    skipped.push(self.skip(about.uid, reason, detail));
                }
                Err(e) => failed = Some(e),
            }
        }
        (failed, skipped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(uid: u32, size: u64) -> ItemMeta {
        ItemMeta {
            uid,
            size,
            flags: Vec::new(),
            date: None,
        }
    }

    #[test]
    fn chunks_are_bounded_by_count_and_bytes_but_take_at_least_one() {
        let mut pending: Vec<_> = (1..=5).map(|u| meta(u, 10)).collect();
        assert_eq!(next_chunk(&mut pending, 2, CHUNK_BYTES).len(), 2);
        assert_eq!(
            next_chunk(&mut pending, 0, CHUNK_BYTES).len(),
            1,
            "a zero limit counts as one"
        );
        let mut big = vec![meta(1, CHUNK_BYTES), meta(2, 1), meta(3, 1)];
        assert_eq!(
            next_chunk(&mut big, 10, CHUNK_BYTES).len(),
            1,
            "over the byte bound"
        );
        let mut huge = vec![meta(1, CHUNK_BYTES * 2)];
        assert_eq!(
            next_chunk(&mut huge, 10, CHUNK_BYTES).len(),
            1,
            "a single big message goes alone"
        );
    }
}
