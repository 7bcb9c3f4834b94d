//! Any IMAP server as the migration target (IMAP to IMAP, e.g. Dovecot to Dovecot).
//!
//! APPEND keeps flags and the internal date, and by default no byte of the message changes.
//! APPENDs are pipelined (LITERAL+ when offered: nothing waited for; else only each literal's
//! `+`), one session per target mailbox, logged out when its sync ends. UIDPLUS's APPENDUID
//! names each copy (`UIDVALIDITY:UID:folder`), which the checkpoint keeps for flag updates and
//! the closing reconciliation.
//!
//! Idempotence across a crash: the engine records a write-ahead intent (size, fingerprint)
//! before each chunk's APPENDs; intents a run left behind are resolved here by
//! [`Target::find_copies`] (`UID SEARCH LARGER/SMALLER` on the size, then the candidates'
//! headers fingerprinted), as dsync matches by header hashes. For a target where that cannot
//! work, `source_key_header` writes `X-Mailmig-Source-Key: <source key>` as each message's
//! first line instead, and the folder's keys are read once before the first APPEND into it.
//!
//! Exchange's well-known folders (Sent Items, Deleted Items, Drafts, Junk Email, Archive) land
//! in the target's own: the folder with that SPECIAL-USE attribute, else one the target
//! already has under a usual name (`Sent`, `Trash`, `INBOX.Sent`, ...).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::{
    FlagUpdate, ImportOutcome, ImportRequest, ItemFlags, Probe, Rejection, Target, TargetError,
    TargetItem,
};
use crate::imap::client::Append;
use crate::imap::commands::{self, Listed};
use crate::imap::{
    Client, ClientError, Done, ImapSettings, LoginError, Security, backoff_hint, connect, login,
};

pub const KEY_HEADER: &str = "X-Mailmig-Source-Key";

/// APPENDs in flight at once on one session.
const APPEND_WINDOW: usize = 512;

/// Where and how to log in at the target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImapTargetConfig {
    pub remote_server: String,
    pub port: u16,
    pub security: Security,
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
    /// The login from the CSV's EmailAddress: `{email}`, `{local}`, `{domain}`, e.g.
    /// `{email}*mailadmin` for a Dovecot master user.
    pub username_format: String,
    /// Kept in the private state database only; never printed.
    #[serde(default)]
    pub password: String,
    /// Writes `X-Mailmig-Source-Key: <key>` as each message's first line, for a target whose
    /// copies cannot be found by size and headers. Off: copies are exact. A target set before
    /// exact copies existed has its copies keyed, so it keeps the header.
    #[serde(default = "keyed_before_exact_copies")]
    pub source_key_header: bool,
}

fn keyed_before_exact_copies() -> bool {
    true
}

impl ImapTargetConfig {
    pub fn login_for(&self, email: &str) -> String {
        let (local, domain) = email.rsplit_once('@').unwrap_or((email, ""));
        self.username_format
            .replace("{email}", email)
            .replace("{local}", local)
            .replace("{domain}", domain)
    }

    fn settings(&self) -> ImapSettings {
        let mut s = ImapSettings::new(&self.remote_server, self.port, self.security);
        s.ca_file = self.ca_file.clone();
        s
    }
}

struct Mailbox {
    client: Client,
    delimiter: char,
    /// The selected folder (wire name) and its UIDVALIDITY.
    selected: Option<(String, Option<u32>)>,
    /// With the key header: target folder (wire name) -> source key -> UID.
    keys: HashMap<String, HashMap<String, u32>>,
    /// Exchange's well-known folder (lowercase) -> the target's folder for it (wire name).
    special: HashMap<String, String>,
    /// The connection broke in a way the call's result does not show (pipelined APPENDs).
    broken: bool,
    /// MULTIAPPEND with LITERAL+: many messages per command, stored in one transaction.
    multiappend: bool,
}

pub struct ImapTarget {
    pub config: ImapTargetConfig,
    pub timeout: Duration,
    /// One session per target mailbox, each behind its own lock: a slow APPEND for one user
    /// never holds up another user's copy.
    sessions: std::sync::Mutex<HashMap<String, Arc<Mutex<Option<Mailbox>>>>>,
}

/// A failure of the connection: the session is dropped and the call may be retried.
fn io(e: impl std::fmt::Display) -> TargetError {
    TargetError::Transient(e.to_string())
}

/// A command the target refused with NO, as a passing fault (the session is dropped).
fn refused(what: &str, done: Done) -> Result<(), TargetError> {
    match done {
        Done::Ok(_) => Ok(()),
        Done::No(text) => Err(TargetError::Transient(format!("{what}: {text}"))),
    }
}

/// Exchange's well-known folders, the SPECIAL-USE attribute of each, and the names a target
/// without SPECIAL-USE usually gives it.
const WELL_KNOWN: [(&str, &str, &[&str]); 5] = [
    (
        "sent items",
        "\\sent",
        &["Sent", "Sent Items", "Sent Messages"],
    ),
    (
        "deleted items",
        "\\trash",
        &["Trash", "Deleted Items", "Deleted Messages"],
    ),
    ("drafts", "\\drafts", &["Drafts"]),
    ("junk email", "\\junk", &["Junk", "Junk Email", "Spam"]),
    ("archive", "\\archive", &["Archive"]),
];

/// Which of the target's folders stand for Exchange's well-known ones.
fn special_folders(listed: &[Listed], delimiter: char) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for (exchange, attribute, names) in WELL_KNOWN {
        let by_use = listed
            .iter()
            .find(|l| l.selectable && l.special_use.iter().any(|a| a == attribute));
        let by_name = || {
            names.iter().find_map(|name| {
                let nested = format!("INBOX{delimiter}{name}");
                listed.iter().find(|l| {
                    l.selectable
                        && (l.wire.eq_ignore_ascii_case(name)
                            || l.wire.eq_ignore_ascii_case(&nested))
                })
            })
        };
        if let Some(l) = by_use.or_else(by_name) {
            out.insert(exchange.to_string(), l.wire.clone());
        }
    }
    out
}

/// A copy's id: `UIDVALIDITY:UID:folder`.
fn target_id(validity: u32, uid: u32, wire: &str) -> String {
    format!("{validity}:{uid}:{wire}")
}

fn parse_target_id(id: &str) -> Option<(u32, u32, &str)> {
    let mut parts = id.splitn(3, ':');
    Some((
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
        parts.next()?,
    ))
}

impl ImapTarget {
    pub fn new(config: ImapTargetConfig) -> Self {
        Self {
            config,
            timeout: Duration::from_secs(60),
            sessions: std::sync::Mutex::new(HashMap::new()),
        }
    }

    async fn open(&self, email: &str) -> Result<Mailbox, TargetError> {
        let settings = self.config.settings();
        let connected = connect(&settings, self.timeout).await.map_err(io)?;
        let mut client = connected.client;
        let user = self.config.login_for(email);
        match login(&mut client, &settings, &user, &self.config.password).await {
            Ok(_) => {}
            Err(LoginError::Refused(text)) => {
                return Err(TargetError::Refused(format!(
                    "The target refused the login for {email}: {text}"
                )));
            }
            Err(LoginError::Throttled { text, .. }) => return Err(io(text)),
            Err(LoginError::Connection(e)) => return Err(io(e)),
        }
        // After the login: LITERAL+ (the client notes it from the reply) and SPECIAL-USE.
        let (caps, _) = commands::capability(&mut client).await.map_err(io)?;
        let has = |c: &str| caps.iter().any(|x| x.eq_ignore_ascii_case(c));
        // `LIST "" ""` names the hierarchy delimiter (RFC 3501 6.3.8). Read checked: a reply
        // lost or refused here would make every nested folder's name wrong.
        let reply = commands::list(&mut client, "").await.map_err(io)?;
        refused("LIST \"\" \"\"", reply.done)?;
        let delimiter = reply
            .listed
            .first()
            .and_then(|l| l.delimiter)
            .unwrap_or('/');
        let all = if has("SPECIAL-USE") {
            commands::list_special_use(&mut client).await
        } else {
            commands::list(&mut client, "*").await
        }
        .map_err(io)?;
        refused("LIST \"\" \"*\"", all.done)?;
        let multiappend = has("MULTIAPPEND") && client.literal_plus;
        Ok(Mailbox {
            client,
            delimiter,
            selected: None,
            keys: HashMap::new(),
            special: special_folders(&all.listed, delimiter),
            broken: false,
            multiappend,
        })
    }

    /// The target's name for a `/`-separated path: Inbox is INBOX, a well-known folder is the
    /// target's own, the rest in modified UTF-7 with the target's delimiter.
    fn wire_name(path: &str, delimiter: char, special: &HashMap<String, String>) -> String {
        let mut parts = path.split('/');
        let first = parts.next().unwrap_or("");
        let rest: Vec<&str> = parts.collect();
        let head = if first.eq_ignore_ascii_case("Inbox") {
            "INBOX".to_string()
        } else if let Some(own) = special.get(&first.to_ascii_lowercase()) {
            own.clone()
        } else {
            mutf7::encode(first)
        };
        if rest.is_empty() {
            head
        } else {
            let d = delimiter.to_string();
            format!("{head}{d}{}", mutf7::encode(&rest.join(&d)))
        }
    }

    async fn with_mailbox<T>(
        &self,
        email: &str,
        f: impl AsyncFnOnce(&mut Mailbox) -> Result<T, TargetError>,
    ) -> Result<T, TargetError> {
        let slot = {
            let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
            sessions
                .entry(email.to_ascii_lowercase())
                .or_default()
                .clone()
        };
        let mut session = slot.lock().await;
        if session.is_none() {
            *session = Some(self.open(email).await?);
        }
        let m = session.as_mut().expect("opened");
        let result = f(m).await;
        let transient = result.as_ref().err().is_some_and(TargetError::is_transient);
        if transient || m.broken {
            // A broken connection is dropped; the next call opens a new one.
            *session = None;
        }
        result
    }

    /// Pipelined APPENDs of a batch (after the keys the target holds, with the header).
    async fn append_many(
        &self,
        m: &mut Mailbox,
        requests: &[(ImportRequest, Bytes)],
    ) -> Result<Vec<Result<ImportOutcome, TargetError>>, TargetError> {
        let header = self.config.source_key_header;
        let wires: Vec<String> = requests
            .iter()
            .map(|(r, _)| ImapTarget::wire_name(&r.folder, m.delimiter, &m.special))
            .collect();
        let mut out: Vec<Option<Result<ImportOutcome, TargetError>>> =
            requests.iter().map(|_| None).collect();
        if header {
            for (i, (r, _)) in requests.iter().enumerate() {
                if let Some(uid) = keys(m, &wires[i]).await?.get(&r.source_key) {
                    out[i] = Some(Ok(ImportOutcome::AlreadyPresent(uid.to_string())));
                }
            }
        }
        let keyed: Vec<Vec<u8>> = requests
            .iter()
            .enumerate()
            .filter(|(i, _)| header && out[*i].is_none())
            .map(|(_, (r, mime))| {
                let mut b = format!("{KEY_HEADER}: {}\r\n", r.source_key).into_bytes();
                b.extend_from_slice(mime);
                b
            })
            .collect();
        let mut keyed = keyed.iter();
        let mut items = Vec::new();
        let mut args = Vec::new();
        let mut at = Vec::new();
        for (i, (r, mime)) in requests.iter().enumerate() {
            if out[i].is_some() {
                continue;
            }
            let flags = r.flags.to_imap();
            let flags = if flags.is_empty() {
                String::new()
            } else {
                format!("({})", flags.join(" "))
            };
            let date = r.received_time.map(imap_date);
            let Some(head) = commands::append_head(&wires[i], &flags, date.as_deref()) else {
                out[i] = Some(Ok(ImportOutcome::Rejected(Rejection::InvalidFolder {
                    message: format!("the folder name {:?} cannot be written", r.folder),
                })));
                continue;
            };
            let message: &[u8] = if header {
                keyed.next().expect("one keyed copy each")
            } else {
                mime
            };
            args.push(head[commands::quoted(&wires[i]).len() + 1..].to_string());
            items.push(Append { head, message });
            at.push(i);
        }
        // MULTIAPPEND first (one transaction per command at the server); what it could not
        // take goes one APPEND each, pipelined, to learn which message was refused.
        let mut singles: Vec<usize> = (0..items.len()).collect();
        if m.multiappend {
            match multiappend_groups(m, &items, &args, &at, &wires).await {
                Ok((created, rest)) => {
                    for (i, id) in created {
                        let (r, _) = &requests[i];
                        if header && let Some(k) = m.keys.get_mut(&wires[i]) {
                            k.insert(r.source_key.clone(), 0);
                        }
                        out[i] = Some(Ok(ImportOutcome::Created(
                            id.unwrap_or_else(|| r.source_key.clone()),
                        )));
                    }
                    singles = rest;
                }
                Err((created, why)) => {
                    m.broken = true;
                    for (i, id) in created {
                        let (r, _) = &requests[i];
                        out[i] = Some(Ok(ImportOutcome::Created(
                            id.unwrap_or_else(|| r.source_key.clone()),
                        )));
                    }
                    return Ok(out
                        .into_iter()
                        .map(|o| {
                            o.unwrap_or_else(|| {
                                Err(io(format!(
                                    "the connection broke with the MULTIAPPEND in flight ({why})"
                                )))
                            })
                        })
                        .collect());
                }
            }
        }
        let at: Vec<usize> = singles.iter().map(|&k| at[k]).collect();
        let items: Vec<Append<'_>> = singles
            .iter()
            .map(|&k| Append {
                head: items[k].head.clone(),
                message: items[k].message,
            })
            .collect();
        let appended = m.client.append_pipelined(&items, APPEND_WINDOW).await;
        if appended.broke.is_some() {
            m.broken = true;
        }
        let broke = appended.broke.map(|e| e.to_string());
        for (k, done) in appended.done.into_iter().enumerate() {
            let i = at[k];
            let (r, mime) = &requests[i];
            out[i] = Some(match done {
                Some(Ok(Done::Ok(text))) => {
                    let id = commands::appenduid(&text)
                        .map(|(v, uid)| target_id(v, uid, &wires[i]))
                        .unwrap_or_else(|| r.source_key.clone());
                    if header {
                        // The UID is learnt when a flag update needs it.
                        if let Some(k) = m.keys.get_mut(&wires[i]) {
                            k.insert(r.source_key.clone(), 0);
                        }
                    }
                    Ok(ImportOutcome::Created(id))
                }
                Some(Ok(Done::No(text))) => Ok(append_refusal(&text, mime.len() as u64)),
                // Refused as a bad command: the server's size limit or its line limit.
                Some(Err(ClientError::Bad { text, .. })) => {
                    Ok(append_refusal(&text, mime.len() as u64))
                }
                Some(Err(e)) => Err(io(e)),
                None => Err(io(format!(
                    "the connection broke with the APPEND in flight ({})",
                    broke.as_deref().unwrap_or("closed")
                ))),
            });
        }
        Ok(out
            .into_iter()
            .map(|o| o.expect("every request answered"))
            .collect())
    }
}

/// Messages and bytes in one MULTIAPPEND at most.
const MULTI_MESSAGES: usize = 256;
const MULTI_BYTES: usize = 32 * 1024 * 1024;

/// What MULTIAPPENDs created, and which messages are left for single APPENDs.
type Multi = (Vec<(usize, Option<String>)>, Vec<usize>);

/// MULTIAPPENDs of the messages, grouped by folder in their order: the requests created (with
/// their ids when APPENDUID named them), and the items of groups the server refused (NO or
/// BAD: nothing of a refused group was stored) for single APPENDs. `Err` when the connection
/// broke, with what was created before.
async fn multiappend_groups(
    m: &mut Mailbox,
    items: &[Append<'_>],
    args: &[String],
    at: &[usize],
    wires: &[String],
) -> Result<Multi, (Vec<(usize, Option<String>)>, String)> {
    let mut created = Vec::new();
    let mut rest = Vec::new();
    let mut k = 0;
    while k < items.len() {
        let wire = &wires[at[k]];
        let mut end = k;
        let mut bytes = 0;
        while end < items.len()
            && &wires[at[end]] == wire
            && end - k < MULTI_MESSAGES
            && (end == k || bytes + items[end].message.len() <= MULTI_BYTES)
        {
            bytes += items[end].message.len();
            end += 1;
        }
        let parts: Vec<commands::MultiPart<'_>> = (k..end)
            .map(|j| commands::MultiPart {
                args: args[j].clone(),
                message: items[j].message,
            })
            .collect();
        match commands::multiappend(&mut m.client, wire, &parts).await {
            Ok(Done::Ok(text)) => {
                let uids = commands::appenduids(&text).filter(|(_, uids)| uids.len() == end - k);
                for (n, j) in (k..end).enumerate() {
                    let id = uids.as_ref().map(|(v, u)| target_id(*v, u[n], wire));
                    created.push((at[j], id));
                }
            }
            Ok(Done::No(_)) | Err(ClientError::Bad { .. }) => rest.extend(k..end),
            Err(e) => return Err((created, e.to_string())),
        }
        k = end;
    }
    Ok((created, rest))
}

async fn select(m: &mut Mailbox, wire: &str) -> Result<Option<u32>, TargetError> {
    if let Some((name, validity)) = &m.selected
        && name == wire
    {
        return Ok(*validity);
    }
    let (opened, done) = commands::select(&mut m.client, wire).await.map_err(io)?;
    refused(&format!("SELECT {wire}"), done)?;
    m.selected = Some((wire.to_string(), opened.uid_validity));
    Ok(opened.uid_validity)
}

/// Which source keys a target folder already holds, read once per folder and connection.
async fn keys<'a>(
    m: &'a mut Mailbox,
    wire: &str,
) -> Result<&'a mut HashMap<String, u32>, TargetError> {
    if !m.keys.contains_key(wire) {
        select(m, wire).await?;
        let mut found = HashMap::new();
        // Checked: a refused or cut listing must not look like an empty folder (that would
        // append everything again).
        let reply = commands::uid_fetch(
            &mut m.client,
            "1:*",
            &format!("(UID BODY.PEEK[HEADER.FIELDS ({KEY_HEADER})])"),
        )
        .await;
        if let Some(e) = reply.broke {
            return Err(io(e));
        }
        if let Some(Done::No(why)) = reply.done {
            return Err(io(format!("the target refused to list {wire}: {why}")));
        }
        if let Some(d) = reply.damaged.first() {
            return Err(io(format!(
                "the target's listing of {wire} cannot be read: {}",
                d.reply
            )));
        }
        for f in &reply.fetched {
            let (Some(uid), Some(h)) = (f.uid, &f.body) else {
                continue;
            };
            let text = String::from_utf8_lossy(h);
            if let Some(v) = text.split_once(':').map(|(_, v)| v.trim())
                && !v.is_empty()
            {
                found.insert(v.to_string(), uid);
            }
        }
        m.keys.insert(wire.to_string(), found);
    }
    Ok(m.keys.get_mut(wire).expect("inserted"))
}

/// The folder's messages matching each probe (size, then the fingerprint of their headers):
/// their UIDs, ascending, and the folder's UIDVALIDITY.
async fn matching(
    m: &mut Mailbox,
    wire: &str,
    probes: &[Probe],
) -> Result<(Vec<Vec<u32>>, u32), TargetError> {
    let validity = select(m, wire)
        .await?
        .ok_or_else(|| io(format!("the target named no UIDVALIDITY for {wire}")))?;
    // A message with bare LFs may be held with CRLFs (Dovecot does so): its copy is as big as
    // the source's or as its CRLF form, and its header fields are the same.
    let sizes = |p: &Probe| (p.size, p.wire_size.max(p.size));
    let mut by_size: HashMap<(u64, u64), Vec<u32>> = HashMap::new();
    for p in probes {
        let (least, most) = sizes(p);
        if by_size.contains_key(&(least, most)) {
            continue;
        }
        let (uids, done) = commands::uid_search(
            &mut m.client,
            &format!("LARGER {} SMALLER {}", least.saturating_sub(1), most + 1),
        )
        .await
        .map_err(io)?;
        refused(&format!("UID SEARCH in {wire}"), done)?;
        by_size.insert((least, most), uids);
    }
    let mut candidates: Vec<u32> = by_size.values().flatten().copied().collect();
    candidates.sort_unstable();
    candidates.dedup();
    let mut fingerprints: HashMap<u32, String> = HashMap::new();
    for group in candidates.chunks(256) {
        let set = group
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let reply =
            commands::uid_fetch(&mut m.client, &set, "(UID RFC822.SIZE BODY.PEEK[HEADER])").await;
        if let Some(e) = reply.broke {
            return Err(io(e));
        }
        if let Some(Done::No(why)) = reply.done {
            return Err(io(format!("the target refused to read {wire}: {why}")));
        }
        for f in &reply.fetched {
            if let (Some(uid), Some(size), Some(h)) = (f.uid, f.size, &f.body) {
                fingerprints.insert(uid, crate::identity::fingerprint_of(h, size as usize));
            }
        }
    }
    let found = probes
        .iter()
        .map(|p| {
            let crlf = crate::identity::resized(&p.fingerprint, p.wire_size);
            let mut uids: Vec<u32> = by_size[&sizes(p)]
                .iter()
                .copied()
                .filter(|u| {
                    fingerprints
                        .get(u)
                        .is_some_and(|f| *f == p.fingerprint || *f == crlf)
                })
                .collect();
            uids.sort_unstable();
            uids
        })
        .collect();
    Ok((found, validity))
}

fn imap_date(t: chrono::DateTime<chrono::Utc>) -> String {
    format!("\"{}\"", t.format("%d-%b-%Y %H:%M:%S +0000"))
}

/// What an APPEND the target refused means for the message.
fn append_refusal(text: &str, size: u64) -> ImportOutcome {
    if let Some(wait) = backoff_hint(text) {
        ImportOutcome::Throttled(wait)
    } else if text.contains("OVERQUOTA") || text.contains("Server Unavailable. 15") {
        ImportOutcome::Rejected(Rejection::QuotaExceeded)
    } else if text.contains("TOOBIG")
        || text.contains("Maximum size")
        || text.contains("Argument Error")
    {
        ImportOutcome::Rejected(Rejection::TooLarge { size, max: 0 })
    } else {
        ImportOutcome::Rejected(Rejection::InvalidFolder {
            message: text.to_string(),
        })
    }
}

#[async_trait]
impl Target for ImapTarget {
    async fn sync_ended(&self, address: &str) {
        let slot = self
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&address.to_ascii_lowercase());
        if let Some(slot) = slot
            && let Some(mut m) = slot.lock().await.take()
        {
            let _ =
                tokio::time::timeout(Duration::from_secs(5), commands::logout(&mut m.client)).await;
        }
    }

    async fn check_recipient(&self, address: &str) -> Result<Option<String>, TargetError> {
        match self.with_mailbox(address, async |_| Ok(())).await {
            Ok(()) => Ok(None),
            Err(TargetError::Refused(m)) => Ok(Some(m)),
            Err(e) => Err(e),
        }
    }

    async fn ensure_folder(&self, address: &str, path: &str) -> Result<String, TargetError> {
        self.with_mailbox(address, async |m| {
            let wire = ImapTarget::wire_name(path, m.delimiter, &m.special);
            if wire == "INBOX" {
                return Ok(path.to_string());
            }
            let created = commands::create(&mut m.client, &wire).await.map_err(io)?;
            if let Done::No(why) = created {
                // Already there is fine (EXAMINE tells); anything else is the target's refusal.
                m.selected = None;
                let (_, examined) = commands::examine(&mut m.client, &wire, false)
                    .await
                    .map_err(io)?;
                if !examined.is_ok() {
                    return Err(TargetError::Refused(format!(
                        "The target refused the folder {path}: {why}"
                    )));
                }
            }
            Ok(path.to_string())
        })
        .await
    }

    async fn import(
        &self,
        address: &str,
        request: &ImportRequest,
        mime: Bytes,
    ) -> Result<ImportOutcome, TargetError> {
        let one = [(request.clone(), mime)];
        self.with_mailbox(address, async |m| self.append_many(m, &one).await)
            .await?
            .pop()
            .expect("one outcome")
    }

    async fn import_many(
        &self,
        address: &str,
        requests: &[(ImportRequest, Bytes)],
    ) -> Vec<Result<ImportOutcome, TargetError>> {
        if requests.is_empty() {
            return Vec::new();
        }
        match self
            .with_mailbox(address, async |m| self.append_many(m, requests).await)
            .await
        {
            Ok(out) => out,
            Err(e) => requests.iter().map(|_| Err(e.clone())).collect(),
        }
    }

    async fn find_copies(
        &self,
        address: &str,
        folder: &str,
        probes: &[Probe],
    ) -> Result<Option<Vec<Vec<String>>>, TargetError> {
        if self.config.source_key_header {
            return Ok(None);
        }
        self.with_mailbox(address, async |m| {
            let wire = ImapTarget::wire_name(folder, m.delimiter, &m.special);
            let (found, validity) = matching(m, &wire, probes).await?;
            Ok(Some(
                found
                    .into_iter()
                    .map(|uids| {
                        uids.into_iter()
                            .map(|u| target_id(validity, u, &wire))
                            .collect()
                    })
                    .collect(),
            ))
        })
        .await
    }

    async fn source_keys(&self, address: &str) -> Result<Option<HashSet<String>>, TargetError> {
        if self.config.source_key_header {
            // Reading every folder's keys would cost a header fetch of every message each sync.
            return Ok(None);
        }
        self.with_mailbox(address, async |m| {
            let all = commands::list(&mut m.client, "*").await.map_err(io)?;
            refused("LIST \"\" \"*\"", all.done)?;
            let mut held = HashSet::new();
            for l in all.listed.iter().filter(|l| l.selectable) {
                let validity = select(m, &l.wire).await?.unwrap_or(0);
                let (uids, done) = commands::uid_search(&mut m.client, "ALL")
                    .await
                    .map_err(io)?;
                refused(&format!("UID SEARCH ALL in {}", l.wire), done)?;
                held.extend(uids.into_iter().map(|u| target_id(validity, u, &l.wire)));
            }
            Ok(Some(held))
        })
        .await
    }

    async fn update_flags(
        &self,
        address: &str,
        target_folder: &str,
        source_key: &str,
        flags: &ItemFlags,
    ) -> Result<FlagUpdate, TargetError> {
        if !self.config.source_key_header {
            // Without the header a source key names nothing here.
            return Ok(FlagUpdate::NotFound);
        }
        self.with_mailbox(address, async |m| {
            let wire = ImapTarget::wire_name(target_folder, m.delimiter, &m.special);
            let uid = keys(m, &wire).await?.get(source_key).copied();
            let Some(mut uid) = uid else {
                return Ok(FlagUpdate::NotFound);
            };
            if uid == 0 {
                // Appended in this session: learn its UID by reading the folder's keys again.
                m.keys.remove(&wire);
                uid = match keys(m, &wire).await?.get(source_key) {
                    Some(u) => *u,
                    None => return Ok(FlagUpdate::NotFound),
                };
            }
            store_flags(m, &wire, uid, flags).await
        })
        .await
    }

    async fn update_flags_of(
        &self,
        address: &str,
        target_folder: &str,
        item: &TargetItem,
        flags: &ItemFlags,
    ) -> Result<FlagUpdate, TargetError> {
        if self.config.source_key_header {
            return self
                .update_flags(address, target_folder, &item.source_key, flags)
                .await;
        }
        self.with_mailbox(address, async |m| {
            let wire = ImapTarget::wire_name(target_folder, m.delimiter, &m.special);
            let known = item
                .target_id
                .as_deref()
                .and_then(parse_target_id)
                .filter(|(_, _, w)| *w == wire);
            if let Some((validity, uid, _)) = known
                && select(m, &wire).await? == Some(validity)
            {
                return store_flags(m, &wire, uid, flags).await;
            }
            // No id (no UIDPLUS) or the folder was renumbered: found by size and headers.
            let (found, _) = matching(m, &wire, std::slice::from_ref(&item.probe)).await?;
            match found.first().and_then(|uids| uids.first()) {
                Some(uid) => store_flags(m, &wire, *uid, flags).await,
                None => Ok(FlagUpdate::NotFound),
            }
        })
        .await
    }
}

async fn store_flags(
    m: &mut Mailbox,
    wire: &str,
    uid: u32,
    flags: &ItemFlags,
) -> Result<FlagUpdate, TargetError> {
    select(m, wire).await?;
    let list = flags.to_imap().join(" ");
    let done = commands::uid_store_flags(&mut m.client, uid, &list)
        .await
        .map_err(io)?;
    refused(&format!("UID STORE in {wire}"), done)?;
    Ok(FlagUpdate::Updated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_templates() {
        let c = ImapTargetConfig {
            remote_server: "x".into(),
            port: 143,
            security: Security::None,
            ca_file: None,
            username_format: "{email}*mailadmin".into(),
            password: String::new(),
            source_key_header: false,
        };
        assert_eq!(
            c.login_for("terry@contoso.edu"),
            "terry@contoso.edu*mailadmin"
        );
        let c = ImapTargetConfig {
            username_format: "{domain}/admin/{local}".into(),
            ..c
        };
        assert_eq!(c.login_for("terry@contoso.edu"), "contoso.edu/admin/terry");
    }

    fn listed(wire: &str, special_use: &[&str]) -> Listed {
        Listed {
            wire: wire.into(),
            delimiter: Some('.'),
            selectable: true,
            special_use: special_use.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn wire_names() {
        let none = HashMap::new();
        assert_eq!(
            ImapTarget::wire_name("Inbox/Projects", '.', &none),
            "INBOX.Projects"
        );
        assert_eq!(
            ImapTarget::wire_name("Entwürfe", '/', &none),
            "Entw&APw-rfe"
        );
        assert_eq!(
            ImapTarget::wire_name("Sent Items/2019", '.', &none),
            "Sent Items.2019"
        );
        let special = special_folders(&[listed("INBOX.Sent", &[])], '.');
        assert_eq!(
            ImapTarget::wire_name("Sent Items/2019", '.', &special),
            "INBOX.Sent.2019"
        );
    }

    #[test]
    fn well_known_folders_land_in_the_target_s_own() {
        // SPECIAL-USE wins over a name; a usual name is taken without it; nothing is made up.
        let special = special_folders(
            &[
                listed("INBOX", &[]),
                listed("Sent Items", &[]),
                listed("Gesendet", &["\\sent"]),
                listed("Trash", &[]),
                listed("Junk", &[]),
            ],
            '.',
        );
        assert_eq!(
            special.get("sent items").map(String::as_str),
            Some("Gesendet")
        );
        assert_eq!(
            special.get("deleted items").map(String::as_str),
            Some("Trash")
        );
        assert_eq!(special.get("junk email").map(String::as_str), Some("Junk"));
        assert_eq!(special.get("drafts"), None);
        assert_eq!(special.get("archive"), None);
    }

    #[test]
    fn target_ids_round_trip_with_delimiters_in_the_folder() {
        let id = target_id(7, 42, "INBOX.a:b");
        assert_eq!(parse_target_id(&id), Some((7, 42, "INBOX.a:b")));
        assert_eq!(parse_target_id("u@x|INBOX|1|2"), None);
    }
}
