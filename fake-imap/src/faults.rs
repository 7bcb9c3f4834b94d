//! Scripted faults and server quirks, declarative and deterministic for a seed.
//!
//! A *fault* fires on commands that match its trigger (user, folder, command, after N commands
//! of the session, a seeded probability, at most `times` firings server-wide) and then acts:
//! throttle, BYE, drop the connection mid-literal, delay, refuse a FETCH, and so on. A *quirk*
//! is a standing behaviour of the whole server (Courier's UIDVALIDITY only on SELECT, Exchange
//! forgetting `\Flagged` on APPEND, ...). Both come from server-quirks.md.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;

use crate::error::Error;

/// What a fault does when it fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultAction {
    /// `NO Request is throttled. Suggested Backoff Time: <backoff_ms> milliseconds` (Exchange
    /// Online); the user stays throttled for `hold_ms`, across connections; `disconnect` drops
    /// the connection after the reply, as Exchange does.
    Throttle,
    /// `NO [THROTTLED] ...` (Gmail), held for `hold_ms` like `throttle`.
    ThrottleGmail,
    /// `* BYE Connection closed` and the connection is closed.
    Bye,
    /// The connection is dropped halfway through a FETCH literal the server sends, or an APPEND
    /// literal the client sends.
    DropMidLiteral,
    /// Every matching response is delayed by `ms`.
    Delay,
    /// FETCH of the bodies of the messages with the given `uids` fails (`NO`), the rest of the
    /// set is served; their metadata (FLAGS, RFC822.SIZE, ...) still reads, as on a server
    /// whose index is fine but whose message file is broken.
    FetchNo,
    /// The folder is rebuilt before the command runs: new UIDVALIDITY, new UIDs.
    #[serde(rename = "uidvalidity-change")]
    UidValidityChange,
    /// Another session expunges `count` messages (the newest) of the folder while a FETCH runs.
    ExpungeDuringFetch,
    /// RFC822.SIZE is reported off by `delta` bytes.
    WrongSize,
    /// A header with a new value is prepended on every fetch of the message (Domino), so header
    /// hashes differ between two fetches.
    RewriteHeaders,
    /// FETCH answers without the requested header fields (Zimbra).
    MissingHeader,
    /// FETCH responses carry wrong sequence numbers (off by one).
    WrongSequence,
    /// LOGIN is answered OK even with a wrong password, then every command fails with NO
    /// ("User is authenticated but not connected").
    LoginThenFail,
}

/// A declarative fault: a trigger and an action with its parameters.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    pub action: FaultAction,
    /// Only for this user (the mailbox owner, whoever logged in).
    #[serde(default)]
    pub user: Option<String>,
    /// Only while this folder is selected (or named by the command).
    #[serde(default)]
    pub folder: Option<String>,
    /// Only for this command: `FETCH` matches FETCH and UID FETCH, `UID FETCH` only the latter.
    #[serde(default)]
    pub command: Option<String>,
    /// Only from the session's Nth command on (1 = the first command).
    #[serde(default)]
    pub after_commands: Option<u32>,
    /// Fire with this probability (seeded per session, so a seed replays the same run).
    #[serde(default)]
    pub probability: Option<f64>,
    /// Fire at most this many times over the server's life.
    #[serde(default)]
    pub times: Option<u32>,
    #[serde(default)]
    pub backoff_ms: Option<u64>,
    #[serde(default)]
    pub hold_ms: Option<u64>,
    #[serde(default)]
    pub disconnect: bool,
    #[serde(default)]
    pub ms: Option<u64>,
    #[serde(default)]
    pub uids: Vec<u32>,
    #[serde(default)]
    pub count: Option<u32>,
    #[serde(default)]
    pub delta: Option<i64>,
}

impl Fault {
    pub fn new(action: FaultAction) -> Self {
        Self {
            action,
            user: None,
            folder: None,
            command: None,
            after_commands: None,
            probability: None,
            times: None,
            backoff_ms: None,
            hold_ms: None,
            disconnect: false,
            ms: None,
            uids: Vec::new(),
            count: None,
            delta: None,
        }
    }
    pub fn user(mut self, user: &str) -> Self {
        self.user = Some(user.to_string());
        self
    }
    pub fn folder(mut self, folder: &str) -> Self {
        self.folder = Some(folder.to_string());
        self
    }
    pub fn command(mut self, command: &str) -> Self {
        self.command = Some(command.to_ascii_uppercase());
        self
    }
    pub fn after_commands(mut self, n: u32) -> Self {
        self.after_commands = Some(n);
        self
    }
    pub fn probability(mut self, p: f64) -> Self {
        self.probability = Some(p);
        self
    }
    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }
    pub fn backoff_ms(mut self, ms: u64) -> Self {
        self.backoff_ms = Some(ms);
        self
    }
    pub fn hold_ms(mut self, ms: u64) -> Self {
        self.hold_ms = Some(ms);
        self
    }
    pub fn disconnect(mut self) -> Self {
        self.disconnect = true;
        self
    }
    pub fn ms(mut self, ms: u64) -> Self {
        self.ms = Some(ms);
        self
    }
    pub fn uids(mut self, uids: &[u32]) -> Self {
        self.uids = uids.to_vec();
        self
    }
    pub fn count(mut self, n: u32) -> Self {
        self.count = Some(n);
        self
    }
    pub fn delta(mut self, d: i64) -> Self {
        self.delta = Some(d);
        self
    }

    /// Rejects faults whose parameters cannot work, naming the fault.
    pub fn validate(&self, index: usize) -> Result<(), Error> {
        let bad = |m: &str| {
            Err(Error::Invalid(format!(
                "faults[{index}] ({:?}): {m}",
                self.action
            )))
        };
        if let Some(p) = self.probability
            && !(0.0..=1.0).contains(&p)
        {
            return bad("probability must be between 0 and 1");
        }
        match self.action {
            FaultAction::FetchNo if self.uids.is_empty() => bad("needs `uids`"),
            FaultAction::Delay if self.ms.is_none() => bad("needs `ms`"),
            FaultAction::WrongSize if self.delta.is_none() => bad("needs `delta`"),
            _ => Ok(()),
        }
    }

    fn command_matches(&self, command: &str) -> bool {
        match &self.command {
            None => true,
            Some(want) => {
                let want = want.to_ascii_uppercase();
                want == command || command.strip_prefix("UID ") == Some(want.as_str())
            }
        }
    }
}

/// What a session knows when it asks whether a fault fires.
pub struct Context<'a> {
    pub user: Option<&'a str>,
    pub folder: Option<&'a str>,
    /// Upper-case command name, `UID FETCH` for the UID form.
    pub command: &'a str,
    /// 1 for the session's first command.
    pub command_number: u32,
}

/// Standing behaviours of the whole server.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Quirks {
    /// Close the connection with `* BYE Connection closed` after this many failed (NO/BAD)
    /// commands in one session (Exchange: 10).
    pub bye_after_errors: Option<u32>,
    /// Close a connection that has been idle this long.
    pub idle_timeout_ms: Option<u64>,
    /// EXAMINE answers without UIDVALIDITY (Courier assigns it only on SELECT).
    pub no_uidvalidity_on_examine: bool,
    /// Every message reports `$MDNSent`.
    pub mdnsent_on_every_message: bool,
    /// `\Flagged` given to APPEND is silently dropped (Exchange).
    pub forget_flagged_on_append: bool,
    /// APPEND bigger than this is refused.
    pub max_append_size: Option<u64>,
    /// How an over-size APPEND is refused: `exchange` (`BAD Command Argument Error. 11`) or
    /// `generic` (`NO Maximum size of appendable message has been exceeded`).
    pub append_limit_reply: AppendLimitReply,
    /// Per-user quota in bytes; an APPEND over it gets `NO Server Unavailable. 15`.
    pub quota_bytes: Option<u64>,
    /// Names CREATE refuses with `NO Folder name is reserved`.
    pub reserved_folders: Vec<String>,
    /// CREATE of a name that exists in another letter case is refused (`Mailbox already exists`).
    pub case_insensitive_folders: bool,
    /// A FETCH pipelined behind a FETCH runs at once with it, as in Dovecot: their untagged
    /// replies interleave, and the later command completes first.
    pub concurrent_fetches: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AppendLimitReply {
    #[default]
    Generic,
    Exchange,
}

/// Shared fault state of one server: the faults, how often each fired, who is throttled.
pub struct Faults {
    faults: Vec<Fault>,
    fired: Vec<AtomicU32>,
    throttled: Mutex<HashMap<String, (Instant, FaultAction, u64)>>,
}

impl Faults {
    pub fn new(faults: Vec<Fault>) -> Self {
        let fired = faults.iter().map(|_| AtomicU32::new(0)).collect();
        Self {
            faults,
            fired,
            throttled: Mutex::new(HashMap::new()),
        }
    }

    /// The faults that fire for this command, in declaration order. Each one counts as fired.
    pub fn firing(&self, ctx: &Context<'_>, rng: &mut ChaCha8Rng) -> Vec<Fault> {
        let mut out = Vec::new();
        for (i, f) in self.faults.iter().enumerate() {
            if let Some(u) = &f.user
                && ctx.user != Some(u.as_str())
            {
                continue;
            }
            if let Some(folder) = &f.folder
                && !ctx.folder.is_some_and(|c| c.eq_ignore_ascii_case(folder))
            {
                continue;
            }
            if !f.command_matches(ctx.command) {
                continue;
            }
            if f.after_commands.is_some_and(|n| ctx.command_number < n) {
                continue;
            }
            // Draw for every candidate, so one fault's firing does not shift another's draws.
            if let Some(p) = f.probability
                && !rng.random_bool(p)
            {
                continue;
            }
            if let Some(max) = f.times {
                let ok = self.fired[i]
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                        (n < max).then_some(n + 1)
                    })
                    .is_ok();
                if !ok {
                    continue;
                }
            } else {
                self.fired[i].fetch_add(1, Ordering::SeqCst);
            }
            out.push(f.clone());
        }
        out
    }

    /// How often each fault fired so far (index as declared).
    pub fn fired_counts(&self) -> Vec<u32> {
        self.fired
            .iter()
            .map(|c| c.load(Ordering::SeqCst))
            .collect()
    }

    /// Starts (or extends) a throttle hold for a user.
    pub fn hold_throttle(&self, user: &str, action: FaultAction, backoff_ms: u64, hold: Duration) {
        let until = Instant::now() + hold;
        let mut map = self.throttled.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(user.to_string(), (until, action, backoff_ms));
    }

    /// If the user is inside a throttle hold: the throttle kind and the backoff to announce.
    pub fn throttled(&self, user: &str) -> Option<(FaultAction, u64)> {
        let mut map = self.throttled.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(user) {
            Some((until, action, backoff)) if Instant::now() < *until => {
                let left = until.saturating_duration_since(Instant::now()).as_millis() as u64;
                Some((*action, (*backoff).min(left.max(1))))
            }
            Some(_) => {
                map.remove(user);
                None
            }
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn ctx<'a>(user: &'a str, command: &'a str, n: u32) -> Context<'a> {
        Context {
            user: Some(user),
            folder: Some("INBOX"),
            command,
            command_number: n,
        }
    }

    #[test]
    fn triggers_filter_and_times_cap() {
        let faults = Faults::new(vec![
            Fault::new(FaultAction::Bye)
                .user("a")
                .command("FETCH")
                .after_commands(3)
                .times(1),
        ]);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert!(
            faults
                .firing(&ctx("b", "UID FETCH", 5), &mut rng)
                .is_empty()
        );
        assert!(
            faults
                .firing(&ctx("a", "UID FETCH", 2), &mut rng)
                .is_empty()
        );
        assert!(faults.firing(&ctx("a", "SELECT", 5), &mut rng).is_empty());
        assert_eq!(faults.firing(&ctx("a", "UID FETCH", 3), &mut rng).len(), 1);
        assert!(
            faults.firing(&ctx("a", "FETCH", 4), &mut rng).is_empty(),
            "times = 1"
        );
        assert_eq!(faults.fired_counts(), vec![1]);
    }

    #[test]
    fn probability_is_deterministic_per_seed() {
        let run = |seed| {
            let faults = Faults::new(vec![Fault::new(FaultAction::Delay).ms(1).probability(0.5)]);
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..64)
                .map(|i| !faults.firing(&ctx("a", "NOOP", i), &mut rng).is_empty())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(9), run(9));
        assert_ne!(run(9), run(10));
        let fired = run(9).iter().filter(|x| **x).count();
        assert!((16..48).contains(&fired), "fired {fired} of 64");
    }

    #[test]
    fn validation_names_the_fault() {
        let err = Fault::new(FaultAction::FetchNo).validate(2).unwrap_err();
        assert!(err.to_string().contains("faults[2]") && err.to_string().contains("uids"));
    }
}
