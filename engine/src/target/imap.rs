//! Any IMAP server as the migration target (IMAP to IMAP, e.g. Dovecot to Dovecot).
//!
//! APPEND keeps flags and the internal date. Idempotence survives a crash through a header the
//! copy adds, `X-Mailmig-Source-Key: <source key>`: before the first APPEND into a folder, one
//! `UID FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (X-Mailmig-Source-Key)])` tells which source keys
//! the folder already holds (one round trip a folder, not one a message).

use std::collections::HashMap;
use std::time::Duration;

use async_imap::Session;
use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::{FlagUpdate, ImportOutcome, ImportRequest, ItemFlags, Rejection, Target, TargetError};
use crate::imap::{ImapSettings, ImapStream, Security, backoff_hint, connect, server_text};

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
    session: Session<ImapStream>,
    delimiter: char,
    selected: Option<String>,
    /// Target folder (wire name) -> source key -> UID.
    keys: HashMap<String, HashMap<String, u32>>,
}

pub struct ImapTarget {
    pub config: ImapTargetConfig,
    pub timeout: Duration,
    sessions: Mutex<HashMap<String, Mailbox>>,
}

/// A failure of the connection or of a command: the session is dropped and the call may be
/// retried.
fn io(e: impl std::fmt::Display) -> TargetError {
    TargetError::Transient(e.to_string())
}

impl ImapTarget {
    pub fn new(config: ImapTargetConfig) -> Self {
        Self {
            config,
            timeout: Duration::from_secs(60),
            sessions: Mutex::new(HashMap::new()),
        }
    }

    async fn open(&self, email: &str) -> Result<Mailbox, TargetError> {
        let connected = connect(&self.config.settings(), self.timeout)
            .await
            .map_err(io)?;
        let login = self.config.login_for(email);
        let mut session = connected
            .client
            .login(&login, &self.config.password)
            .await
            .map_err(|(e, _)| {
                TargetError::Refused(format!(
                    "The target refused the login for {email}: {}",
                    server_text(&e)
                ))
            })?;
        // `LIST "" ""` names the hierarchy delimiter (RFC 3501 6.3.8). Read checked: a reply
        // lost or refused here would make every nested folder's name wrong.
        let delimiter = crate::imap::list_checked(&mut session, "")
            .await
            .map_err(io)?
            .first()
            .and_then(|l| l.delimiter)
            .unwrap_or('/');
        Ok(Mailbox {
            session,
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
        let mut sessions = self.sessions.lock().await;
        let key = email.to_ascii_lowercase();
        if !sessions.contains_key(&key) {
            let m = self.open(email).await?;
            sessions.insert(key.clone(), m);
        }
        let m = sessions.get_mut(&key).expect("inserted");
        let result = f(m).await;
        if let Err(e) = &result
            && e.is_transient()
        {
            // A broken connection is dropped; the next call opens a new one.
            sessions.remove(&key);
        }
        result
    }
}

async fn select(m: &mut Mailbox, wire: &str) -> Result<(), TargetError> {
    if m.selected.as_deref() != Some(wire) {
        m.session.select(wire).await.map_err(io)?;
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
        let (fetched, refused) = crate::imap::fetch_checked(
            &mut m.session,
            "1:*",
            &format!("(UID BODY.PEEK[HEADER.FIELDS ({KEY_HEADER})])"),
        )
        .await
        .map_err(io)?;
        if let Some(why) = refused {
            return Err(io(format!("the target refused to list {wire}: {why}")));
        }
        for f in &fetched {
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

#[async_trait]
impl Target for ImapTarget {
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
            if wire != "INBOX"
                && let Err(e) = m.session.create(&wire).await
            {
                // Already there is fine (EXAMINE tells); anything else is the target's refusal.
                m.selected = None;
                if m.session.examine(&wire).await.is_err() {
                    return Err(TargetError::Refused(format!(
                        "The target refused the folder {path}: {}",
                        server_text(&e)
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
            let flags = (!flags.is_empty()).then(|| format!("({})", flags.join(" ")));
            let date = request.received_time.map(imap_date);
            m.selected = None;
            let appended = m
                .session
                .append(&wire, flags.as_deref(), date.as_deref(), &message)
                .await;
            match appended {
                Ok(()) => {
                    // The UID is not known without UIDPLUS parsing; the key is what matters.
                    keys(m, &wire).await?.insert(key.clone(), 0);
                    Ok(ImportOutcome::Created(key.clone()))
                }
                Err(e @ (async_imap::error::Error::No(_) | async_imap::error::Error::Bad(_))) => {
                    let text = e.to_string();
                    Ok(if let Some(wait) = backoff_hint(&text) {
                        ImportOutcome::Throttled(wait)
                    } else if text.contains("OVERQUOTA") || text.contains("Server Unavailable. 15")
                    {
                        ImportOutcome::Rejected(Rejection::QuotaExceeded)
                    } else if text.contains("TOOBIG")
                        || text.contains("Maximum size")
                        || text.contains("Argument Error")
                    {
                        ImportOutcome::Rejected(Rejection::TooLarge {
                            size: mime.len() as u64,
                            max: 0,
                        })
                    } else {
                        ImportOutcome::Rejected(Rejection::InvalidFolder {
                            message: server_text(&e),
                        })
                    })
                }
                // Refused before the literal was sent: the server's size limit.
                Err(async_imap::error::Error::Append) => {
                    Ok(ImportOutcome::Rejected(Rejection::TooLarge {
                        size: mime.len() as u64,
                        max: 0,
                    }))
                }
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
            {
                use futures::TryStreamExt;
                let _: Vec<_> = m
                    .session
                    .uid_store(uid.to_string(), format!("FLAGS.SILENT ({list})"))
                    .await
                    .map_err(io)?
                    .try_collect()
                    .await
                    .map_err(io)?;
            }
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
