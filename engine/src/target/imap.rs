//! Any IMAP server as the migration target (IMAP to IMAP, e.g. Dovecot to Dovecot).
//!
//! APPEND keeps flags and the internal date. Idempotence survives a crash through a header the
//! copy adds, `X-Mailmig-Source-Key: <source key>`: before the first APPEND into a folder, one
//! `UID FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (X-Mailmig-Source-Key)])` tells which source keys
//! the folder already holds (one round trip a folder, not one a message).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::{FlagUpdate, ImportOutcome, ImportRequest, ItemFlags, Rejection, Target, TargetError};
use crate::imap::commands;
use crate::imap::{
    Client, ClientError, Done, ImapSettings, LoginError, Security, backoff_hint, connect, login,
};

pub const KEY_HEADER: &str = "X-Mailmig-Source-Key";

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
    selected: Option<String>,
    /// Target folder (wire name) -> source key -> UID.
    keys: HashMap<String, HashMap<String, u32>>,
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
            Ok(()) => {}
            Err(LoginError::Refused(text)) => {
                return Err(TargetError::Refused(format!(
                    "The target refused the login for {email}: {text}"
                )));
            }
            Err(LoginError::Throttled { text, .. }) => return Err(io(text)),
            Err(LoginError::Connection(e)) => return Err(io(e)),
        }
        // `LIST "" ""` names the hierarchy delimiter (RFC 3501 6.3.8). Read checked: a reply
        // lost or refused here would make every nested folder's name wrong.
        let reply = commands::list(&mut client, "").await.map_err(io)?;
        refused("LIST \"\" \"\"", reply.done)?;
        let delimiter = reply
            .listed
            .first()
            .and_then(|l| l.delimiter)
            .unwrap_or('/');
        Ok(Mailbox {
            client,
            delimiter,
            selected: None,
            keys: HashMap::new(),
        })
    }

    /// The target's name for a `/`-separated path (Inbox is INBOX on IMAP).
    fn wire_name(path: &str, delimiter: char) -> String {
        let parts: Vec<&str> = path.split('/').collect();
        let mut out: Vec<String> = parts.iter().map(|p| p.to_string()).collect();
        if out[0].eq_ignore_ascii_case("Inbox") {
            out[0] = "INBOX".into();
        }
        mutf7::encode(&out.join(&delimiter.to_string()))
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
        if let Err(e) = &result
            && e.is_transient()
        {
            // A broken connection is dropped; the next call opens a new one.
            *session = None;
        }
        result
    }
}

async fn select(m: &mut Mailbox, wire: &str) -> Result<(), TargetError> {
    if m.selected.as_deref() != Some(wire) {
        let (_, done) = commands::select(&mut m.client, wire).await.map_err(io)?;
        refused(&format!("SELECT {wire}"), done)?;
        m.selected = Some(wire.to_string());
    }
    Ok(())
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
            let wire = ImapTarget::wire_name(path, m.delimiter);
            if wire == "INBOX" {
                return Ok(path.to_string());
            }
            let created = commands::create(&mut m.client, &wire).await.map_err(io)?;
            if let Done::No(why) = created {
                // Already there is fine (EXAMINE tells); anything else is the target's refusal.
                m.selected = None;
                let (_, examined) = commands::examine(&mut m.client, &wire).await.map_err(io)?;
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
        let key = request.source_key.clone();
        self.with_mailbox(address, async |m| {
            let wire = ImapTarget::wire_name(&request.folder, m.delimiter);
            let present = keys(m, &wire).await?;
            if let Some(uid) = present.get(&key) {
                return Ok(ImportOutcome::AlreadyPresent(uid.to_string()));
            }
            let mut message = format!("{KEY_HEADER}: {key}\r\n").into_bytes();
            message.extend_from_slice(&mime);
            let flags = request.flags.to_imap();
            let flags = if flags.is_empty() {
                String::new()
            } else {
                format!("({})", flags.join(" "))
            };
            let date = request.received_time.map(imap_date);
            m.selected = None;
            let appended =
                commands::append(&mut m.client, &wire, &flags, date.as_deref(), &message).await;
            match appended {
                Ok(Done::Ok(_)) => {
                    // The UID is not known without UIDPLUS parsing; the key is what matters.
                    keys(m, &wire).await?.insert(key.clone(), 0);
                    Ok(ImportOutcome::Created(key.clone()))
                }
                Ok(Done::No(text)) => Ok(append_refusal(&text, mime.len() as u64)),
                // Refused before the literal was sent, or as a bad command: the server's size
                // limit or its line limit.
                Err(ClientError::Bad { text, .. }) => Ok(append_refusal(&text, mime.len() as u64)),
                Err(e) => Err(io(e)),
            }
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
        self.with_mailbox(address, async |m| {
            let wire = ImapTarget::wire_name(target_folder, m.delimiter);
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
            select(m, &wire).await?;
            let list = flags.to_imap().join(" ");
            let done = commands::uid_store_flags(&mut m.client, uid, &list)
                .await
                .map_err(io)?;
            refused(&format!("UID STORE in {wire}"), done)?;
            Ok(FlagUpdate::Updated)
        })
        .await
    }
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

    #[test]
    fn wire_names() {
        assert_eq!(
            ImapTarget::wire_name("Inbox/Projects", '.'),
            "INBOX.Projects"
        );
        assert_eq!(ImapTarget::wire_name("Entwürfe", '/'), "Entw&APw-rfe");
    }
}
