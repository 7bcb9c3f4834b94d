//! The fixtures' own IMAP client (async-imap over the plain port): seeding by APPEND, flag
//! changes, and reading a mailbox back as its user sees it.

use std::time::Duration;

use async_imap::Session;
use chrono::{DateTime, FixedOffset, Utc};
use futures::TryStreamExt;
use tokio::net::TcpStream;

use crate::{Error, Kind};

/// A message to seed: its folder (a `/`-separated path, `INBOX` for the inbox), bytes, flags
/// and internal date.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub folder: String,
    pub raw: Vec<u8>,
    pub flags: Vec<String>,
    pub date: Option<DateTime<FixedOffset>>,
}

impl Message {
    pub fn new(folder: &str, raw: impl Into<Vec<u8>>) -> Self {
        Self {
            folder: folder.to_string(),
            raw: raw.into(),
            flags: Vec::new(),
            date: None,
        }
    }

    pub fn flags(mut self, flags: &[&str]) -> Self {
        self.flags = flags.iter().map(|f| f.to_string()).collect();
        self
    }

    /// An RFC 3339 internal date.
    pub fn date(mut self, rfc3339: &str) -> Self {
        self.date = Some(DateTime::parse_from_rfc3339(rfc3339).expect("an RFC 3339 date"));
        self
    }
}

/// A message as the server holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    /// The folder's full name as the user sees it, decoded (`INBOX.Projects` on Courier).
    pub folder: String,
    pub delimiter: char,
    pub uid: u32,
    /// Without `\Recent`.
    pub flags: Vec<String>,
    pub internal_date: DateTime<Utc>,
    pub raw: Vec<u8>,
}

type S = Session<TcpStream>;

fn imap(kind: Kind) -> impl Fn(String) -> Error {
    move |message| Error::Imap { kind, message }
}

async fn login(kind: Kind, port: u16, user: &str, password: &str) -> Result<S, Error> {
    let fail = imap(kind);
    let tcp = tokio::time::timeout(
        Duration::from_secs(10),
        TcpStream::connect(("127.0.0.1", port)),
    )
    .await
    .map_err(|_| fail("connect timed out".into()))??;
    let mut client = async_imap::Client::new(tcp);
    client
        .read_response()
        .await
        .map_err(|e| fail(e.to_string()))?
        .ok_or_else(|| fail("no greeting".into()))?;
    client
        .login(user, password)
        .await
        .map_err(|(e, _)| fail(format!("LOGIN {user}: {e}")))
}

fn imap_date(t: DateTime<FixedOffset>) -> String {
    format!("\"{}\"", t.format("%d-%b-%Y %H:%M:%S %z"))
}

/// Appends `messages` as `user` on 127.0.0.1:`port`, creating their folders.
pub async fn seed(
    kind: Kind,
    port: u16,
    user: &str,
    password: &str,
    messages: &[Message],
) -> Result<(), Error> {
    let fail = imap(kind);
    let mut s = login(kind, port, user, password).await?;
    let mut created: Vec<String> = Vec::new();
    for m in messages {
        let wire = mutf7::encode(&kind.folder_name(&m.folder));
        if wire != "INBOX" && !created.contains(&wire) {
            // Parents first; an existing folder answers NO, which is fine.
            let delimiter = kind.delimiter().to_string();
            let parts: Vec<&str> = wire.split(delimiter.as_str()).collect();
            for n in 1..=parts.len() {
                let name = parts[..n].join(&delimiter);
                if name != "INBOX" {
                    let _ = s.create(&name).await;
                }
            }
            created.push(wire.clone());
        }
        let flags = (!m.flags.is_empty()).then(|| format!("({})", m.flags.join(" ")));
        let date = m.date.map(imap_date);
        s.append(&wire, flags.as_deref(), date.as_deref(), &m.raw)
            .await
            .map_err(|e| fail(format!("APPEND to {wire}: {e}")))?;
    }
    let _ = s.logout().await;
    Ok(())
}

/// Replaces the flags of the `index`th message (oldest first) of a folder.
pub async fn set_flags(
    kind: Kind,
    port: u16,
    user: &str,
    password: &str,
    folder: &str,
    index: usize,
    flags: &[&str],
) -> Result<(), Error> {
    let fail = imap(kind);
    let mut s = login(kind, port, user, password).await?;
    let wire = mutf7::encode(&kind.folder_name(folder));
    s.select(&wire).await.map_err(|e| fail(e.to_string()))?;
    let uids: Vec<u32> = s
        .uid_search("ALL")
        .await
        .map_err(|e| fail(e.to_string()))?
        .into_iter()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let uid = uids
        .get(index)
        .ok_or_else(|| fail(format!("{folder} has no message {index}")))?;
    let _: Vec<_> = s
        .uid_store(
            uid.to_string(),
            format!("FLAGS.SILENT ({})", flags.join(" ")),
        )
        .await
        .map_err(|e| fail(e.to_string()))?
        .try_collect()
        .await
        .map_err(|e| fail(e.to_string()))?;
    let _ = s.logout().await;
    Ok(())
}

/// Every message of the folders `user` sees.
pub async fn mailbox(
    kind: Kind,
    port: u16,
    user: &str,
    password: &str,
) -> Result<Vec<Stored>, Error> {
    let fail = imap(kind);
    let mut s = login(kind, port, user, password).await?;
    let names: Vec<_> = s
        .list(Some(""), Some("*"))
        .await
        .map_err(|e| fail(e.to_string()))?
        .try_collect()
        .await
        .map_err(|e| fail(e.to_string()))?;
    let mut folders = Vec::new();
    for n in &names {
        let noselect = n
            .attributes()
            .iter()
            .any(|a| matches!(a, async_imap::types::NameAttribute::NoSelect));
        if !noselect {
            let delimiter = n.delimiter().and_then(|d| d.chars().next()).unwrap_or('/');
            folders.push((n.name().to_string(), delimiter));
        }
    }
    let mut out = Vec::new();
    for (wire, delimiter) in folders {
        let mailbox = s
            .examine(&wire)
            .await
            .map_err(|e| fail(format!("EXAMINE {wire}: {e}")))?;
        if mailbox.exists == 0 {
            continue;
        }
        let fetched: Vec<_> = s
            .uid_fetch("1:*", "(UID FLAGS INTERNALDATE BODY.PEEK[])")
            .await
            .map_err(|e| fail(e.to_string()))?
            .try_collect()
            .await
            .map_err(|e| fail(e.to_string()))?;
        if fetched.len() != mailbox.exists as usize {
            return Err(fail(format!(
                "{wire}: {} of {} messages fetched",
                fetched.len(),
                mailbox.exists
            )));
        }
        let folder = mutf7::decode(&wire).map_err(|e| fail(format!("{wire}: {e:?}")))?;
        for f in fetched {
            out.push(Stored {
                folder: folder.clone(),
                delimiter,
                uid: f.uid.unwrap_or(0),
                flags: f
                    .flags()
                    .filter_map(|fl| match fl {
                        async_imap::types::Flag::Recent => None,
                        other => Some(flag_name(&other)),
                    })
                    .collect(),
                internal_date: f
                    .internal_date()
                    .map(|d| d.to_utc())
                    .ok_or_else(|| fail("no INTERNALDATE".into()))?,
                raw: f.body().unwrap_or_default().to_vec(),
            });
        }
    }
    let _ = s.logout().await;
    Ok(out)
}

fn flag_name(f: &async_imap::types::Flag<'_>) -> String {
    use async_imap::types::Flag;
    match f {
        Flag::Seen => "\\Seen".into(),
        Flag::Answered => "\\Answered".into(),
        Flag::Flagged => "\\Flagged".into(),
        Flag::Deleted => "\\Deleted".into(),
        Flag::Draft => "\\Draft".into(),
        Flag::Recent => "\\Recent".into(),
        Flag::MayCreate => "\\*".into(),
        Flag::Custom(c) => c.to_string(),
    }
}

pub(crate) async fn create_as_admin(
    kind: Kind,
    port: u16,
    admin: &str,
    password: &str,
    users: &[String],
) -> Result<(), Error> {
    let fail = imap(kind);
    let mut s = login(kind, port, admin, password).await?;
    for u in users {
        s.create(&format!("user.{u}"))
            .await
            .map_err(|e| fail(format!("CREATE user.{u}: {e}")))?;
    }
    let _ = s.logout().await;
    Ok(())
}
