//! The in-process tenant: directory, mailboxes, and the rules an import must pass.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::clock::{Clock, SystemClock};
use crate::config::TenantConfig;
use crate::error::Error;
use crate::model::{
    DEFAULT_MAX_MESSAGE_SIZE, FlagUpdate, FolderInfo, ImportOutcome, ImportRequest, ItemFlags,
    ItemInfo, ItemKind, Recipient, RecipientInfo, RecipientKind, Rejection, WellKnown,
};
use crate::persist::{Db, ItemRow};
use crate::throttle::{Buckets, ThrottleConfig};

/// Tenant-wide settings (saved with an on-disk tenant).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub accepted_domains: Vec<String>,
    pub max_message_size: u64,
    pub directory_sync: bool,
    pub seed: u64,
    pub transient_error_rate: f64,
    pub lost_ack_rate: f64,
    pub delay_ms: u64,
    pub messages_per_second: f64,
    pub bytes_per_second: f64,
    pub tenant_messages_per_second: f64,
    pub tenant_bytes_per_second: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            accepted_domains: Vec::new(),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            directory_sync: false,
            seed: 0,
            transient_error_rate: 0.0,
            lost_ack_rate: 0.0,
            delay_ms: 0,
            messages_per_second: 0.0,
            bytes_per_second: 0.0,
            tenant_messages_per_second: 0.0,
            tenant_bytes_per_second: 0.0,
        }
    }
}

impl Settings {
    pub fn throttle(&mut self, t: &ThrottleConfig) {
        self.messages_per_second = t.messages_per_second;
        self.bytes_per_second = t.bytes_per_second;
        self.tenant_messages_per_second = t.tenant_messages_per_second;
        self.tenant_bytes_per_second = t.tenant_bytes_per_second;
    }
}

struct Item {
    info: ItemInfo,
    /// The bytes, unless they live only in the database.
    mime: Option<Bytes>,
}

struct Folder {
    path: String,
    well_known: Option<WellKnown>,
}

struct Mailbox {
    /// Lower-cased path -> folder (paths compare case-insensitively, as in Exchange).
    folders: BTreeMap<String, Folder>,
    items: BTreeMap<String, Item>,
    by_source_key: HashMap<String, String>,
    used_bytes: u64,
    buckets: Buckets,
}

pub(crate) struct State {
    pub(crate) settings: Settings,
    pub(crate) recipients: Vec<Recipient>,
    /// Lower-cased address and aliases -> index in `recipients` (the first that answers to
    /// it): a lookup per import must not scan a 50,000-recipient tenant.
    by_address: HashMap<String, usize>,
    /// By lower-cased primary address.
    mailboxes: HashMap<String, Mailbox>,
    tenant_buckets: Buckets,
    next_id: u64,
    pub(crate) rng: ChaCha8Rng,
}

struct Inner {
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
    db: Option<Mutex<Db>>,
}

/// A fake Exchange Online tenant. Cheap to clone; clones share the tenant.
#[derive(Clone)]
pub struct Tenant {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Tenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenant").finish_non_exhaustive()
    }
}

/// Splits and checks a folder path; maps a well-known root name to its canonical spelling.
pub fn normalize_folder(path: &str) -> Result<(String, Option<WellKnown>), String> {
    let parts: Vec<&str> = path.split('/').collect();
    if parts.iter().any(|p| p.trim().is_empty()) {
        return Err(format!("folder path {path:?} has an empty level"));
    }
    // Exchange's folder names hold no control characters, and `.`/`..` are not names.
    if let Some(p) = parts.iter().find(|p| matches!(p.trim(), "." | "..")) {
        return Err(format!(
            "folder path {path:?} has a level {p:?}, which is not a name"
        ));
    }
    if path.chars().any(char::is_control) {
        return Err(format!(
            "folder path {:?} holds a control character",
            path.escape_debug().to_string()
        ));
    }
    let mut parts: Vec<String> = parts.iter().map(|p| p.to_string()).collect();
    let mut well_known = None;
    for wk in WellKnown::ALL {
        if parts[0].eq_ignore_ascii_case(wk.display_name()) {
            parts[0] = wk.display_name().to_string();
            if parts.len() == 1 {
                well_known = Some(wk);
            }
        }
    }
    Ok((parts.join("/"), well_known))
}

/// Calendar items live under Calendar, contacts under Contacts, mail anywhere else (as in
/// Exchange, where a folder's class decides what it holds).
pub fn kind_fits_folder(kind: ItemKind, path: &str) -> Result<(), String> {
    let top = path.split('/').next().unwrap_or("");
    let holds = WellKnown::ALL
        .into_iter()
        .find(|wk| wk.display_name().eq_ignore_ascii_case(top))
        .map_or(ItemKind::Mail, WellKnown::item_kind);
    if holds == kind {
        Ok(())
    } else {
        Err(format!(
            "a {} item cannot go into {path:?}, which holds {} items",
            kind.name(),
            holds.name()
        ))
    }
}

impl Mailbox {
    fn new(buckets: Buckets) -> Self {
        let mut folders = BTreeMap::new();
        for wk in WellKnown::ALL {
            folders.insert(
                wk.display_name().to_ascii_lowercase(),
                Folder {
                    path: wk.display_name().to_string(),
                    well_known: Some(wk),
                },
            );
        }
        Self {
            folders,
            items: BTreeMap::new(),
            by_source_key: HashMap::new(),
            used_bytes: 0,
            buckets,
        }
    }

    /// Creates a folder and its parents; returns the canonical path and the new paths.
    fn ensure_folder(&mut self, path: &str) -> Result<(String, Vec<String>), String> {
        let (path, _) = normalize_folder(path)?;
        let mut created = Vec::new();
        let parts: Vec<&str> = path.split('/').collect();
        let mut canonical = Vec::new();
        for depth in 1..=parts.len() {
            let prefix = parts[..depth].join("/");
            let key = prefix.to_ascii_lowercase();
            match self.folders.get(&key) {
                Some(f) => canonical = f.path.split('/').map(str::to_string).collect(),
                None => {
                    canonical.push(parts[depth - 1].to_string());
                    let p = canonical.join("/");
                    self.folders.insert(
                        key,
                        Folder {
                            path: p.clone(),
                            well_known: None,
                        },
                    );
                    created.push(p);
                }
            }
        }
        Ok((canonical.join("/"), created))
    }
}

impl Tenant {
    /// An empty in-memory tenant on the system clock.
    pub fn new(settings: Settings) -> Self {
        Self::with_clock(settings, Arc::new(SystemClock))
    }

    pub fn with_clock(settings: Settings, clock: Arc<dyn Clock>) -> Self {
        Self::build(settings, clock, None)
    }

    fn build(settings: Settings, clock: Arc<dyn Clock>, db: Option<Db>) -> Self {
        let now = clock.now();
        let state = State {
            tenant_buckets: Buckets::new(
                settings.tenant_messages_per_second,
                settings.tenant_bytes_per_second,
                now,
            ),
            rng: ChaCha8Rng::seed_from_u64(settings.seed),
            settings,
            recipients: Vec::new(),
            by_address: HashMap::new(),
            mailboxes: HashMap::new(),
            next_id: 1,
        };
        Self {
            inner: Arc::new(Inner {
                clock,
                state: Mutex::new(state),
                db: db.map(Mutex::new),
            }),
        }
    }

    /// A tenant from its TOML configuration; with `tenant.database` it lives on disk (and a
    /// tenant already in that file is opened, its recipients and mail kept).
    pub fn from_config(config: &TenantConfig, clock: Arc<dyn Clock>) -> Result<Self, Error> {
        let mut settings = Settings {
            accepted_domains: config.tenant.accepted_domains.clone(),
            max_message_size: config.tenant.max_message_size,
            directory_sync: config.tenant.directory_sync,
            seed: config.tenant.seed,
            transient_error_rate: config.tenant.transient_error_rate,
            lost_ack_rate: config.tenant.lost_ack_rate,
            delay_ms: config.tenant.delay_ms,
            ..Settings::default()
        };
        settings.throttle(&config.throttle);
        let tenant = match &config.tenant.database {
            Some(path) => Self::open_with(path, Some(settings), clock.clone())?,
            None => Self::with_clock(settings, clock.clone()),
        };
        let now = clock.now();
        for (i, m) in config.mailboxes.iter().enumerate() {
            if tenant.recipient(&m.address).is_some() {
                continue; // kept from an earlier run of an on-disk tenant
            }
            let mut r = Recipient::mailbox(&m.address, m.licensed, m.grace_started.unwrap_or(now));
            r.enabled = m.enabled;
            r.aliases = m.aliases.clone();
            r.quota_bytes = m.quota_bytes;
            tenant
                .add_recipient(r)
                .map_err(|e| Error::Invalid(format!("mailboxes[{i}] ({}): {e}", m.address)))?;
        }
        for (i, rs) in config.recipients.iter().enumerate() {
            if tenant.recipient(&rs.address).is_some() {
                continue;
            }
            let kind = match rs.kind.as_str() {
                "roomMailbox" => RecipientKind::RoomMailbox,
                "equipmentMailbox" => RecipientKind::EquipmentMailbox,
                "mailUser" => RecipientKind::MailUser,
                "mailContact" => RecipientKind::MailContact,
                "distributionGroup" => RecipientKind::DistributionGroup {
                    members: rs.members.clone(),
                },
                "mailEnabledSecurityGroup" => RecipientKind::MailEnabledSecurityGroup {
                    members: rs.members.clone(),
                },
                other => {
                    return Err(Error::Invalid(format!(
                        "recipients[{i}].kind: unknown kind {other:?} (roomMailbox, \
                         equipmentMailbox, mailUser, mailContact, distributionGroup, \
                         mailEnabledSecurityGroup)"
                    )));
                }
            };
            let mut r = Recipient::mailbox(&rs.address, false, now);
            r.kind = kind;
            tenant
                .add_recipient(r)
                .map_err(|e| Error::Invalid(format!("recipients[{i}] ({}): {e}", rs.address)))?;
        }
        Ok(tenant)
    }

    /// Opens an on-disk tenant; `settings` replaces the saved ones when given.
    pub fn open_with(
        path: &Path,
        settings: Option<Settings>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, Error> {
        let db = Db::open(path)?;
        let saved: Option<Settings> = db
            .meta("settings")?
            .map(|s| serde_json::from_str(&s))
            .transpose()
            .map_err(|e| Error::Storage(format!("saved settings: {e}")))?;
        let settings = settings.or(saved).unwrap_or_default();
        db.set_meta(
            "settings",
            &serde_json::to_string(&settings).expect("settings serialize"),
        )?;
        let recipients = db.recipients()?;
        let folders = db.folders()?;
        let items = db.items()?;
        // Ids never repeat, even if the saved counter lagged behind (older files).
        let next_id: u64 = db
            .meta("next_id")?
            .and_then(|v| v.parse().ok())
            .unwrap_or(1)
            .max(db.max_item_number()? + 1);
        let tenant = Self::build(settings, clock, Some(db));
        {
            let now = tenant.now();
            let mut st = tenant.state();
            st.next_id = next_id;
            for r in recipients {
                st.add_loaded(r, now);
            }
            for (mailbox, path) in folders {
                if let Some(m) = st.mailboxes.get_mut(&mailbox) {
                    let _ = m.ensure_folder(&path);
                }
            }
            for row in items {
                if let Some(m) = st.mailboxes.get_mut(&row.mailbox) {
                    m.used_bytes += row.size;
                    m.by_source_key
                        .insert(row.source_key.clone(), row.id.clone());
                    m.items.insert(
                        row.id.clone(),
                        Item {
                            info: ItemInfo {
                                id: row.id,
                                folder: row.folder,
                                source_key: row.source_key,
                                size: row.size,
                                received_time: row.received,
                                flags: row.flags.to_imap(),
                                kind: row.kind,
                            },
                            mime: None,
                        },
                    );
                }
            }
        }
        Ok(tenant)
    }

    /// Opens an on-disk tenant with its saved settings.
    pub fn open(path: &Path, clock: Arc<dyn Clock>) -> Result<Self, Error> {
        Self::open_with(path, None, clock)
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn db(&self) -> Option<MutexGuard<'_, Db>> {
        self.inner
            .db
            .as_ref()
            .map(|d| d.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    pub fn settings(&self) -> Settings {
        self.state().settings.clone()
    }

    /// Adds a recipient; its domain must be accepted and its addresses unused.
    pub fn add_recipient(&self, recipient: Recipient) -> Result<(), Error> {
        let now = self.now();
        let mut st = self.state();
        for addr in std::iter::once(&recipient.address).chain(&recipient.aliases) {
            let domain = addr
                .rsplit_once('@')
                .map(|(_, d)| d)
                .filter(|d| !d.is_empty())
                .ok_or_else(|| Error::Invalid(format!("{addr:?} is not an email address")))?;
            if !st
                .settings
                .accepted_domains
                .iter()
                .any(|a| a.eq_ignore_ascii_case(domain))
            {
                return Err(Error::Invalid(format!(
                    "the domain of {addr} is not an accepted domain of the tenant"
                )));
            }
            if st.find(addr).is_some() {
                return Err(Error::Invalid(format!("{addr} is already in use")));
            }
        }
        if let Some(db) = self.db() {
            db.save_recipient(&recipient)?;
        }
        st.add_loaded(recipient, now);
        Ok(())
    }

    pub fn recipient(&self, address: &str) -> Option<Recipient> {
        let st = self.state();
        st.find(address).map(|i| st.recipients[i].clone())
    }

    fn update_recipient(&self, address: &str, f: impl FnOnce(&mut Recipient)) -> Result<(), Error> {
        let mut st = self.state();
        let i = st
            .find(address)
            .ok_or_else(|| Error::NoSuchRecipient(address.to_string()))?;
        f(&mut st.recipients[i]);
        st.index(i);
        if let Some(db) = self.db() {
            db.save_recipient(&st.recipients[i])?;
        }
        Ok(())
    }

    /// Assigns or removes a licence. Removing one starts the 30-day grace now.
    pub fn set_licensed(&self, address: &str, licensed: bool) -> Result<(), Error> {
        let now = self.now();
        self.update_recipient(address, |r| {
            if r.licensed && !licensed {
                r.grace_started = now;
            }
            r.licensed = licensed;
        })
    }

    pub fn set_enabled(&self, address: &str, enabled: bool) -> Result<(), Error> {
        self.update_recipient(address, |r| r.enabled = enabled)
    }

    pub fn set_quota(&self, address: &str, quota_bytes: Option<u64>) -> Result<(), Error> {
        self.update_recipient(address, |r| r.quota_bytes = quota_bytes)
    }

    pub fn recipients(&self) -> Vec<RecipientInfo> {
        let now = self.now();
        let st = self.state();
        st.recipients
            .iter()
            .map(|r| {
                let m = st.mailboxes.get(&r.address.to_ascii_lowercase());
                RecipientInfo {
                    address: r.address.clone(),
                    aliases: r.aliases.clone(),
                    kind: r.kind.name().to_string(),
                    licensed: r.licensed,
                    enabled: r.active_at(now),
                    quota_bytes: r.quota_bytes,
                    used_bytes: m.map_or(0, |m| m.used_bytes),
                    item_count: m.map_or(0, |m| m.items.len() as u64),
                }
            })
            .collect()
    }

    /// The mailbox key of an address, if it names a user mailbox.
    fn mailbox_key(st: &State, address: &str) -> Option<String> {
        st.mailbox(address).map(|r| r.address.to_ascii_lowercase())
    }

    pub fn create_folder(&self, address: &str, path: &str) -> Result<String, Error> {
        let mut st = self.state();
        let key = Self::mailbox_key(&st, address)
            .ok_or_else(|| Error::NoSuchRecipient(address.to_string()))?;
        let mailbox = st
            .mailboxes
            .get_mut(&key)
            .expect("user mailboxes have content");
        let (canonical, created) = mailbox
            .ensure_folder(path)
            .map_err(|e| Error::InvalidFolder(path.to_string(), e))?;
        if let Some(db) = self.db() {
            for p in created {
                db.save_folder(&key, &p)?;
            }
        }
        Ok(canonical)
    }

    pub fn folders(&self, address: &str) -> Result<Vec<FolderInfo>, Error> {
        let st = self.state();
        let key = Self::mailbox_key(&st, address)
            .ok_or_else(|| Error::NoSuchRecipient(address.to_string()))?;
        let m = &st.mailboxes[&key];
        let mut counts: HashMap<String, u64> = HashMap::new();
        for item in m.items.values() {
            *counts
                .entry(item.info.folder.to_ascii_lowercase())
                .or_default() += 1;
        }
        Ok(m.folders
            .iter()
            .map(|(k, f)| FolderInfo {
                path: f.path.clone(),
                well_known_name: f.well_known.map(|w| w.api_name().to_string()),
                item_count: counts.get(k).copied().unwrap_or(0),
            })
            .collect())
    }

    /// Imports one message (see the crate docs for the order of the rules).
    pub async fn import(
        &self,
        address: &str,
        request: &ImportRequest,
        mime: Bytes,
    ) -> Result<ImportOutcome, Error> {
        self.delay().await;
        let mut outcomes = self.import_now(address, &[(request, &mime)]);
        Ok(outcomes.pop().expect("one outcome per message"))
    }

    /// Imports messages in order as one call: each passes the rules of [`Tenant::import`] on
    /// its own (a refused or throttled one costs itself only), and those accepted are written
    /// in one transaction, acknowledged only once it committed.
    pub async fn import_many(
        &self,
        address: &str,
        batch: &[(ImportRequest, Bytes)],
    ) -> Vec<ImportOutcome> {
        let batch_len = batch.len();
        self.delay().await;
        // The writes block (SQLite): off the caller's task, so what it does meanwhile (the
        // engine fetches the next chunk) goes on.
        let tenant = self.clone();
        let address = address.to_string();
        let batch = batch.to_vec();
        let work = tokio::task::spawn_blocking(move || {
            let batch: Vec<(&ImportRequest, &Bytes)> = batch.iter().map(|(r, m)| (r, m)).collect();
            tenant.import_now(&address, &batch)
        });
        match work.await {
            Ok(outcomes) => outcomes,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // The runtime is shutting down: nothing is acknowledged.
            Err(_) => vec![ImportOutcome::Transient("The tenant stopped.".into()); batch_len],
        }
    }

    async fn delay(&self) {
        let delay = self.state().settings.delay_ms;
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
    }

    fn import_now(&self, address: &str, batch: &[(&ImportRequest, &Bytes)]) -> Vec<ImportOutcome> {
        let now = self.now();
        let keep_bytes = self.inner.db.is_none();
        let mut st = self.state();
        let first_id = st.next_id;
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut staged = Vec::new();
        for (request, mime) in batch {
            match st.stage(address, request, mime, now, keep_bytes) {
                Ok(s) => {
                    outcomes.push(ImportOutcome::Created(s.row.id.clone()));
                    staged.push((outcomes.len() - 1, s));
                }
                Err(outcome) => outcomes.push(outcome),
            }
        }
        if staged.is_empty() {
            return outcomes;
        }
        if let Some(db) = self.db() {
            // The database is the truth for an on-disk tenant: write it before acknowledging.
            let rows: Vec<_> = staged
                .iter()
                .map(|(i, s)| (&s.created[..], &s.row, &batch[*i].1[..]))
                .collect();
            if let Err(e) = db.insert_items(&rows, st.next_id) {
                // Nothing of it was written: undo it in memory, and say so.
                let ids: std::collections::HashSet<String> =
                    staged.iter().map(|(_, s)| s.row.id.clone()).collect();
                for (_, s) in &staged {
                    st.unstage(s);
                }
                st.next_id = first_id;
                for o in &mut outcomes {
                    if matches!(o, ImportOutcome::Created(id) | ImportOutcome::AlreadyPresent(id) if ids.contains(id))
                    {
                        *o = ImportOutcome::Transient(format!("storage error: {e}"));
                    }
                }
                return outcomes;
            }
        }
        for (i, s) in staged {
            if s.ack_lost {
                // Written, but the caller never hears so: its retry must find it.
                outcomes[i] = ImportOutcome::Transient("The connection was reset.".into());
            }
        }
        outcomes
    }

    /// Re-applies flags to the item imported with `source_key`.
    pub fn update_flags(
        &self,
        address: &str,
        source_key: &str,
        flags: &ItemFlags,
    ) -> Result<FlagUpdate, Error> {
        let mut st = self.state();
        let key = Self::mailbox_key(&st, address)
            .ok_or_else(|| Error::NoSuchRecipient(address.to_string()))?;
        let m = st
            .mailboxes
            .get_mut(&key)
            .expect("user mailboxes have content");
        let Some(id) = m.by_source_key.get(source_key).cloned() else {
            return Ok(FlagUpdate::NotFound);
        };
        let item = m.items.get_mut(&id).expect("indexed");
        let new = flags.to_imap();
        if item.info.flags == new {
            return Ok(FlagUpdate::Unchanged);
        }
        if let Some(db) = self.db() {
            db.update_flags(&id, flags)?;
        }
        item.info.flags = new;
        Ok(FlagUpdate::Updated)
    }

    /// Items with metadata, in import order; only one folder's when `folder` is given.
    pub fn items(&self, address: &str, folder: Option<&str>) -> Result<Vec<ItemInfo>, Error> {
        let st = self.state();
        let key = Self::mailbox_key(&st, address)
            .ok_or_else(|| Error::NoSuchRecipient(address.to_string()))?;
        let folder = match folder {
            Some(f) => Some(
                normalize_folder(f)
                    .map_err(|e| Error::InvalidFolder(f.to_string(), e))?
                    .0
                    .to_ascii_lowercase(),
            ),
            None => None,
        };
        Ok(st.mailboxes[&key]
            .items
            .values()
            .filter(|i| {
                folder
                    .as_ref()
                    .is_none_or(|f| i.info.folder.to_ascii_lowercase() == *f)
            })
            .map(|i| i.info.clone())
            .collect())
    }

    /// The exact bytes of an item.
    pub fn item_bytes(&self, address: &str, id: &str) -> Result<Bytes, Error> {
        {
            let st = self.state();
            let key = Self::mailbox_key(&st, address)
                .ok_or_else(|| Error::NoSuchRecipient(address.to_string()))?;
            let item = st.mailboxes[&key]
                .items
                .get(id)
                .ok_or_else(|| Error::NoSuchItem(id.to_string()))?;
            if let Some(mime) = &item.mime {
                return Ok(mime.clone());
            }
        }
        match self.db() {
            Some(db) => db.mime(id),
            None => Err(Error::NoSuchItem(id.to_string())),
        }
    }
}

/// An import accepted in memory, to be written (and then acknowledged).
struct Staged {
    /// The folders it needed that did not exist yet.
    created: Vec<String>,
    row: ItemRow,
    /// The fault settings chose to lose this acknowledgement.
    ack_lost: bool,
}

impl State {
    /// Passes one import through the rules (see the crate docs for their order); an accepted
    /// one is applied in memory and returned for writing, any other answer is the outcome.
    fn stage(
        &mut self,
        address: &str,
        request: &ImportRequest,
        mime: &Bytes,
        now: DateTime<Utc>,
        keep_bytes: bool,
    ) -> Result<Staged, ImportOutcome> {
        let Some(recipient) = self.mailbox(address).cloned() else {
            return Err(ImportOutcome::Rejected(Rejection::NoSuchRecipient));
        };
        if !recipient.active_at(now) {
            return Err(ImportOutcome::Rejected(Rejection::MailboxDisabled));
        }
        let size = mime.len() as u64;
        let max = self.settings.max_message_size;
        if size > max {
            return Err(ImportOutcome::Rejected(Rejection::TooLarge { size, max }));
        }
        let key = recipient.address.to_ascii_lowercase();
        // Idempotence comes before throttling: a retry of a landed import is cheap and sure.
        if let Some(id) = self.mailboxes[&key].by_source_key.get(&request.source_key) {
            return Err(ImportOutcome::AlreadyPresent(id.clone()));
        }
        let invalid = |message| ImportOutcome::Rejected(Rejection::InvalidFolder { message });
        let (path, _) = normalize_folder(&request.folder).map_err(invalid)?;
        kind_fits_folder(request.kind, &path).map_err(invalid)?;
        let State {
            mailboxes,
            tenant_buckets,
            rng,
            settings,
            next_id,
            ..
        } = self;
        let mailbox = mailboxes
            .get_mut(&key)
            .expect("user mailboxes have content");
        let wait = mailbox
            .buckets
            .wait_for(size, now)
            .max(tenant_buckets.wait_for(size, now));
        if !wait.is_zero() {
            return Err(ImportOutcome::Throttled(wait));
        }
        if settings.transient_error_rate > 0.0 && rng.random_bool(settings.transient_error_rate) {
            return Err(ImportOutcome::Transient(
                "The server is busy. Try again later.".into(),
            ));
        }
        if let Some(quota) = recipient.quota_bytes
            && mailbox.used_bytes + size > quota
        {
            return Err(ImportOutcome::Rejected(Rejection::QuotaExceeded));
        }
        let (folder, created) = mailbox.ensure_folder(&request.folder).map_err(invalid)?;
        let id = format!("AAMk{:010}", *next_id);
        *next_id += 1;
        let info = ItemInfo {
            id: id.clone(),
            folder,
            source_key: request.source_key.clone(),
            size,
            received_time: request.received_time.unwrap_or(now),
            flags: request.flags.to_imap(),
            kind: request.kind,
        };
        let row = ItemRow {
            id: id.clone(),
            mailbox: key,
            folder: info.folder.clone(),
            source_key: info.source_key.clone(),
            received: info.received_time,
            flags: request.flags.clone(),
            kind: info.kind,
            size,
        };
        mailbox.buckets.take(size);
        tenant_buckets.take(size);
        mailbox.used_bytes += size;
        mailbox
            .by_source_key
            .insert(request.source_key.clone(), id.clone());
        let mime = keep_bytes.then(|| mime.clone());
        mailbox.items.insert(id, Item { info, mime });
        let ack_lost = settings.lost_ack_rate > 0.0 && rng.random_bool(settings.lost_ack_rate);
        Ok(Staged {
            created,
            row,
            ack_lost,
        })
    }

    /// Takes back a staged import whose write failed, with the folders it made (their rows
    /// went with its transaction: kept in memory, they would never be saved).
    fn unstage(&mut self, s: &Staged) {
        if let Some(m) = self.mailboxes.get_mut(&s.row.mailbox) {
            m.items.remove(&s.row.id);
            m.by_source_key.remove(&s.row.source_key);
            m.used_bytes -= s.row.size;
            for path in &s.created {
                m.folders.remove(&path.to_ascii_lowercase());
            }
        }
    }

    pub(crate) fn add_loaded(&mut self, r: Recipient, now: DateTime<Utc>) {
        if r.kind.has_mailbox() {
            self.mailboxes.insert(
                r.address.to_ascii_lowercase(),
                Mailbox::new(Buckets::new(
                    self.settings.messages_per_second,
                    self.settings.bytes_per_second,
                    now,
                )),
            );
        }
        self.recipients.push(r);
        self.index(self.recipients.len() - 1);
    }

    /// Indexes the addresses recipient `i` answers to (an earlier recipient keeps a shared
    /// address, as a scan in order would find it first).
    pub(crate) fn index(&mut self, i: usize) {
        let r = &self.recipients[i];
        for a in std::iter::once(&r.address).chain(r.aliases.iter()) {
            self.by_address.entry(a.to_ascii_lowercase()).or_insert(i);
        }
    }

    pub(crate) fn find(&self, address: &str) -> Option<usize> {
        let i = *self.by_address.get(&address.to_ascii_lowercase())?;
        // An alias removed since it was indexed no longer answers.
        self.recipients[i].answers_to(address).then_some(i)
    }

    /// The user mailbox an address names (the first recipient answering to it must be one,
    /// as with a scan that looks for a mailbox among all that answer).
    fn mailbox(&self, address: &str) -> Option<&Recipient> {
        match self.find(address) {
            Some(i) if self.recipients[i].kind.has_mailbox() => Some(&self.recipients[i]),
            Some(_) => self
                .recipients
                .iter()
                .find(|r| r.answers_to(address) && r.kind.has_mailbox()),
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_paths_normalize() {
        assert_eq!(
            normalize_folder("inbox").unwrap(),
            ("Inbox".into(), Some(WellKnown::Inbox))
        );
        assert_eq!(
            normalize_folder("SENT ITEMS/2019").unwrap(),
            ("Sent Items/2019".into(), None)
        );
        assert!(normalize_folder("a//b").is_err());
        assert!(normalize_folder("").is_err());
    }
}
