//! One client session: the RFC 3501 state machine, command dispatch, and the fault hooks that
//! run around every command. Command bodies live in `cmd/`.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use imap_codec::imap_types::command::{
    Command, CommandBody, FetchModifier, SelectParameter, StoreModifier,
};
use imap_codec::imap_types::core::{Tag, Text};
use imap_codec::imap_types::flag::Flag;
use imap_codec::imap_types::mailbox::Mailbox;
use imap_codec::imap_types::response::{Bye, Code, CodeOther, Data, Response, Status};
use imap_codec::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::sync::watch;

use crate::admin::{Login, View};
use crate::cmd;
use crate::connection::{Announcement, Connection, Incoming, LiteralDecision};
use crate::extended::Extra;
use crate::faults::{Context, Fault, FaultAction};
use crate::generate::derive_seed;
use crate::server::Shared;
use crate::store::canonical;

/// RFC 3501 §3 connection states.
#[derive(Debug)]
pub enum State {
    NotAuthenticated,
    Authenticated,
    Selected(Box<Selected>),
    Logout,
}

/// The session's picture of the selected folder. Sequence numbers are positions in `uids`,
/// which changes only when the session is told (EXISTS / EXPUNGE), as RFC 3501 requires.
#[derive(Debug)]
pub struct Selected {
    /// Mailbox owner and real folder name in the store.
    pub user: String,
    pub folder: String,
    /// The name the client used (for fault matching).
    pub visible: String,
    pub read_only: bool,
    pub uid_validity: u32,
    pub uids: Vec<u32>,
    /// Messages that are \Recent in this session (it was the first to see them).
    pub recent: HashSet<u32>,
    /// The folder's HIGHESTMODSEQ when this session last caught up with it.
    pub known_modseq: u64,
    /// EXPUNGEs held back (RFC 3501 §7.4.1 forbids them during FETCH, STORE, SEARCH).
    pub pending_expunge: bool,
    /// Keywords the session was told of in FLAGS / PERMANENTFLAGS.
    pub keywords: BTreeSet<String>,
    /// MODSEQs of this session's own flag changes, which it already reported (or was asked
    /// not to, with .SILENT): not to be reported again as news.
    pub own: HashMap<u32, u64>,
}

impl Selected {
    pub fn new(user: String, folder: String, visible: String, read_only: bool) -> Self {
        Self {
            user,
            folder,
            visible,
            read_only,
            uid_validity: 0,
            uids: Vec::new(),
            recent: HashSet::new(),
            known_modseq: 0,
            pending_expunge: false,
            keywords: BTreeSet::new(),
            own: HashMap::new(),
        }
    }
}

/// How a command ended: the tagged reply, or the connection is gone.
pub enum Done {
    Ok(Option<Code<'static>>, String),
    No(Option<Code<'static>>, String),
    Bad(String),
    /// The command closed the connection (a fault, or the peer went away).
    Closed,
    /// The tagged reply was already sent (STARTTLS answers before the handshake).
    Answered,
}

impl Done {
    pub fn ok(text: impl Into<String>) -> Self {
        Done::Ok(None, text.into())
    }
    pub fn no(text: impl Into<String>) -> Self {
        Done::No(None, text.into())
    }
}

/// A response code built at run time (`APPENDUID 12 3:5`).
pub fn other_code_owned(code: String) -> Code<'static> {
    Code::Other(CodeOther::unvalidated(code.into_bytes()))
}

/// A response code the imap-types enum does not name (AUTHENTICATIONFAILED, THROTTLED, ...).
pub fn other_code(code: &'static str) -> Code<'static> {
    Code::Other(CodeOther::unvalidated(code.as_bytes()))
}

pub struct Session {
    pub(crate) shared: Arc<Shared>,
    pub state: State,
    pub login: Option<Login>,
    pub tls: bool,
    /// Commands received so far in this session (for `after_commands` triggers).
    pub commands: u32,
    errors: u32,
    pub rng: ChaCha8Rng,
    /// Set by the `login-then-fail` fault: every later command fails.
    pub broken: bool,
    /// Faults firing for the command being run.
    pub firing: Vec<Fault>,
    /// CONDSTORE is on (ENABLE, SELECT (CONDSTORE), or a command that uses it): FETCH
    /// responses carry MODSEQ.
    pub condstore: bool,
    /// Extensions the client turned on with ENABLE.
    pub enabled: BTreeSet<String>,
}

impl Session {
    pub(crate) fn new(shared: Arc<Shared>, tls: bool, number: u64) -> Self {
        let seed = derive_seed(shared.seed, &["session", &number.to_string()]);
        Self {
            shared,
            state: State::NotAuthenticated,
            login: None,
            tls,
            commands: 0,
            errors: 0,
            rng: ChaCha8Rng::seed_from_u64(seed),
            broken: false,
            firing: Vec::new(),
            condstore: false,
            enabled: BTreeSet::new(),
        }
    }

    pub fn owner(&self) -> Option<&str> {
        self.login.as_ref().map(|l| l.view.owner())
    }

    pub fn delimiter(&self) -> char {
        self.shared.store.delimiter()
    }

    pub fn fault(&self, action: FaultAction) -> Option<&Fault> {
        self.firing.iter().find(|f| f.action == action)
    }

    pub(crate) async fn run(
        mut self,
        mut conn: Connection,
        mut shutdown: watch::Receiver<bool>,
    ) -> io::Result<()> {
        cmd::any::greet(&mut self, &mut conn).await?;
        let idle = self
            .shared
            .quirks
            .idle_timeout_ms
            .map(Duration::from_millis);
        // A command read ahead (to see whether a FETCH was pipelined behind a FETCH).
        let mut pending: Option<Incoming> = None;
        loop {
            let ahead = pending.take();
            let read = async {
                if let Some(incoming) = ahead {
                    return Ok(incoming);
                }
                let decide = |a: &Announcement| self.decide_literal(a);
                match idle {
                    Some(limit) => tokio::time::timeout(limit, conn.read_command(decide))
                        .await
                        .unwrap_or(Ok(Incoming::Closed)),
                    None => conn.read_command(decide).await,
                }
            };
            let incoming = tokio::select! {
                _ = shutdown.changed() => {
                    bye(&mut conn, "Server shutting down").await?;
                    return Ok(());
                }
                incoming = read => incoming?,
            };
            let done = match incoming {
                Incoming::Closed => {
                    // An idle timeout lands here too: say BYE if the peer still listens.
                    let _ = bye(&mut conn, "Autologout; idle for too long").await;
                    return Ok(());
                }
                Incoming::Refused => {
                    self.errors += 1;
                    if self.bye_after_errors(&mut conn).await? {
                        return Ok(());
                    }
                    continue;
                }
                Incoming::Malformed { tag } => (tag, Done::Bad("Error in IMAP command".into())),
                Incoming::Bad { tag, text } => (tag, Done::Bad(text)),
                Incoming::No { tag, text } => (tag, Done::no(text)),
                Incoming::TooBig { tag } => (
                    tag,
                    Done::No(
                        Some(Code::TooBig),
                        "Literal exceeds the server's limit".into(),
                    ),
                ),
                Incoming::Command(command, extra) => {
                    let tag = command.tag.clone();
                    if self.shared.quirks.concurrent_fetches && is_fetch(&command) {
                        match self.fetches_at_once(&mut conn, command, extra).await? {
                            Ok(next) => {
                                pending = next;
                                continue;
                            }
                            Err(false) => return Ok(()),
                            Err(true) => continue,
                        }
                    }
                    let done = self.dispatch(&mut conn, command, extra).await?;
                    if !matches!(self.state, State::NotAuthenticated) {
                        conn.preauth_limit = None;
                    }
                    (Some(tag), done)
                }
            };
            let (tag, done) = done;
            if !self.finish(&mut conn, tag, done).await? {
                return Ok(());
            }
            if matches!(self.state, State::Logout) {
                return Ok(());
            }
        }
    }

    /// Dovecot runs a UID FETCH pipelined behind another at once: their untagged replies
    /// interleave and the later one may complete first. A FETCH followed (within a few
    /// milliseconds, as a pipelining client sends it) by another is answered so; anything
    /// else that follows is handed back to be run next. `Err(open)`: both ran (`open`: the
    /// connection goes on). Both replies are held in memory: a quirk for tests.
    async fn fetches_at_once(
        &mut self,
        conn: &mut Connection,
        first: Command<'static>,
        extra: Option<Extra>,
    ) -> io::Result<Result<Option<Incoming>, bool>> {
        let next = {
            let decide = |a: &Announcement| self.decide_literal(a);
            tokio::time::timeout(Duration::from_millis(5), conn.read_command(decide)).await
        };
        let second = match next {
            Ok(Ok(Incoming::Command(c, e))) if is_fetch(&c) => (c, e),
            Ok(other) => {
                let (tag, done) = (first.tag.clone(), self.dispatch(conn, first, extra).await?);
                if !self.finish(conn, Some(tag), done).await? {
                    return Ok(Err(false));
                }
                return Ok(Ok(Some(other?)));
            }
            Err(_) => {
                let (tag, done) = (first.tag.clone(), self.dispatch(conn, first, extra).await?);
                return Ok(Err(self.finish(conn, Some(tag), done).await?));
            }
        };
        let mut replies = Vec::new();
        let mut open = true;
        for (command, extra) in [(first, extra), second] {
            conn.capture();
            let tag = command.tag.clone();
            let done = self.dispatch(conn, command, extra).await?;
            open &= self.finish(conn, Some(tag), done).await?;
            replies.push(conn.captured());
        }
        let [mut a, mut b]: [Vec<Vec<u8>>; 2] = replies.try_into().expect("two commands");
        // Each capture ends with its command's tagged reply: the later command's goes first.
        let (a_done, b_done) = (a.pop(), b.pop());
        let mut out = Vec::with_capacity(a.len() + b.len() + 2);
        let (mut a, mut b) = (a.into_iter(), b.into_iter());
        loop {
            match (a.next(), b.next()) {
                (None, None) => break,
                (x, y) => out.extend(x.into_iter().chain(y)),
            }
        }
        out.extend(b_done.into_iter().chain(a_done));
        conn.send_captured(&out).await?;
        conn.flush().await?;
        Ok(Err(open))
    }

    /// Sends the tagged reply. Returns false when the connection is over.
    async fn finish(
        &mut self,
        conn: &mut Connection,
        tag: Option<Tag<'static>>,
        done: Done,
    ) -> io::Result<bool> {
        let status = match done {
            Done::Closed => return Ok(false),
            Done::Answered => return Ok(true),
            Done::Ok(code, text) => Status::ok(tag, code, ascii(text)),
            Done::No(code, text) => {
                self.errors += 1;
                Status::no(tag, code, ascii(text))
            }
            Done::Bad(text) => {
                self.errors += 1;
                Status::bad(tag, None, ascii(text))
            }
        };
        let status = status.unwrap_or_else(|_| {
            // Texts can carry client-supplied names; never let one break the reply.
            Status::bad(None, None, "Reply text was not valid IMAP text").expect("valid")
        });
        conn.send(&Response::Status(status)).await?;
        conn.flush().await?;
        Ok(!self.bye_after_errors(conn).await?)
    }

    async fn bye_after_errors(&mut self, conn: &mut Connection) -> io::Result<bool> {
        match self.shared.quirks.bye_after_errors {
            Some(limit) if self.errors >= limit => {
                bye(conn, "Connection closed").await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn decide_literal(&mut self, a: &Announcement) -> LiteralDecision {
        if a.command == "APPEND" {
            if let Some(limit) = self.shared.quirks.max_append_size
                && u64::from(a.length) > limit
            {
                return LiteralDecision::Refuse(cmd::append::too_big_reply(
                    &self.shared.quirks,
                    a.tag.clone(),
                ));
            }
            let owner = self.owner().map(str::to_string);
            let ctx = Context {
                user: owner.as_deref(),
                folder: None,
                command: "APPEND",
                command_number: self.commands + 1,
            };
            let fire = self.shared.faults.firing(&ctx, &mut self.rng);
            if fire.iter().any(|f| f.action == FaultAction::DropMidLiteral) {
                return LiteralDecision::DropHalfway;
            }
        }
        LiteralDecision::Accept
    }

    async fn dispatch(
        &mut self,
        conn: &mut Connection,
        command: Command<'static>,
        extra: Option<Extra>,
    ) -> io::Result<Done> {
        self.commands += 1;
        let name = command_label(&command.body);
        let folder = self.fault_folder(&command.body);
        let owner = self.owner().map(str::to_string);
        let ctx = Context {
            user: owner.as_deref(),
            folder: folder.as_deref(),
            command: &name,
            command_number: self.commands,
        };
        self.firing = self.shared.faults.firing(&ctx, &mut self.rng);
        conn.response_delay = self
            .fault(FaultAction::Delay)
            .and_then(|f| f.ms)
            .map(Duration::from_millis);

        if let Some(done) = self
            .pre_command_faults(conn, &command.tag, &command.body)
            .await?
        {
            return Ok(done);
        }

        let tag = command.tag;
        let body = command.body;
        use CommandBody as C;
        // Commands valid in any state first, then per state (RFC 3501 §6).
        let done = match body {
            C::Capability => cmd::any::capability(self, conn).await?,
            C::Noop => cmd::any::noop(self, conn).await?,
            C::Logout => cmd::any::logout(self, conn).await?,
            C::Id { .. } => cmd::any::id(conn).await?,
            C::StartTLS => return cmd::auth::starttls(self, conn, tag).await,
            C::Login { username, password } => {
                cmd::auth::login(self, username, password.declassify().clone()).await
            }
            C::Authenticate {
                mechanism,
                initial_response,
            } => {
                cmd::auth::authenticate(
                    self,
                    conn,
                    mechanism,
                    initial_response.map(|s| s.declassify().to_vec()),
                )
                .await?
            }
            _ if matches!(self.state, State::NotAuthenticated) => {
                Done::Bad("Command not valid before login".into())
            }
            _ if self.broken => Done::no("User is authenticated but not connected."),
            C::Namespace => cmd::mailbox::namespace(self, conn).await?,
            C::Enable { capabilities } => {
                cmd::extensions::enable(self, conn, &capabilities).await?
            }
            C::Idle => cmd::extensions::idle(self, conn).await?,
            C::List { .. } if matches!(extra, Some(Extra::List(_))) => {
                let Some(Extra::List(args)) = extra else {
                    unreachable!("matched above")
                };
                cmd::mailbox::list_extended(self, conn, &args).await?
            }
            C::List {
                reference,
                mailbox_wildcard,
            } => cmd::mailbox::list(self, conn, &reference, &mailbox_wildcard, false).await?,
            C::Lsub {
                reference,
                mailbox_wildcard,
            } => cmd::mailbox::list(self, conn, &reference, &mailbox_wildcard, true).await?,
            C::Status {
                mailbox,
                item_names,
            } => cmd::mailbox::status(self, conn, &mailbox, &item_names).await?,
            C::Select {
                mailbox,
                parameters,
            } => self.select(conn, &mailbox, &parameters, false).await?,
            C::Examine {
                mailbox,
                parameters,
            } => self.select(conn, &mailbox, &parameters, true).await?,
            C::Create { mailbox } => cmd::mailbox::create(self, &mailbox),
            C::Delete { mailbox } => cmd::mailbox::delete(self, &mailbox),
            C::Rename { from, to } => cmd::mailbox::rename(self, &from, &to),
            C::Subscribe { mailbox } => cmd::mailbox::subscribe(self, &mailbox, true),
            C::Unsubscribe { mailbox } => cmd::mailbox::subscribe(self, &mailbox, false),
            C::Append { .. } if matches!(extra, Some(Extra::MultiAppend(_))) => {
                let Some(Extra::MultiAppend(all)) = extra else {
                    unreachable!("matched above")
                };
                cmd::extensions::multiappend(self, all)
            }
            C::Append {
                mailbox,
                flags,
                date,
                message,
            } => cmd::append::append(self, &mailbox, &flags, date, message),
            _ if !matches!(self.state, State::Selected(_)) => {
                Done::Bad("No mailbox selected".into())
            }
            // Like NOOP, CHECK reports what changed (the sync after every command).
            C::Check => Done::ok("CHECK completed"),
            C::Close => cmd::selected::close(self, true),
            C::Unselect => cmd::selected::close(self, false),
            C::Expunge => cmd::selected::expunge(self, None),
            C::ExpungeUid { sequence_set } => cmd::selected::expunge(self, Some(&sequence_set)),
            C::Search { .. }
                if matches!(extra, Some(Extra::SearchReturn(_)))
                    && !self.shared.extensions.esearch =>
            {
                Done::Bad("ESEARCH is not enabled".into())
            }
            C::Search {
                charset,
                criteria,
                uid,
            } => {
                let esearch = match extra {
                    Some(Extra::SearchReturn(r)) => Some(r),
                    _ => None,
                };
                cmd::search::search(
                    self,
                    conn,
                    &tag,
                    charset.as_ref(),
                    criteria.as_ref(),
                    uid,
                    esearch,
                )
                .await?
            }
            C::Fetch {
                ref sequence_set,
                uid,
                ..
            }
            | C::Store {
                ref sequence_set,
                uid,
                ..
            }
            | C::Copy {
                ref sequence_set,
                uid,
                ..
            } if self.invalid_sequence_set(sequence_set, uid).is_some() => self
                .invalid_sequence_set(sequence_set, uid)
                .expect("checked"),
            C::Fetch {
                sequence_set,
                macro_or_item_names,
                uid,
                modifiers,
            } => {
                let changed_since = modifiers.iter().find_map(|m| match m {
                    FetchModifier::ChangedSince(n) => Some(n.get()),
                    FetchModifier::Vanished => None,
                });
                cmd::fetch::fetch(
                    self,
                    conn,
                    &sequence_set,
                    macro_or_item_names,
                    uid,
                    changed_since,
                )
                .await?
            }
            C::Store {
                sequence_set,
                kind,
                response,
                flags,
                uid,
                modifiers,
            } => {
                let unchanged_since = modifiers
                    .iter()
                    .map(|StoreModifier::UnchangedSince(n)| *n)
                    .next();
                cmd::selected::store(
                    self,
                    conn,
                    &sequence_set,
                    kind,
                    response,
                    &flags,
                    uid,
                    unchanged_since,
                )
                .await?
            }
            C::Copy {
                sequence_set,
                mailbox,
                uid,
            } => cmd::selected::copy(self, &sequence_set, &mailbox, uid),
            C::Move {
                sequence_set,
                mailbox,
                uid,
            } => cmd::extensions::move_messages(self, conn, &sequence_set, &mailbox, uid).await?,
            _ => Done::Bad("Command not supported".into()),
        };
        if matches!(done, Done::Closed | Done::Answered) {
            return Ok(done);
        }
        // Tell the client what changed in the selected folder; EXPUNGE responses wait where
        // RFC 3501 §7.4.1 forbids them (FETCH, STORE, SEARCH without UID).
        let expunges = !matches!(name.as_str(), "FETCH" | "STORE" | "SEARCH");
        cmd::selected::sync_view(self, conn, expunges).await?;
        Ok(done)
    }

    /// SELECT / EXAMINE, with CONDSTORE's `(CONDSTORE)` parameter when that is offered.
    async fn select(
        &mut self,
        conn: &mut Connection,
        mailbox: &Mailbox<'static>,
        parameters: &[SelectParameter],
        read_only: bool,
    ) -> io::Result<Done> {
        let condstore = parameters.contains(&SelectParameter::CondStore);
        if condstore && !self.shared.extensions.condstore {
            return Ok(Done::Bad("CONDSTORE is not enabled".into()));
        }
        cmd::mailbox::select(self, conn, mailbox, read_only, condstore).await
    }

    /// Faults that replace or precede the command: throttling, BYE, UIDVALIDITY change.
    async fn pre_command_faults(
        &mut self,
        conn: &mut Connection,
        tag: &Tag<'static>,
        body: &CommandBody<'static>,
    ) -> io::Result<Option<Done>> {
        if matches!(body, CommandBody::Logout) {
            return Ok(None);
        }
        if let Some(f) = self
            .firing
            .iter()
            .find(|f| matches!(f.action, FaultAction::Throttle | FaultAction::ThrottleGmail))
            .cloned()
        {
            let user = self.owner().unwrap_or("").to_string();
            let backoff = f.backoff_ms.unwrap_or(5_000);
            let hold = Duration::from_millis(f.hold_ms.unwrap_or(backoff));
            self.shared
                .faults
                .hold_throttle(&user, f.action, backoff, hold);
            let done = throttled(f.action, backoff);
            if f.disconnect {
                return Ok(Some(reply_then_close(conn, tag, done).await?));
            }
            return Ok(Some(done));
        }
        if let Some(user) = self.owner()
            && let Some((action, backoff)) = self.shared.faults.throttled(user)
        {
            return Ok(Some(throttled(action, backoff)));
        }
        if self.fault(FaultAction::Bye).is_some() {
            bye(conn, "Connection closed").await?;
            return Ok(Some(Done::Closed));
        }
        if self.fault(FaultAction::UidValidityChange).is_some()
            && let Some(name) = self.fault_folder(body)
            && let Some((user, folder)) = self.resolve(&name)
        {
            let _ = self.shared.store.reset_uid_validity(&user, &folder);
        }
        Ok(None)
    }

    /// The folder a command concerns: its mailbox argument, else the selected folder.
    fn fault_folder(&self, body: &CommandBody<'_>) -> Option<String> {
        use CommandBody as C;
        let mailbox = match body {
            C::Select { mailbox, .. }
            | C::Examine { mailbox, .. }
            | C::Status { mailbox, .. }
            | C::Append { mailbox, .. }
            | C::Create { mailbox }
            | C::Delete { mailbox } => Some(mailbox),
            _ => None,
        };
        match mailbox {
            Some(m) => decode_mailbox(m).ok(),
            None => match &self.state {
                State::Selected(s) => Some(s.visible.clone()),
                _ => None,
            },
        }
    }

    /// Maps a client-visible name to (mailbox owner, folder in the store).
    pub fn resolve(&self, name: &str) -> Option<(String, String)> {
        let login = self.login.as_ref()?;
        let delim = self.delimiter();
        match &login.view {
            View::Own { owner } => Some((owner.clone(), canonical(name, delim))),
            View::Shared { owner, root } => {
                let prefix = format!("{root}{delim}");
                let Some(rest) = name.strip_prefix(&prefix) else {
                    return Some((owner.clone(), canonical(name, delim)));
                };
                // Account names may contain the delimiter once munged: longest match.
                let store = &self.shared.store;
                let mut best: Option<(String, String)> = None;
                for user in store.users() {
                    let shown = crate::cmd::mailbox::shared_account_name(&user);
                    let folder = if rest == shown {
                        Some("INBOX".to_string())
                    } else {
                        rest.strip_prefix(&format!("{shown}{delim}"))
                            .map(|f| f.to_string())
                    };
                    if let Some(folder) = folder
                        && best.as_ref().is_none_or(|(u, _)| {
                            crate::cmd::mailbox::shared_account_name(u).len() < shown.len()
                        })
                    {
                        best = Some((user, folder));
                    }
                }
                // Below the root: INBOX's child if the account has it, else a top-level folder.
                best.map(|(u, f)| {
                    let f = canonical(&f, delim);
                    let under_inbox = format!("INBOX{delim}{f}");
                    let folder = if f != "INBOX" && store.folder_info(&u, &under_inbox).is_ok() {
                        under_inbox
                    } else {
                        f
                    };
                    (u, folder)
                })
            }
        }
    }

    /// A sequence-number set naming messages that do not exist is a client error (RFC 3501
    /// §9 seq-number); UID sets may name anything.
    pub fn invalid_sequence_set(&self, set: &SequenceSet, uid: bool) -> Option<Done> {
        let State::Selected(sel) = &self.state else {
            return None;
        };
        if uid {
            return None;
        }
        let exists = sel.uids.len() as u32;
        let bad = set.0.as_ref().iter().any(|seq| {
            let ends: &[&SeqOrUid] = match seq {
                Sequence::Single(a) => &[a],
                Sequence::Range(a, b) => &[a, b],
            };
            ends.iter().any(|e| match e {
                SeqOrUid::Value(n) => n.get() > exists,
                SeqOrUid::Asterisk => exists == 0,
            })
        });
        bad.then(|| Done::Bad("Invalid messageset".into()))
    }

    /// Turns the session's sequence set into (sequence number, UID) pairs of the view.
    pub fn select_messages(&self, set: &SequenceSet, uid: bool) -> Vec<(u32, u32)> {
        match &self.state {
            State::Selected(sel) => select_in(sel, set, uid),
            _ => Vec::new(),
        }
    }
}

/// (sequence number, UID) of the messages of a view that a set names.
fn select_in(sel: &Selected, set: &SequenceSet, uid: bool) -> Vec<(u32, u32)> {
    let largest = if uid {
        sel.uids.last().copied().unwrap_or(0)
    } else {
        sel.uids.len() as u32
    };
    // Each element of the set becomes a range of positions in the (sorted) view: the cost
    // is the set's size times log n, not the folder's size times the set's.
    let value = |s: &SeqOrUid| match s {
        SeqOrUid::Value(n) => n.get(),
        SeqOrUid::Asterisk => largest,
    };
    let mut positions: Vec<usize> = Vec::new();
    for seq in set.0.as_ref() {
        let (a, b) = match seq {
            Sequence::Single(x) => (value(x), value(x)),
            Sequence::Range(x, y) => (value(x), value(y)),
        };
        let (lo, hi) = (a.min(b), a.max(b));
        let range = if uid {
            sel.uids.partition_point(|&u| u < lo)..sel.uids.partition_point(|&u| u <= hi)
        } else {
            (lo.max(1) as usize - 1).min(sel.uids.len())..(hi as usize).min(sel.uids.len())
        };
        positions.extend(range);
    }
    positions.sort_unstable();
    positions.dedup();
    positions
        .into_iter()
        .map(|i| (i as u32 + 1, sel.uids[i]))
        .collect()
}

/// Status texts are ASCII: other characters (from Unicode folder names) become modified UTF-7.
fn ascii(text: String) -> String {
    if text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        text
    } else {
        mutf7::encode(&text.replace(['\r', '\n'], " "))
    }
}

/// Whether `value` is in a sequence set; `*` stands for `largest` (RFC 3501 §6.4.8: `n:*`
/// always includes the largest, whatever n is).
pub fn in_set(set: &SequenceSet, value: u32, largest: u32) -> bool {
    let v = |s: &SeqOrUid| match s {
        SeqOrUid::Value(n) => n.get(),
        SeqOrUid::Asterisk => largest,
    };
    set.0.as_ref().iter().any(|seq| match seq {
        Sequence::Single(s) => v(s) == value,
        Sequence::Range(a, b) => {
            let (a, b) = (v(a), v(b));
            a.min(b) <= value && value <= a.max(b)
        }
    })
}

/// Exchange answers a throttled command and then drops the connection.
async fn reply_then_close(
    conn: &mut Connection,
    tag: &Tag<'static>,
    done: Done,
) -> io::Result<Done> {
    let Done::No(code, text) = done else {
        return Ok(done);
    };
    let status = Status::no(Some(tag.clone()), code, text).expect("valid text");
    conn.send(&Response::Status(status)).await?;
    bye(conn, "Connection closed").await?;
    Ok(Done::Closed)
}

fn throttled(action: FaultAction, backoff_ms: u64) -> Done {
    match action {
        FaultAction::ThrottleGmail => Done::No(
            Some(other_code("THROTTLED")),
            "Too many simultaneous requests, try again later".into(),
        ),
        _ => Done::no(format!(
            "Request is throttled. Suggested Backoff Time: {backoff_ms} milliseconds"
        )),
    }
}

pub async fn bye(conn: &mut Connection, text: &str) -> io::Result<()> {
    let bye = Bye {
        code: None,
        text: Text::try_from(text.to_string()).expect("valid text"),
    };
    conn.send(&Response::Status(Status::Bye(bye))).await?;
    conn.shutdown().await
}

/// `FETCH`, `UID FETCH`, ...: the label faults match on.
fn is_fetch(command: &Command<'_>) -> bool {
    matches!(command.body, CommandBody::Fetch { .. })
}

fn command_label(body: &CommandBody<'_>) -> String {
    use CommandBody as C;
    let (name, uid) = match body {
        C::Fetch { uid, .. } => ("FETCH", *uid),
        C::Store { uid, .. } => ("STORE", *uid),
        C::Copy { uid, .. } => ("COPY", *uid),
        C::Search { uid, .. } => ("SEARCH", *uid),
        C::ExpungeUid { .. } => ("EXPUNGE", true),
        other => (other.name(), false),
    };
    if uid {
        format!("UID {name}")
    } else {
        name.to_ascii_uppercase()
    }
}

/// A wire mailbox name, decoded from modified UTF-7.
pub fn decode_mailbox(mailbox: &Mailbox<'_>) -> Result<String, String> {
    match mailbox {
        Mailbox::Inbox => Ok("INBOX".into()),
        Mailbox::Other(other) => {
            let raw = other.inner().as_ref();
            let text =
                std::str::from_utf8(raw).map_err(|_| "mailbox name is not ASCII".to_string())?;
            mutf7::decode(text).map_err(|e| format!("mailbox name: {e}"))
        }
    }
}

/// A Unicode name as a wire mailbox.
pub fn encode_mailbox(name: &str) -> Mailbox<'static> {
    Mailbox::try_from(mutf7::encode(name)).expect("modified UTF-7 is a valid astring")
}

/// Store flag spelling -> imap-types flag.
pub fn to_flag(s: &str) -> Option<Flag<'static>> {
    Flag::try_from(s)
        .ok()
        .map(bounded_static::IntoBoundedStatic::into_static)
}

/// imap-types flag -> store spelling (system flags keep their canonical case).
pub fn flag_name(f: &Flag<'_>) -> String {
    f.to_string()
}

pub fn flag_set(flags: &[Flag<'_>]) -> BTreeSet<String> {
    flags.iter().map(flag_name).collect()
}

pub fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n.max(1)).expect("non-zero")
}

pub async fn send_data(conn: &mut Connection, data: Data<'_>) -> io::Result<()> {
    conn.send(&Response::Data(data)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selected_messages_by_uid_and_sequence() {
        let mut sel = Selected::new("u".into(), "INBOX".into(), "INBOX".into(), true);
        sel.uids = vec![2, 5, 9, 10, 30];
        let pick = |set: &str, uid: bool| {
            let set: SequenceSet = set.try_into().unwrap();
            select_in(&sel, &set, uid)
        };
        assert_eq!(pick("5:10", true), vec![(2, 5), (3, 9), (4, 10)]);
        assert_eq!(
            pick("31:*", true),
            vec![(5, 30)],
            "n:* includes the largest"
        );
        assert_eq!(pick("1,9,9,3:1", true), vec![(1, 2), (3, 9)]);
        assert_eq!(pick("2:3,*", false), vec![(2, 5), (3, 9), (5, 30)]);
        assert_eq!(pick("7", false), vec![]);
    }

    #[test]
    fn sequence_sets_with_asterisk() {
        let set: SequenceSet = "5:*".try_into().unwrap();
        assert!(in_set(&set, 3, 3), "n:* includes the largest even below n");
        assert!(!in_set(&set, 2, 3));
        let set: SequenceSet = "1,4:6".try_into().unwrap();
        assert!(in_set(&set, 1, 9) && in_set(&set, 5, 9) && !in_set(&set, 3, 9));
    }
}
