//! Where mail comes from. The pipeline reads every source through [`MailSource`]; [`open`]
//! dispatches on the endpoint's type to an implementation ([`imap::ImapSource`] for IMAP).

pub mod ews;
pub mod imap;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::imap::ImapSettings;

/// How to reach a source, by endpoint type. In JSON the type is `endpointType` beside the
/// settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "endpointType")]
pub enum SourceSettings {
    #[serde(rename = "IMAP")]
    Imap(ImapSettings),
    /// An on-premises Exchange organisation (a cutover migration).
    #[serde(rename = "ExchangeOutlookAnywhere")]
    ExchangeOutlookAnywhere(Box<crate::exchange::ExchangeSettings>),
}

impl SourceSettings {
    /// The settings as they may be shown or exported (no stored password).
    pub fn redacted(&self) -> Self {
        match self {
            SourceSettings::Imap(s) => SourceSettings::Imap(s.clone()),
            SourceSettings::ExchangeOutlookAnywhere(s) => {
                SourceSettings::ExchangeOutlookAnywhere(Box::new(s.redacted()))
            }
        }
    }
}

/// Who a sync reads the mailbox as: the CSV row's login (any admin form), its password, and
/// the folder it starts at (Courier's UserRoot). `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub user_name: String,
    pub password: String,
    pub user_root: Option<String>,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("user_name", &self.user_name)
            .field("password", &"<hidden>")
            .field("user_root", &self.user_root)
            .finish()
    }
}

/// What a folder holds (EWS's FolderClass); every IMAP folder holds mail.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum FolderContent {
    #[default]
    Mail,
    Calendar,
    Contacts,
    /// Tasks, notes and the like, which a migration does not copy (the class, as named).
    Other(String),
}

impl FolderContent {
    /// The kind of the items the target is given.
    pub fn item_kind(&self) -> mailmig_model::ItemKind {
        match self {
            FolderContent::Calendar => mailmig_model::ItemKind::Calendar,
            FolderContent::Contacts => mailmig_model::ItemKind::Contact,
            FolderContent::Mail | FolderContent::Other(_) => mailmig_model::ItemKind::Mail,
        }
    }
}

/// Stable UIDs for a source whose items have string ids (EWS): each id gets one the first time
/// it is seen, in order, and keeps it (the state holds the map), so a UID always names the same
/// item and the checkpoint stays valid across syncs.
pub trait ItemIds: Send + Sync {
    fn uids(&self, mailbox: &str, folder: &str, ids: &[String]) -> Result<Vec<u32>, String>;

    /// A folder's listing as of the sync state it was last read up to (EWS's SyncFolderItems),
    /// so that an incremental sync asks only for the changes since.
    fn snapshot(&self, _mailbox: &str, _folder: &str) -> Result<Option<FolderSnapshot>, String> {
        Ok(None)
    }

    /// Keeps a folder's listing as of a new sync state (the state and the items together).
    fn save_snapshot(
        &self,
        _mailbox: &str,
        _folder: &str,
        _change: &SnapshotChange<'_>,
    ) -> Result<(), String> {
        Ok(())
    }
}

/// One item as a listing shows it: its id, size, read flag and received time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedItem {
    pub id: String,
    pub size: u64,
    pub read: bool,
    pub date: Option<DateTime<Utc>>,
}

/// A folder's items as of a sync state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FolderSnapshot {
    pub state: String,
    pub items: Vec<ListedItem>,
}

/// What changed in a folder's listing since its kept snapshot, up to `state`.
#[derive(Clone, Debug)]
pub struct SnapshotChange<'a> {
    pub state: &'a str,
    /// The listing was read again from an empty state: the kept items go.
    pub reset: bool,
    pub upserts: &'a [ListedItem],
    pub deletes: &'a [String],
}

/// A source folder as the server lists it (name already decoded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFolder {
    /// The full name on the server (what selecting it takes, before encoding).
    pub name: String,
    /// The name relative to the user's root (Courier's UserRoot stripped).
    pub relative: String,
    pub delimiter: Option<char>,
    pub selectable: bool,
    pub content: FolderContent,
}

/// One message as a folder listing shows it, before its bytes are read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemMeta {
    pub uid: u32,
    pub size: u64,
    pub flags: Vec<String>,
    pub date: Option<DateTime<Utc>>,
}

/// What a folder holds, and the validity its UIDs belong to (a change renumbers them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FolderListing {
    pub uid_validity: u32,
    pub items: Vec<ItemMeta>,
    /// The folder's state when it was listed, where the source tells one.
    pub state: Option<FolderState>,
    /// The folder is still in the state it was given as seen: its items were not listed
    /// (`items` is empty).
    pub unchanged: bool,
}

/// A folder's state as an IMAP server with CONDSTORE (RFC 7162) tells it on EXAMINE. Two
/// equal states mean nothing changed between them: a new message raises UIDNEXT, and a flag
/// change or an expunge raises HIGHESTMODSEQ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FolderState {
    pub uid_validity: u32,
    pub uid_next: u32,
    pub exists: u32,
    pub highest_modseq: u64,
}

/// One message with its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceItem {
    pub uid: u32,
    pub flags: Vec<String>,
    pub date: Option<DateTime<Utc>>,
    pub raw: Bytes,
}

/// What became of one requested message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchOutcome {
    Item(SourceItem),
    /// Gone from the source since it was listed.
    Vanished(u32),
    /// Still there, but the server would not return it this time.
    Refused(u32),
    /// The server's reply about it could not be read (why, in a few words).
    Damaged(u32, String),
    /// Not answered through no fault of its own (another message broke the connection): ask
    /// again, alone.
    Retry(u32),
}

/// Why the source could not go on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// The credentials were refused: the user fails with this message.
    #[error("{0}")]
    Authentication(String),
    /// The server asked to wait this long before trying again.
    #[error("{message}")]
    Throttled { wait: Duration, message: String },
    /// A passing fault (a dropped connection, a refused command): reconnect and go on.
    #[error("{0}")]
    Transient(String),
    /// A fault a retry will not fix.
    #[error("{0}")]
    Permanent(String),
    /// The batch was stopped while the source was waited for.
    #[error("stopped")]
    Stopped,
}

/// A mailbox's folders as listed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Folders {
    pub folders: Vec<SourceFolder>,
    /// Listing replies naming a folder whose name cannot be read (as sent, shortened): each
    /// is reported, never dropped without a word.
    pub unreadable: Vec<String>,
}

/// A mailbox at the source, read-only: the pipeline lists folders, lists each folder's items,
/// and fetches them in chunks it bounds.
#[async_trait]
pub trait MailSource: Send {
    /// Every folder of the mailbox under the user's root. A refused or cut listing is an
    /// error, never a shorter list.
    async fn folders(&mut self) -> Result<Folders, SourceError>;
    /// Opens a folder and lists its items (metadata only). `seen`: the folder's state when
    /// its copy last finished with nothing left out; a folder still in that state is not
    /// listed (the listing says `unchanged`).
    async fn list(
        &mut self,
        folder: &SourceFolder,
        seen: Option<FolderState>,
    ) -> Result<FolderListing, SourceError>;
    /// Opens a folder for fetching; returns its UID validity now.
    async fn open(&mut self, folder: &SourceFolder) -> Result<u32, SourceError>;
    /// Fetches messages of the open folder, one outcome per requested UID.
    /// The items are as the listing showed them: a source may take their flags and dates from
    /// there and ask only for the bodies.
    async fn fetch(&mut self, items: &[ItemMeta]) -> Result<Vec<FetchOutcome>, SourceError>;
    /// The UIDs the fetch after the next one will ask for: a source that can pipelines them
    /// (sends that fetch before reading the next one's answer). Only a hint: a fetch of other
    /// UIDs, or any other command, goes on as if it had not been given.
    fn ask_ahead(&mut self, _items: &[ItemMeta]) {}
    /// Ends the session politely.
    async fn close(&mut self);
}

/// Logs in to the source an endpoint names: an IMAP server as `credential`, an Exchange
/// mailbox (`mailbox`) as the endpoint's admin. `timeout` bounds every wait for the server;
/// `stop` (a batch being stopped) interrupts one; `ids` keeps string item ids' UIDs.
pub async fn open(
    settings: &SourceSettings,
    mailbox: &str,
    credential: &Credential,
    timeout: Duration,
    stop: Option<tokio::sync::watch::Receiver<bool>>,
    ids: std::sync::Arc<dyn ItemIds>,
) -> Result<Box<dyn MailSource>, SourceError> {
    match settings {
        SourceSettings::Imap(s) => Ok(Box::new(
            imap::ImapSource::login(s, credential, timeout, stop).await?,
        )),
        SourceSettings::ExchangeOutlookAnywhere(s) => Ok(Box::new(
            ews::EwsSource::login(s, mailbox, timeout, stop, ids).await?,
        )),
    }
}
