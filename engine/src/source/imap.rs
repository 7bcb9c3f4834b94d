//! An IMAP server as a [`MailSource`]: read-only (EXAMINE, BODY.PEEK), every listing and
//! fetch read to its tagged reply, Courier's UserRoot honoured. A reply that cannot be read
//! costs the message it was about; a connection that breaks on it is made again, and the folder
//! opened again, past it.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

use super::{
    Credential, FetchOutcome, FolderListing, FolderState, Folders, ItemMeta, MailSource,
    SourceError, SourceFolder, SourceItem,
};
use crate::imap::commands::{self, FetchAhead, Listed};
use crate::imap::{
    Client, ClientError, Done, ImapSettings, Limits, LoginError, SIGN_IN_FAILED, authzid_ignored,
    backoff_hint, connect_with, login,
};

/// A logged-in IMAP session of one user.
pub struct ImapSource {
    settings: ImapSettings,
    credential: Credential,
    limits: Limits,
    stop: Option<watch::Receiver<bool>>,
    /// None once the connection broke; the next command connects again.
    client: Option<Client>,
    /// Courier's UserRoot: only folders below it are the user's.
    user_root: Option<String>,
    /// Decoded name -> the name as the server sent it (what EXAMINE takes).
    wire: HashMap<String, String>,
    /// The folder open for fetching, and its UID validity then.
    open: Option<(SourceFolder, u32)>,
    /// Connections made so far: which one `examined` was seen on.
    session: u64,
    /// The folder the live connection has open (by its wire name), and the UIDVALIDITY its
    /// EXAMINE gave, with the connection it was given on.
    examined: Option<(u64, String, u32)>,
    /// LIST replies that could not be read, for the report.
    unreadable: Vec<String>,
    /// The UIDs the fetch after the next one will ask for ([`MailSource::ask_ahead`]), and
    /// its items.
    next: Vec<u32>,
    next_items: &'static str,
    /// The fetch sent ahead, its reply not yet (or not all) read.
    ahead: Option<FetchAhead>,
    /// The server offers CONDSTORE: EXAMINE tells each folder's HIGHESTMODSEQ.
    condstore: bool,
}

/// What EXAMINE told of a folder.
struct Examined {
    uid_validity: u32,
    exists: u32,
    /// With CONDSTORE (and a folder that keeps MODSEQs), its state.
    state: Option<FolderState>,
}

/// What the source's fetches ask for.
const FETCH_ITEMS: &str = "(UID FLAGS INTERNALDATE BODY.PEEK[])";

/// What they ask for when the listing gave every message's flags and internal date: the
/// bodies alone (the server reads and sends less, and each reply decodes faster).
const BODY_ITEMS: &str = "(UID BODY.PEEK[])";

/// The items a fetch of these messages asks for.
fn fetch_items(items: &[ItemMeta]) -> &'static str {
    match items.iter().all(|m| m.date.is_some()) {
        true => BODY_ITEMS,
        false => FETCH_ITEMS,
    }
}

/// A reply to [`BODY_ITEMS`] made whole: each message's flags and date as listed.
fn as_listed(reply: &mut commands::FetchReply, items: &[ItemMeta]) {
    let listed: HashMap<u32, &ItemMeta> = items.iter().map(|m| (m.uid, m)).collect();
    for f in &mut reply.fetched {
        if let Some(m) = f.uid.and_then(|u| listed.get(&u)) {
            f.flags = m.flags.clone();
            f.date = m.date;
        }
    }
}

/// A reply that means "wait": a throttling NO; else a passing fault.
fn no_reply(what: &str, text: String) -> SourceError {
    match backoff_hint(&text) {
        Some(wait) => SourceError::Throttled {
            wait,
            message: text,
        },
        None => SourceError::Transient(format!("{what}: {text}")),
    }
}

fn lost(e: ClientError) -> SourceError {
    match e {
        ClientError::Stopped => SourceError::Stopped,
        e => SourceError::Transient(e.to_string()),
    }
}

/// A UID set with runs written as ranges (`1:1024,1100`): a chunk of consecutive UIDs is
/// one short command, not kilobytes of numbers for the server to parse. Each run holds every
/// UID between its ends, so the range names exactly the UIDs given.
fn uid_set(uids: &[u32]) -> String {
    let mut set = String::new();
    let mut i = 0;
    while i < uids.len() {
        let mut j = i;
        while j + 1 < uids.len() && uids[j].checked_add(1) == Some(uids[j + 1]) {
            j += 1;
        }
        if !set.is_empty() {
            set.push(',');
        }
        if j > i {
            set.push_str(&format!("{}:{}", uids[i], uids[j]));
        } else {
            set.push_str(&uids[i].to_string());
        }
        i = j + 1;
    }
    set
}

/// A folder name as people read it: modified UTF-7 decoded; a name that is not valid modified
/// UTF-7 (an unencoded `&`, as in `AT&T`) is taken as it was sent.
fn display_name(wire: &str) -> (String, bool) {
    match mutf7::decode(wire) {
        Ok(name) => (name, true),
        Err(_) => (wire.to_string(), false),
    }
}

impl ImapSource {
    /// Connects per the settings and logs in with the CSV row's credential.
    pub async fn login(
        settings: &ImapSettings,
        credential: &Credential,
        timeout: Duration,
        stop: Option<watch::Receiver<bool>>,
    ) -> Result<Self, SourceError> {
        let limits = Limits {
            idle: timeout,
            command: timeout,
            ..Limits::default()
        };
        let mut source = Self {
            settings: settings.clone(),
            credential: credential.clone(),
            limits,
            stop,
            client: None,
            user_root: credential.user_root.clone(),
            wire: HashMap::new(),
            open: None,
            session: 0,
            examined: None,
            unreadable: Vec::new(),
            next: Vec::new(),
            next_items: FETCH_ITEMS,
            ahead: None,
            condstore: false,
        };
        let (mut client, announced) = source.connect().await?;
        // What the server offers once logged in (CONDSTORE lets an unchanged folder go
        // unlisted): as its login's answer said, else asked; one that will not say offers
        // nothing more.
        let caps = match announced {
            Some(caps) => caps,
            None => match commands::capability(&mut client).await {
                Ok((caps, done)) if done.is_ok() => caps,
                Ok(_) => Vec::new(),
                Err(e) => return Err(lost(e)),
            },
        };
        source.condstore = caps.iter().any(|c| c.eq_ignore_ascii_case("CONDSTORE"));
        source.client = Some(client);
        Ok(source)
    }

    /// A new logged-in connection, and the capabilities its login's answer announced.
    async fn connect(&self) -> Result<(Client, Option<Vec<String>>), SourceError> {
        let timeout = self.limits.command;
        let connected = connect_with(&self.settings, timeout, self.limits)
            .await
            .map_err(|e| SourceError::Transient(e.to_string()))?;
        let user_name = &self.credential.user_name;
        if let Some(why) = authzid_ignored(&connected.greeting, &self.settings, user_name) {
            return Err(SourceError::Permanent(why));
        }
        let mut client = connected.client;
        if let Some(stop) = &self.stop {
            client.set_stop(stop.clone());
        }
        match login(
            &mut client,
            &self.settings,
            user_name,
            &self.credential.password,
        )
        .await
        {
            Ok(caps) => Ok((client, caps)),
            Err(LoginError::Throttled { wait, text }) => Err(SourceError::Throttled {
                wait,
                message: text,
            }),
            Err(LoginError::Refused(_)) => {
                Err(SourceError::Authentication(SIGN_IN_FAILED.to_string()))
            }
            Err(LoginError::Connection(e)) => Err(lost(e)),
        }
    }

    /// The live client, connecting again (and opening the fetch folder again) after a break.
    async fn client(&mut self) -> Result<&mut Client, SourceError> {
        if let Some(ahead) = self.ahead.take()
            && let Some(c) = self.client.as_mut()
            && ahead.drop_on(c).await.is_err()
        {
            // Another command overtakes a fetch sent ahead: its reply is read and dropped
            // (the fetch is sent again when wanted), so what comes next is the new command's.
            self.client = None;
        }
        if self.client.is_none() {
            let (mut client, _) = self.connect().await?;
            self.session += 1;
            self.examined = None;
            if let Some((folder, validity)) = self.open.clone() {
                let wire = self.wire_name(&folder);
                let now = examine_on(&mut client, &wire, &folder.relative, self.condstore)
                    .await
                    .map_err(|e| e.unwrap_or_else(lost))?
                    .uid_validity;
                self.examined = Some((self.session, wire, now));
                if now != validity {
                    return Err(SourceError::Transient(format!(
                        "{}: UIDVALIDITY changed from {validity} to {now} during the sync",
                        folder.relative
                    )));
                }
            }
            self.client = Some(client);
        }
        Ok(self.client.as_mut().expect("connected"))
    }

    /// Runs a step, dropping the connection when it broke.
    fn settle<T>(&mut self, r: Result<T, ClientError>) -> Result<T, SourceError> {
        r.map_err(|e| {
            self.client = None;
            lost(e)
        })
    }

    fn wire_name(&self, folder: &SourceFolder) -> String {
        self.wire
            .get(&folder.name)
            .cloned()
            .unwrap_or_else(|| mutf7::encode(&folder.name))
    }

    async fn list(&mut self, pattern: &str) -> Result<Vec<Listed>, SourceError> {
        let r = commands::list(self.client().await?, pattern).await;
        let reply = self.settle(r)?;
        if let Done::No(text) = reply.done {
            return Err(no_reply(&format!("LIST {pattern}"), text));
        }
        for line in &reply.unreadable {
            tracing::warn!(reply = %line, "a LIST reply could not be read");
        }
        // A folder the client cannot name is reported, not lost without a word.
        self.unreadable.extend(reply.unreadable);
        Ok(reply.listed)
    }

    /// Names as the user sees them; a name that is not valid modified UTF-7 is kept as sent
    /// and reported.
    fn named(&mut self, listed: Vec<Listed>) -> Vec<(String, Listed)> {
        listed
            .into_iter()
            .map(|l| {
                let (name, valid) = display_name(&l.wire);
                if !valid {
                    tracing::warn!(folder = %l.wire, "a folder name is not valid modified UTF-7; it is read as sent");
                }
                self.wire.insert(name.clone(), l.wire.clone());
                (name, l)
            })
            .collect()
    }

    /// The folders under a UserRoot, listed by pattern (a server such as Courier shows shared
    /// folders only to a pattern that names them, never under `*`). When the root itself is a
    /// selectable mailbox it is the user's INBOX (Courier's `#shared.<user>`), and what is
    /// below it stays below the INBOX, as the user sees it; a root that is only a container
    /// (`/users/<name>`) holds the user's top-level folders.
    async fn folders_under(&mut self, root: &str) -> Result<Vec<SourceFolder>, SourceError> {
        let pattern = format!("{}*", mutf7::encode(root));
        let listed = self.list(&pattern).await?;
        let decoded = self.named(listed);
        let root_is_inbox = decoded.iter().any(|(name, l)| {
            l.selectable && name == root.trim_end_matches(l.delimiter.unwrap_or('/'))
        });
        let mut out = Vec::new();
        for (name, l) in decoded {
            let d = l.delimiter.unwrap_or('/');
            let base = root.trim_end_matches(d);
            let relative = if name == base {
                if !root_is_inbox {
                    continue;
                }
                "INBOX".to_string()
            } else {
                match name.strip_prefix(&format!("{base}{d}")) {
                    Some(rest) if root_is_inbox => format!("INBOX{d}{rest}"),
                    Some(rest) => rest.to_string(),
                    // A sibling that only starts like the root (`#shared.alicea`).
                    None => continue,
                }
            };
            out.push(SourceFolder {
                selectable: l.selectable,
                content: Default::default(),
                name,
                relative,
                delimiter: l.delimiter,
            });
        }
        Ok(out)
    }

    /// EXAMINE (read-only).
    async fn examine(&mut self, folder: &SourceFolder) -> Result<Examined, SourceError> {
        let wire = self.wire_name(folder);
        let condstore = self.condstore;
        let r = examine_on(self.client().await?, &wire, &folder.relative, condstore).await;
        // A refused EXAMINE leaves no folder open.
        self.examined = match &r {
            Ok(e) => Some((self.session, wire, e.uid_validity)),
            Err(_) => None,
        };
        r.map_err(|e| match e {
            Ok(e) => e,
            Err(lost_connection) => {
                self.client = None;
                lost(lost_connection)
            }
        })
    }

    /// A UID FETCH whose connection must hold to the end (listings, probes).
    async fn uid_fetch(
        &mut self,
        set: &str,
        items: &str,
    ) -> Result<commands::FetchReply, SourceError> {
        let mut reply = commands::uid_fetch(self.client().await?, set, items).await;
        match reply.broke.take() {
            Some(e) => self.settle(Err(e)),
            None => Ok(reply),
        }
    }
}

/// The outcomes of a fetch whose connection broke: what arrived, what was damaged (the message
/// named by an oversized reply, or the only one asked for), and the rest to ask again.
/// A fetched message as an item (only fetches with a body are kept).
fn item(uid: u32, f: commands::Fetched) -> FetchOutcome {
    FetchOutcome::Item(SourceItem {
        uid,
        flags: f.flags,
        date: f.date,
        raw: f.body.expect("kept only with a body"),
    })
}

fn broken_fetch(uids: &[u32], reply: commands::FetchReply, e: ClientError) -> Vec<FetchOutcome> {
    let mut got: HashMap<u32, commands::Fetched> = HashMap::new();
    for f in reply.fetched {
        if let (Some(uid), Some(_)) = (f.uid, &f.body) {
            got.insert(uid, f);
        }
    }
    let mut damaged: HashMap<u32, String> = reply
        .damaged
        .iter()
        .filter_map(|d| {
            Some((
                d.uid?,
                format!("the server's reply cannot be read: {}", d.reply),
            ))
        })
        .collect();
    if let ClientError::TooBig { uid: Some(uid), .. } = &e {
        damaged.insert(*uid, e.to_string());
    }
    let alone = uids.len() == 1;
    uids.iter()
        .map(|&uid| match got.remove(&uid) {
            Some(f) => item(uid, f),
            None => match damaged.remove(&uid) {
                Some(why) => FetchOutcome::Damaged(uid, why),
                None if alone => FetchOutcome::Damaged(
                    uid,
                    format!("the connection broke while it was fetched ({e})"),
                ),
                None => FetchOutcome::Retry(uid),
            },
        })
        .collect()
}

/// EXAMINE on a client, with Courier's STATUS fallback for UIDVALIDITY. The error is the
/// server's refusal (`Ok`) or a broken connection (`Err`).
async fn examine_on(
    client: &mut Client,
    wire: &str,
    shown: &str,
    condstore: bool,
) -> Result<Examined, Result<SourceError, ClientError>> {
    let (opened, done) = commands::examine(client, wire, condstore)
        .await
        .map_err(Err)?;
    if let Done::No(text) = done {
        return Err(Ok(no_reply(&format!("EXAMINE {shown}"), text)));
    }
    let uid_validity = match opened.uid_validity {
        Some(v) => v,
        None => {
            // Courier gives UIDVALIDITY only on SELECT; STATUS tells without selecting.
            let (v, done) = commands::status_uid_validity(client, wire)
                .await
                .map_err(Err)?;
            if let Done::No(text) = done {
                return Err(Ok(no_reply(&format!("STATUS {shown}"), text)));
            }
            v.unwrap_or(0)
        }
    };
    let state = match (opened.uid_next, opened.highest_modseq) {
        (Some(uid_next), Some(highest_modseq)) => Some(FolderState {
            uid_validity,
            uid_next,
            exists: opened.exists,
            highest_modseq,
        }),
        _ => None,
    };
    Ok(Examined {
        uid_validity,
        exists: opened.exists,
        state,
    })
}

#[async_trait]
impl MailSource for ImapSource {
    async fn folders(&mut self) -> Result<Folders, SourceError> {
        self.unreadable.clear();
        let out = match self.user_root.clone().filter(|r| !r.is_empty()) {
            Some(root) => self.folders_under(&root).await?,
            None => {
                let listed = self.list("*").await?;
                self.named(listed)
                    .into_iter()
                    .map(|(name, l)| SourceFolder {
                        selectable: l.selectable,
                        content: Default::default(),
                        relative: name.clone(),
                        name,
                        delimiter: l.delimiter,
                    })
                    .collect()
            }
        };
        // Every mailbox has an INBOX; a listing without one is the wrong mailbox (an admin
        // form the server read differently), not an empty one.
        if !out.iter().any(|f| f.relative.eq_ignore_ascii_case("INBOX")) {
            return Err(SourceError::Permanent(match &self.user_root {
                Some(root) if !root.is_empty() => format!(
                    "The UserRoot \"{root}\" matches no mailbox with an INBOX on the server \
                     ({} folders found under it). Check the CSV's UserRoot (on Courier, a user's \
                     folders are #shared.<user>).",
                    out.len()
                ),
                _ => "The server listed no INBOX for this user: the login does not reach the \
                      user's mailbox. Check the UserName's admin form."
                    .to_string(),
            }));
        }
        Ok(Folders {
            folders: out,
            unreadable: std::mem::take(&mut self.unreadable),
        })
    }

    async fn list(
        &mut self,
        folder: &SourceFolder,
        seen: Option<FolderState>,
    ) -> Result<FolderListing, SourceError> {
        self.open = None;
        let Examined {
            uid_validity,
            exists,
            state,
        } = self.examine(folder).await?;
        if state.is_some() && state == seen {
            return Ok(FolderListing {
                uid_validity,
                items: Vec::new(),
                state,
                unchanged: true,
            });
        }
        if exists == 0 {
            return Ok(FolderListing {
                uid_validity,
                items: Vec::new(),
                state,
                unchanged: false,
            });
        }
        let reply = self
            .uid_fetch("1:*", "(UID FLAGS RFC822.SIZE INTERNALDATE)")
            .await?;
        if let Some(Done::No(why)) = reply.done {
            // The listing must be whole, or messages would silently wait for another sync.
            return Err(no_reply(
                &format!("{}: listing refused", folder.relative),
                why,
            ));
        }
        // A listing reply that cannot be read but names its message lists that message (it is
        // fetched, and costs itself if it cannot be read then either); one that names none
        // leaves the listing incomplete.
        if let Some(d) = reply.damaged.iter().find(|d| d.uid.is_none()) {
            return Err(SourceError::Transient(format!(
                "{}: the listing has a reply that cannot be read: {}",
                folder.relative, d.reply
            )));
        }
        let mut items: Vec<ItemMeta> = reply
            .fetched
            .into_iter()
            .filter_map(|f| {
                Some(ItemMeta {
                    uid: f.uid?,
                    size: u64::from(f.size.unwrap_or(0)),
                    flags: f.flags,
                    date: f.date,
                })
            })
            .collect();
        for d in &reply.damaged {
            tracing::warn!(folder = %folder.relative, reply = %d.reply, "a listing reply cannot be read");
            items.extend(d.uid.map(|uid| ItemMeta {
                uid,
                size: 0,
                flags: Vec::new(),
                date: None,
            }));
        }
        Ok(FolderListing {
            uid_validity,
            items,
            state,
            unchanged: false,
        })
    }

    async fn open(&mut self, folder: &SourceFolder) -> Result<u32, SourceError> {
        let wire = self.wire_name(folder);
        // Open since its listing, on this connection: its UIDVALIDITY then still holds (a
        // server that changed it would have to end the session), so no second EXAMINE.
        let validity = match &self.examined {
            Some((session, open, validity))
                if *session == self.session && *open == wire && self.client.is_some() =>
            {
                *validity
            }
            _ => self.examine(folder).await?.uid_validity,
        };
        self.open = Some((folder.clone(), validity));
        Ok(validity)
    }

    fn ask_ahead(&mut self, items: &[ItemMeta]) {
        self.next = items.iter().map(|m| m.uid).collect();
        self.next_items = fetch_items(items);
    }

    async fn fetch(&mut self, items: &[ItemMeta]) -> Result<Vec<FetchOutcome>, SourceError> {
        let uids: Vec<u32> = items.iter().map(|m| m.uid).collect();
        let uids = uids.as_slice();
        let set = uid_set(uids);
        let what = fetch_items(items);
        let next = std::mem::take(&mut self.next);
        let next_set = uid_set(&next);
        let then =
            (!next.is_empty()).then_some((next_set.as_str(), self.next_items, next.as_slice()));
        let asked = self.ahead.take_if(|a| a.is_for(uids));
        let c = self.client().await?;
        let (mut reply, ahead) = commands::uid_fetch_then(c, asked, &set, what, then).await;
        self.ahead = ahead;
        if what == BODY_ITEMS {
            as_listed(&mut reply, items);
        }
        if let Some(e) = reply.broke.take() {
            // The connection broke during the fetch: what came is kept, the message that broke
            // it is damaged, the others (and those asked for ahead) are asked for again on a
            // new connection.
            self.client = None;
            self.ahead = None;
            if matches!(e, ClientError::Stopped) {
                return Err(SourceError::Stopped);
            }
            return Ok(broken_fetch(uids, reply, e));
        }
        if let Some(Done::No(text)) = &reply.done
            && let Some(wait) = backoff_hint(text)
        {
            return Err(SourceError::Throttled {
                wait,
                message: text.clone(),
            });
        }
        let mut got: HashMap<u32, commands::Fetched> = HashMap::new();
        for f in reply.fetched {
            if let (Some(uid), Some(_)) = (f.uid, &f.body) {
                got.insert(uid, f);
            }
        }
        let damaged: HashMap<u32, String> = reply
            .damaged
            .iter()
            .filter_map(|d| Some((d.uid?, d.reply.clone())))
            .collect();
        // Messages the fetch did not return: still there (refused) or expunged meanwhile
        // (vanished). One UID FETCH of the missing tells which.
        let missing: Vec<u32> = uids
            .iter()
            .copied()
            .filter(|u| !got.contains_key(u) && !damaged.contains_key(u))
            .collect();
        let still_there: HashSet<u32> = if missing.is_empty() {
            HashSet::new()
        } else {
            let present = self.uid_fetch(&uid_set(&missing), "(UID)").await?;
            present.fetched.iter().filter_map(|f| f.uid).collect()
        };
        if matches!(reply.done, Some(Done::No(_))) {
            tracing::debug!(refused = ?reply.done, missing = missing.len(), "FETCH partly refused");
        }
        Ok(uids
            .iter()
            .map(|&uid| match got.remove(&uid) {
                Some(f) => item(uid, f),
                None => match damaged.get(&uid) {
                    Some(reply) => FetchOutcome::Damaged(
                        uid,
                        format!("the server's reply cannot be read: {reply}"),
                    ),
                    None if still_there.contains(&uid) => FetchOutcome::Refused(uid),
                    None => FetchOutcome::Vanished(uid),
                },
            })
            .collect())
    }

    async fn close(&mut self) {
        if let Some(c) = self.client.as_mut() {
            commands::logout(c).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::uid_set;

    #[test]
    fn runs_of_uids_are_sent_as_ranges() {
        assert_eq!(uid_set(&[1, 2, 3, 4]), "1:4");
        assert_eq!(uid_set(&[1, 3, 4, 5, 9, 10, 12]), "1,3:5,9:10,12");
        assert_eq!(uid_set(&[7]), "7");
        // Out of order (a retried message after the rest): as given, never merged across.
        assert_eq!(uid_set(&[5, 6, 2, 3]), "5:6,2:3");
        assert_eq!(uid_set(&[u32::MAX - 1, u32::MAX]), "4294967294:4294967295");
    }
}
