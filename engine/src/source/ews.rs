//! A mailbox of an on-premises Exchange organisation as a [`MailSource`], over EWS as the
//! endpoint's admin (impersonation or delegate access): the folder tree by FindFolder (Deep,
//! paged), a folder's items by SyncFolderItems (ids, sizes, read flags, received times), their
//! content by GetItem with MIME (messages as RFC 5322, calendar items as iCalendar, contacts as
//! vCard). Per-mailbox Autodiscover finds the mailbox's own EWS URL; a failure there fails this
//! user only. EWS ids are strings: [`ItemIds`] gives each a UID, once and for good.
//!
//! **Ours:** a folder whose display name holds `/` is read as nested (the path is `/`-joined);
//! a folder's listing is kept with its SyncFolderItems state, so an incremental sync asks only
//! for the changes since (an invalid state lists the folder again from the start).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use chrono::DateTime;
use mailmig_xml::{Element, esc};
use tokio::sync::watch;

use super::{
    FetchOutcome, FolderContent, FolderListing, FolderState, Folders, ItemIds, ItemMeta,
    ListedItem, MailSource, SnapshotChange, SourceError, SourceFolder, SourceItem,
};
use crate::exchange::ews::{self, Ews};
use crate::exchange::http::{Basic, HttpClient};
use crate::exchange::{ExchangeError, ExchangeSettings, autodiscover};

/// SyncFolderItems' largest page.
const MAX_CHANGES: usize = 512;
/// FindFolder's largest page.
const FOLDER_PAGE: usize = 1000;
/// More pages than this means a server that never ends its answer (500,000 items / 512).
const MAX_PAGES: usize = 2_000;

pub struct EwsSource {
    ews: Ews,
    mailbox: String,
    ids: Arc<dyn ItemIds>,
    stop: Option<watch::Receiver<bool>>,
    /// Folder path -> EWS folder id.
    folder_ids: HashMap<String, String>,
    /// Per folder path: UID -> item id, from its last listing.
    items: HashMap<String, HashMap<u32, String>>,
    /// The folder open for fetching.
    open: Option<String>,
}

/// An Exchange failure as the pipeline sorts them.
pub fn source_error(e: ExchangeError) -> SourceError {
    match e {
        ExchangeError::Unauthorized(m) => SourceError::Authentication(format!(
            "The admin account's credentials were refused: {m}"
        )),
        ExchangeError::Throttled { wait, message } => SourceError::Throttled { wait, message },
        ExchangeError::Transient(m) | ExchangeError::Unreachable(m) => SourceError::Transient(m),
        ExchangeError::Ews { code, message } => {
            let text = format!("{code}: {message}");
            match code.as_str() {
                // A move takes hours: this sync ends, a later start finds the mailbox moved.
                "ErrorMailboxMoveInProgress" => SourceError::Permanent(format!(
                    "{text} The mailbox is being moved on-premises: start the batch again once the move has completed."
                )),
                "ErrorMailboxStoreUnavailable"
                | "ErrorTimeoutExpired"
                | "ErrorInternalServerTransientError"
                | "ErrorServerBusy" => SourceError::Transient(text),
                _ => SourceError::Permanent(text),
            }
        }
        other => SourceError::Permanent(other.to_string()),
    }
}

/// IsRead as the pipeline's flags.
fn seen(read: bool) -> Vec<String> {
    if read {
        vec!["\\Seen".to_string()]
    } else {
        Vec::new()
    }
}

/// A UID validity for an EWS folder id: stable for the folder (a rename keeps its id), new for
/// a folder deleted and made again.
fn validity(folder_id: &str) -> u32 {
    // FNV-1a: stable across runs and platforms (std's hasher is neither).
    let mut h: u32 = 0x811c_9dc5;
    for b in folder_id.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h.max(1)
}

fn content_of(class: &str) -> FolderContent {
    match class {
        "" | "IPF.Note" => FolderContent::Mail,
        c if c.starts_with("IPF.Note.") => FolderContent::Mail,
        c if c.starts_with("IPF.Appointment") => FolderContent::Calendar,
        c if c.starts_with("IPF.Contact") => FolderContent::Contacts,
        other => FolderContent::Other(other.to_string()),
    }
}

impl EwsSource {
    /// Opens `mailbox` as the endpoint's admin.
    pub async fn login(
        settings: &ExchangeSettings,
        mailbox: &str,
        timeout: Duration,
        stop: Option<watch::Receiver<bool>>,
        ids: Arc<dyn ItemIds>,
    ) -> Result<Self, SourceError> {
        let http = Arc::new(
            HttpClient::new(
                settings.ca_file.as_deref(),
                settings.accept_untrusted_certificates,
                settings.connect_to.clone(),
                timeout,
            )
            .map_err(|e| SourceError::Permanent(e.to_string()))?,
        );
        let auth = Basic {
            user: settings.credential.user_name.clone(),
            password: settings.credential.password.clone(),
        };
        let url = if settings.use_auto_discover {
            match autodiscover::discover(&http, mailbox, &auth).await {
                Ok(d) => d.ews_url,
                Err(e @ (ExchangeError::Transient(_) | ExchangeError::Throttled { .. })) => {
                    return Err(source_error(e));
                }
                Err(e) => {
                    return Err(SourceError::Permanent(format!(
                        "Autodiscover for the mailbox {mailbox} failed: {e}"
                    )));
                }
            }
        } else {
            settings.ews_url.clone()
        };
        let ews = Ews {
            http,
            url,
            auth,
            access: settings.ews_access,
        };
        ews::probe(&ews, mailbox).await.map_err(source_error)?;
        Ok(Self {
            ews,
            mailbox: mailbox.to_string(),
            ids,
            stop,
            folder_ids: HashMap::new(),
            items: HashMap::new(),
            open: None,
        })
    }

    fn stopped(&self) -> Result<(), SourceError> {
        if self.stop.as_ref().is_some_and(|s| *s.borrow()) {
            Err(SourceError::Stopped)
        } else {
            Ok(())
        }
    }

    async fn call(&self, op: &str) -> Result<Element, SourceError> {
        self.stopped()?;
        self.ews.call(&self.mailbox, op).await.map_err(source_error)
    }

    /// The first response message of a body, as a result.
    fn first(body: &Element) -> Result<&Element, SourceError> {
        ews::messages(body)
            .into_iter()
            .next()
            .ok_or_else(|| SourceError::Transient("EWS answered no response message".into()))?
            .into_result()
            .map_err(source_error)
    }

    fn folder_id_of(&self, folder: &SourceFolder) -> Result<String, SourceError> {
        self.folder_ids.get(&folder.name).cloned().ok_or_else(|| {
            SourceError::Permanent(format!("{} was not listed by FindFolder", folder.name))
        })
    }

    /// Every item of a folder: the listing kept from the last sync, brought up to date by
    /// SyncFolderItems from its state (only the changes since travel), or read from an empty
    /// state the first time and when the server no longer knows the kept state
    /// (ErrorInvalidSyncStateData). The new listing and its state are kept together. Items
    /// keep their UIDs through [`ItemIds`], so a listing read again copies nothing twice.
    async fn enumerate(&self, folder_id: &str) -> Result<Vec<ListedItem>, SourceError> {
        let kept = self
            .ids
            .snapshot(&self.mailbox, folder_id)
            .map_err(SourceError::Permanent)?;
        let mut reset = kept.is_none();
        let kept = kept.unwrap_or_default();
        let mut state = kept.state;
        let mut order: Vec<String> = kept.items.iter().map(|i| i.id.clone()).collect();
        let mut items: HashMap<String, ListedItem> =
            kept.items.into_iter().map(|i| (i.id.clone(), i)).collect();
        let mut touched: HashSet<String> = HashSet::new();
        let mut deleted: HashSet<String> = HashSet::new();
        let mut restarted = false;
        for _ in 0..MAX_PAGES {
            let op = format!(
                "<m:SyncFolderItems><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties><t:FieldURI FieldURI=\"item:Size\"/><t:FieldURI FieldURI=\"item:DateTimeReceived\"/><t:FieldURI FieldURI=\"message:IsRead\"/></t:AdditionalProperties></m:ItemShape><m:SyncFolderId><t:FolderId Id=\"{}\"/></m:SyncFolderId>{}<m:MaxChangesReturned>{MAX_CHANGES}</m:MaxChangesReturned></m:SyncFolderItems>",
                esc(folder_id),
                if state.is_empty() {
                    String::new()
                } else {
                    format!("<m:SyncState>{}</m:SyncState>", esc(&state))
                }
            );
            let body = self.call(&op).await?;
            let first = ews::messages(&body)
                .into_iter()
                .next()
                .ok_or_else(|| SourceError::Transient("EWS answered no response message".into()))?
                .into_result();
            let m = match first {
                Ok(m) => m,
                Err(ExchangeError::Ews { code, .. })
                    if code == "ErrorInvalidSyncStateData" && !state.is_empty() && !restarted =>
                {
                    tracing::info!(
                        mailbox = %self.mailbox,
                        "the kept sync state is no longer valid: the folder is listed from the start"
                    );
                    state.clear();
                    order.clear();
                    items.clear();
                    touched.clear();
                    deleted.clear();
                    reset = true;
                    restarted = true;
                    continue;
                }
                Err(e) => return Err(source_error(e)),
            };
            state = m.child_text("SyncState").unwrap_or("").to_string();
            // Required by the schema: a page that does not say whether it is the last one is
            // not taken for the end of the folder.
            let done = m
                .child_text("IncludesLastItemInRange")
                .ok_or_else(|| {
                    SourceError::Transient(
                        "SyncFolderItems answered without IncludesLastItemInRange".into(),
                    )
                })?
                .eq_ignore_ascii_case("true");
            for change in m
                .child("Changes")
                .map_or(&[][..], |c| c.children.as_slice())
            {
                match change.name.as_str() {
                    "Create" | "Update" => {
                        let Some(item) = change.children.first() else {
                            continue;
                        };
                        let Some(id) = item.child("ItemId").and_then(|i| i.attr("Id")) else {
                            continue;
                        };
                        let size = item
                            .child_text("Size")
                            .and_then(|s| s.parse().ok())
                            .unwrap_or(0);
                        let read = item
                            .child_text("IsRead")
                            .is_some_and(|r| r.eq_ignore_ascii_case("true"));
                        let date = item
                            .child_text("DateTimeReceived")
                            .and_then(|d| DateTime::parse_from_rfc3339(d).ok())
                            .map(|d| d.to_utc());
                        if !items.contains_key(id) {
                            order.push(id.to_string());
                        }
                        let id = id.to_string();
                        deleted.remove(&id);
                        touched.insert(id.clone());
                        items.insert(
                            id.clone(),
                            ListedItem {
                                id,
                                size,
                                read,
                                date,
                            },
                        );
                    }
                    "ReadFlagChange" => {
                        let id = change.child("ItemId").and_then(|i| i.attr("Id"));
                        let read = change
                            .child_text("IsRead")
                            .is_some_and(|r| r.eq_ignore_ascii_case("true"));
                        if let Some(entry) = id.and_then(|id| items.get_mut(id)) {
                            entry.read = read;
                            touched.insert(entry.id.clone());
                        }
                    }
                    "Delete" => {
                        if let Some(id) = change.child("ItemId").and_then(|i| i.attr("Id"))
                            && items.remove(id).is_some()
                        {
                            touched.remove(id);
                            deleted.insert(id.to_string());
                        }
                    }
                    _ => {}
                }
            }
            if done {
                let upserts: Vec<ListedItem> = touched
                    .iter()
                    .filter_map(|id| items.get(id).cloned())
                    .collect();
                let deletes: Vec<String> = deleted.into_iter().collect();
                self.ids
                    .save_snapshot(
                        &self.mailbox,
                        folder_id,
                        &SnapshotChange {
                            state: &state,
                            reset,
                            upserts: &upserts,
                            deletes: &deletes,
                        },
                    )
                    .map_err(SourceError::Permanent)?;
                return Ok(order
                    .into_iter()
                    .filter_map(|id| items.remove(&id))
                    .collect());
            }
        }
        Err(SourceError::Permanent(format!(
            "SyncFolderItems of {} did not end after {MAX_PAGES} pages",
            self.mailbox
        )))
    }
}

#[async_trait]
impl MailSource for EwsSource {
    async fn folders(&mut self) -> Result<Folders, SourceError> {
        let root_op = format!(
            "<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape><m:FolderIds>{}</m:FolderIds></m:GetFolder>",
            self.ews.distinguished("msgfolderroot", &self.mailbox)
        );
        let body = self.call(&root_op).await?;
        let root = Self::first(&body)?
            .find("FolderId")
            .and_then(|f| f.attr("Id"))
            .ok_or_else(|| SourceError::Transient("GetFolder named no root folder id".into()))?
            .to_string();
        // id -> (parent id, display name, class), in the server's order.
        let mut found: Vec<(String, String, String, String)> = Vec::new();
        let mut offset = 0usize;
        for _ in 0..MAX_PAGES {
            let op = format!(
                "<m:FindFolder Traversal=\"Deep\"><m:FolderShape><t:BaseShape>Default</t:BaseShape><t:AdditionalProperties><t:FieldURI FieldURI=\"folder:FolderClass\"/><t:FieldURI FieldURI=\"folder:ParentFolderId\"/></t:AdditionalProperties></m:FolderShape><m:IndexedPageFolderView MaxEntriesReturned=\"{FOLDER_PAGE}\" Offset=\"{offset}\" BasePoint=\"Beginning\"/><m:ParentFolderIds>{}</m:ParentFolderIds></m:FindFolder>",
                self.ews.distinguished("msgfolderroot", &self.mailbox)
            );
            let body = self.call(&op).await?;
            let m = Self::first(&body)?;
            let page = m.child("RootFolder").ok_or_else(|| {
                SourceError::Transient("FindFolder answered no RootFolder".into())
            })?;
            let folders = page
                .child("Folders")
                .map_or(&[][..], |f| f.children.as_slice());
            for f in folders {
                let id = f.child("FolderId").and_then(|i| i.attr("Id")).unwrap_or("");
                let parent = f
                    .child("ParentFolderId")
                    .and_then(|i| i.attr("Id"))
                    .unwrap_or("");
                found.push((
                    id.to_string(),
                    parent.to_string(),
                    f.child_text("DisplayName").unwrap_or("").to_string(),
                    f.child_text("FolderClass").unwrap_or("").to_string(),
                ));
            }
            offset += folders.len();
            let last = page
                .attr("IncludesLastItemInRange")
                .ok_or_else(|| {
                    SourceError::Transient(
                        "FindFolder answered without IncludesLastItemInRange".into(),
                    )
                })?
                .eq_ignore_ascii_case("true");
            if last || folders.is_empty() {
                break;
            }
        }
        let by_id: HashMap<&str, (&str, &str)> = found
            .iter()
            .map(|(id, parent, name, _)| (id.as_str(), (parent.as_str(), name.as_str())))
            .collect();
        let path_of = |id: &str| -> Option<String> {
            let mut parts = Vec::new();
            let mut at = id;
            // A parent chain longer than the folder count is a cycle.
            for _ in 0..=found.len() {
                if at == root {
                    parts.reverse();
                    return Some(parts.join("/"));
                }
                let (parent, name) = by_id.get(at)?;
                parts.push(name.to_string());
                at = parent;
            }
            None
        };
        let mut out = Folders::default();
        self.folder_ids.clear();
        for (id, _, name, class) in &found {
            match path_of(id) {
                Some(path) if !path.is_empty() => {
                    self.folder_ids.insert(path.clone(), id.clone());
                    out.folders.push(SourceFolder {
                        name: path.clone(),
                        relative: path,
                        delimiter: Some('/'),
                        selectable: true,
                        content: content_of(class),
                    });
                }
                _ => out
                    .unreadable
                    .push(format!("{name} (its parent folder is not in the listing)")),
            }
        }
        Ok(out)
    }

    /// EWS tells no folder state here: every folder is listed.
    async fn list(
        &mut self,
        folder: &SourceFolder,
        _last: Option<FolderState>,
    ) -> Result<FolderListing, SourceError> {
        let folder_id = self.folder_id_of(folder)?;
        let listed = self.enumerate(&folder_id).await?;
        let ids: Vec<String> = listed.iter().map(|i| i.id.clone()).collect();
        let uids = self
            .ids
            .uids(&self.mailbox, &folder_id, &ids)
            .map_err(SourceError::Permanent)?;
        let mut map = HashMap::with_capacity(ids.len());
        let mut items = Vec::with_capacity(ids.len());
        for (item, uid) in listed.into_iter().zip(uids) {
            map.insert(uid, item.id);
            items.push(ItemMeta {
                uid,
                size: item.size,
                flags: seen(item.read),
                date: item.date,
            });
        }
        items.sort_by_key(|i| i.uid);
        self.items.insert(folder.name.clone(), map);
        Ok(FolderListing {
            uid_validity: validity(&folder_id),
            items,
            ..FolderListing::default()
        })
    }

    async fn open(&mut self, folder: &SourceFolder) -> Result<u32, SourceError> {
        let folder_id = self.folder_id_of(folder)?;
        if !self.items.contains_key(&folder.name) {
            self.list(folder, None).await?;
        }
        self.open = Some(folder.name.clone());
        Ok(validity(&folder_id))
    }

    async fn fetch(&mut self, items: &[ItemMeta]) -> Result<Vec<FetchOutcome>, SourceError> {
        let uids: Vec<u32> = items.iter().map(|m| m.uid).collect();
        let uids = uids.as_slice();
        let Some(map) = self.open.as_ref().and_then(|f| self.items.get(f)) else {
            return Err(SourceError::Permanent("no folder is open".into()));
        };
        let known: Vec<(u32, String)> = uids
            .iter()
            .filter_map(|u| map.get(u).map(|id| (*u, id.clone())))
            .collect();
        let mut out: Vec<FetchOutcome> = uids
            .iter()
            .filter(|u| !map.contains_key(u))
            .map(|u| FetchOutcome::Vanished(*u))
            .collect();
        if known.is_empty() {
            return Ok(out);
        }
        let ids: String = known
            .iter()
            .map(|(_, id)| format!("<t:ItemId Id=\"{}\"/>", esc(id)))
            .collect();
        let op = format!(
            "<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:IncludeMimeContent>true</t:IncludeMimeContent><t:AdditionalProperties><t:FieldURI FieldURI=\"item:DateTimeReceived\"/><t:FieldURI FieldURI=\"message:IsRead\"/></t:AdditionalProperties></m:ItemShape><m:ItemIds>{ids}</m:ItemIds></m:GetItem>"
        );
        let body = self.call(&op).await?;
        let messages = ews::messages(&body);
        if messages.len() != known.len() {
            return Err(SourceError::Transient(format!(
                "GetItem answered {} messages for {} items",
                messages.len(),
                known.len()
            )));
        }
        for ((uid, _), m) in known.into_iter().zip(messages) {
            if !m.ok {
                out.push(match m.code.as_str() {
                    "ErrorItemNotFound" => FetchOutcome::Vanished(uid),
                    "ErrorItemCorrupt" | "ErrorContentConversionFailed" => {
                        FetchOutcome::Damaged(uid, format!("{}: {}", m.code, m.text))
                    }
                    _ => FetchOutcome::Refused(uid),
                });
                continue;
            }
            let item = m.element.child("Items").and_then(|i| i.children.first());
            let mime = item
                .and_then(|i| i.child("MimeContent"))
                .map(|c| c.text.trim().to_string());
            let Some(raw) = mime.and_then(|b| {
                base64::engine::general_purpose::STANDARD
                    .decode(b.as_bytes())
                    .ok()
            }) else {
                out.push(FetchOutcome::Damaged(
                    uid,
                    "GetItem returned no readable MimeContent".into(),
                ));
                continue;
            };
            let read = item
                .and_then(|i| i.child_text("IsRead"))
                .is_some_and(|r| r.eq_ignore_ascii_case("true"));
            let date = item
                .and_then(|i| i.child_text("DateTimeReceived"))
                .and_then(|d| DateTime::parse_from_rfc3339(d).ok())
                .map(|d| d.to_utc());
            out.push(FetchOutcome::Item(SourceItem {
                uid,
                flags: seen(read),
                date,
                raw: Bytes::from(raw),
            }));
        }
        Ok(out)
    }

    async fn close(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_classes_and_validities() {
        assert_eq!(content_of("IPF.Note"), FolderContent::Mail);
        assert_eq!(content_of("IPF.Appointment"), FolderContent::Calendar);
        assert_eq!(content_of("IPF.Contact"), FolderContent::Contacts);
        assert_eq!(
            content_of("IPF.Task"),
            FolderContent::Other("IPF.Task".into())
        );
        assert_eq!(validity("AAMk1"), validity("AAMk1"));
        assert_ne!(validity("AAMk1"), validity("AAMk2"));
        assert_ne!(validity(""), 0);
    }
}
