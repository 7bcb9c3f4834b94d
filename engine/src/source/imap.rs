//! An IMAP server as a [`MailSource`]: read-only (EXAMINE, BODY.PEEK), every listing and
//! fetch checked to its tagged reply, Courier's UserRoot honoured.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_imap::Session;
use async_trait::async_trait;

use super::{
    Credential, FetchOutcome, FolderListing, ItemMeta, MailSource, SourceError, SourceFolder,
    SourceItem,
};
use crate::imap::{
    Fetched, ImapSettings, ImapStream, LoginError, SIGN_IN_FAILED, authzid_ignored, backoff_hint,
    connect, fetch_checked, list_checked, login, server_text,
};

/// A logged-in IMAP session of one user.
pub struct ImapSource {
    session: Session<ImapStream>,
    /// Courier's UserRoot: only folders below it are the user's.
    user_root: Option<String>,
}

/// A command's failure: a throttling reply is a wait, anything else a reconnect.
fn failed(text: String) -> SourceError {
    match backoff_hint(&text) {
        Some(wait) => SourceError::Throttled {
            wait,
            message: text,
        },
        None => SourceError::Transient(text),
    }
}

/// A UID set for a command: `1,5,9`.
fn uid_set(uids: &[u32]) -> String {
    uids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

impl ImapSource {
    /// The folders under a UserRoot, listed by pattern (a server such as Courier shows shared
    /// folders only to a pattern that names them, never under `*`). When the root itself is a
    /// selectable mailbox it is the user's INBOX (Courier's `#shared.<user>`), and what is
    /// below it stays below the INBOX, as the user sees it; a root that is only a container
    /// (`/users/<name>`) holds the user's top-level folders.
    async fn folders_under(&mut self, root: &str) -> Result<Vec<SourceFolder>, SourceError> {
        let pattern = format!("{}*", mutf7::encode(root));
        let listed = list_checked(&mut self.session, &pattern)
            .await
            .map_err(failed)?;
        let decoded: Vec<_> = listed
            .into_iter()
            .filter_map(|l| Some((mutf7::decode(&l.wire_name).ok()?, l)))
            .collect();
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
                name,
                relative,
                delimiter: l.delimiter,
            });
        }
        Ok(out)
    }

    /// Connects per the settings and logs in with the CSV row's credential.
    pub async fn login(
        settings: &ImapSettings,
        credential: &Credential,
        timeout: Duration,
    ) -> Result<Self, SourceError> {
        let connected = connect(settings, timeout)
            .await
            .map_err(|e| SourceError::Transient(e.to_string()))?;
        if let Some(why) = authzid_ignored(&connected.greeting, settings, &credential.user_name) {
            return Err(SourceError::Permanent(why));
        }
        let session = match login(
            connected.client,
            settings,
            &credential.user_name,
            &credential.password,
        )
        .await
        {
            Ok(s) => s,
            Err(LoginError::Throttled { wait, text }) => {
                return Err(SourceError::Throttled {
                    wait,
                    message: text,
                });
            }
            Err(LoginError::Refused(_)) => {
                return Err(SourceError::Authentication(SIGN_IN_FAILED.to_string()));
            }
        };
        Ok(Self {
            session,
            user_root: credential.user_root.clone(),
        })
    }

    /// EXAMINE (read-only); returns UIDVALIDITY and the message count.
    async fn examine(&mut self, folder: &SourceFolder) -> Result<(u32, u32), SourceError> {
        let wire = mutf7::encode(&folder.name);
        let mailbox = self
            .session
            .examine(&wire)
            .await
            .map_err(|e| failed(server_text(&e)))?;
        let uid_validity = match mailbox.uid_validity {
            Some(v) => v,
            None => {
                // Courier gives UIDVALIDITY only on SELECT; STATUS tells without selecting.
                let st = self
                    .session
                    .status(&wire, "(UIDVALIDITY)")
                    .await
                    .map_err(|e| failed(server_text(&e)))?;
                st.uid_validity.unwrap_or(0)
            }
        };
        Ok((uid_validity, mailbox.exists))
    }

    async fn uid_fetch(
        &mut self,
        set: &str,
        items: &str,
    ) -> Result<(Vec<Fetched>, Option<String>), SourceError> {
        fetch_checked(&mut self.session, set, items)
            .await
            .map_err(failed)
    }
}

#[async_trait]
impl MailSource for ImapSource {
    async fn folders(&mut self) -> Result<Vec<SourceFolder>, SourceError> {
        let out = match self.user_root.clone().filter(|r| !r.is_empty()) {
            Some(root) => self.folders_under(&root).await?,
            None => {
                let mut out = Vec::new();
                for listed in list_checked(&mut self.session, "*").await.map_err(failed)? {
                    let Ok(name) = mutf7::decode(&listed.wire_name) else {
                        continue;
                    };
                    out.push(SourceFolder {
                        selectable: listed.selectable,
                        relative: name.clone(),
                        name,
                        delimiter: listed.delimiter,
                    });
                }
                out
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
        Ok(out)
    }
    async fn list(&mut self, folder: &SourceFolder) -> Result<FolderListing, SourceError> {
        let (uid_validity, exists) = self.examine(folder).await?;
        if exists == 0 {
            return Ok(FolderListing {
                uid_validity,
                items: Vec::new(),
            });
        }
        let (fetched, refused) = self
            .uid_fetch("1:*", "(UID FLAGS RFC822.SIZE INTERNALDATE)")
            .await?;
        if let Some(why) = refused {
            // The listing must be whole, or messages would silently wait for another sync.
            return Err(SourceError::Transient(format!(
                "{}: listing refused: {why}",
                folder.relative
            )));
        }
        let items = fetched
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
        Ok(FolderListing {
            uid_validity,
            items,
        })
    }

    async fn open(&mut self, folder: &SourceFolder) -> Result<u32, SourceError> {
        Ok(self.examine(folder).await?.0)
    }

    async fn fetch(&mut self, uids: &[u32]) -> Result<Vec<FetchOutcome>, SourceError> {
        let (fetched, refused) = self
            .uid_fetch(&uid_set(uids), "(UID FLAGS INTERNALDATE BODY.PEEK[])")
            .await?;
        let mut got: HashMap<u32, Fetched> = HashMap::new();
        for f in fetched {
            if let (Some(uid), Some(_)) = (f.uid, &f.body) {
                got.insert(uid, f);
            }
        }
        // Messages the fetch did not return: still there (refused) or expunged meanwhile
        // (vanished). One UID FETCH of the missing tells which.
        let missing: Vec<u32> = uids
            .iter()
            .copied()
            .filter(|u| !got.contains_key(u))
            .collect();
        let still_there: HashSet<u32> = if missing.is_empty() {
            HashSet::new()
        } else {
            let (present, _) = self.uid_fetch(&uid_set(&missing), "(UID)").await?;
            present.iter().filter_map(|f| f.uid).collect()
        };
        if refused.is_some() {
            tracing::debug!(?refused, missing = missing.len(), "FETCH partly refused");
        }
        Ok(uids
            .iter()
            .map(|&uid| match got.remove(&uid) {
                Some(f) => FetchOutcome::Item(SourceItem {
                    uid,
                    flags: f.flags,
                    date: f.date,
                    raw: f.body.expect("kept only with a body"),
                }),
                None if still_there.contains(&uid) => FetchOutcome::Refused(uid),
                None => FetchOutcome::Vanished(uid),
            })
            .collect())
    }

    async fn close(&mut self) {
        let _ = self.session.logout().await;
    }
}
