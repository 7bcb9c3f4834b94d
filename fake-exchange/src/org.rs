//! The organisation: its directory (recipients with Active Directory's attributes), its admin
//! accounts and rights, and every mailbox's folders and items with the change counters the
//! sync states of EWS are made from.
//!
//! One `Organisation` behind a mutex is shared by the three faces (Autodiscover, LDAP, EWS) and
//! by the test handle, so a change made through the handle is what the next sync returns.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::config::{
    AdminSection, CertificateKind, Config, RecipientKind, RecipientSection, ServerRole,
};
use crate::error::Error;
use crate::generate;

/// Exchange's version as EWS reports it in `ServerVersionInfo`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExchangeVersion {
    pub major: u32,
    pub minor: u32,
    pub build: u32,
    pub minor_build: u32,
    /// The `Version` attribute (the schema name).
    pub schema: &'static str,
    /// Concurrent EWS connections per account (EWSMaxConcurrency).
    pub connection_limit: usize,
}

impl ExchangeVersion {
    pub fn parse(name: &str) -> Result<Self, Error> {
        Ok(match name {
            "2010" => Self {
                major: 14,
                minor: 3,
                build: 123,
                minor_build: 4,
                schema: "Exchange2010_SP2",
                connection_limit: 10,
            },
            "2013" => Self {
                major: 15,
                minor: 0,
                build: 1497,
                minor_build: 2,
                schema: "V2_23",
                connection_limit: 27,
            },
            "2016" => Self {
                major: 15,
                minor: 1,
                build: 2507,
                minor_build: 6,
                schema: "V2017_07_11",
                connection_limit: 27,
            },
            "2019" => Self {
                major: 15,
                minor: 2,
                build: 1118,
                minor_build: 7,
                schema: "V2017_07_11",
                connection_limit: 27,
            },
            other => {
                return Err(Error::Config(format!(
                    "organisation.exchange_version: `{other}` is not one of 2010, 2013, 2016, 2019"
                )));
            }
        })
    }

    /// Autodiscover's `ServerVersion`: the packed hexadecimal form Outlook reads.
    pub fn packed_hex(&self) -> String {
        let v = (0b0111u32 << 28)
            | (self.major << 22)
            | (self.minor << 16)
            | (1 << 15)
            | (self.build & 0x7fff);
        format!("{v:08X}")
    }
}

#[derive(Clone, Debug)]
pub struct Server {
    pub name: String,
    pub roles: Vec<ServerRole>,
}

#[derive(Clone, Debug)]
pub struct Database {
    pub name: String,
    pub server: String,
}

#[derive(Clone, Debug)]
pub struct Admin {
    pub address: String,
    pub password: String,
    pub domain_admins: bool,
    pub impersonation: bool,
    pub full_access: Vec<String>,
    pub receive_as: Vec<String>,
}

/// A directory entry, with what NSPI and LDAP expose of it.
#[derive(Clone, Debug)]
pub struct Recipient {
    pub kind: RecipientKind,
    /// The primary SMTP address (none for a broken GAL entry).
    pub address: Option<String>,
    pub alias: String,
    pub display_name: String,
    /// As AD stores them, primary first (`SMTP:`), then the rest.
    pub proxy_addresses: Vec<String>,
    pub legacy_dn: String,
    pub hidden: bool,
    pub manager: Option<String>,
    pub delegates: Vec<String>,
    pub managed_by: Vec<String>,
    pub members: Vec<String>,
    pub um_enabled: bool,
    pub database: Option<String>,
    pub target_address: Option<String>,
    pub password: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub title: Option<String>,
    pub department: Option<String>,
    pub phone: Option<String>,
}

impl Recipient {
    /// The common name of its distinguished name (the display name, as AD makes it).
    pub fn cn(&self) -> &str {
        &self.display_name
    }

    pub fn smtp_addresses(&self) -> impl Iterator<Item = &str> {
        self.proxy_addresses.iter().filter_map(|p| {
            p.strip_prefix("SMTP:")
                .or_else(|| p.strip_prefix("smtp:"))
                .map(str::trim)
        })
    }

    pub fn answers_to(&self, address: &str) -> bool {
        self.smtp_addresses()
            .any(|a| a.eq_ignore_ascii_case(address))
    }
}

/// The kind of a folder's items (its FolderClass).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FolderClass {
    Mail,
    Calendar,
    Contacts,
    Tasks,
    Notes,
    /// The roots, which hold folders only.
    Root,
}

impl FolderClass {
    pub fn ipf(self) -> &'static str {
        match self {
            FolderClass::Mail | FolderClass::Root => "IPF.Note",
            FolderClass::Calendar => "IPF.Appointment",
            FolderClass::Contacts => "IPF.Contact",
            FolderClass::Tasks => "IPF.Task",
            FolderClass::Notes => "IPF.StickyNote",
        }
    }

    /// The EWS element of a folder of this class.
    pub fn element(self) -> &'static str {
        match self {
            FolderClass::Mail | FolderClass::Root | FolderClass::Notes => "Folder",
            FolderClass::Calendar => "CalendarFolder",
            FolderClass::Contacts => "ContactsFolder",
            FolderClass::Tasks => "TasksFolder",
        }
    }
}

/// The kind of an item, which decides its MIME form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItemKind {
    /// RFC 5322.
    Message,
    /// iCalendar.
    Event,
    /// vCard.
    Contact,
}

impl ItemKind {
    pub fn element(self) -> &'static str {
        match self {
            ItemKind::Message => "Message",
            ItemKind::Event => "CalendarItem",
            ItemKind::Contact => "Contact",
        }
    }

    pub fn item_class(self) -> &'static str {
        match self {
            ItemKind::Message => "IPM.Note",
            ItemKind::Event => "IPM.Appointment",
            ItemKind::Contact => "IPM.Contact",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Item {
    pub id: u64,
    pub kind: ItemKind,
    pub subject: String,
    pub mime: Bytes,
    pub received: DateTime<Utc>,
    pub is_read: bool,
    /// Change counters of the mailbox when the item was created, when its content last
    /// changed, and when its read flag last changed.
    pub created_seq: u64,
    pub content_seq: u64,
    pub read_seq: u64,
    /// Fault: GetItem answers ErrorItemCorrupt / ErrorContentConversionFailed.
    pub broken: Option<&'static str>,
}

#[derive(Clone, Debug)]
pub struct Folder {
    pub id: u32,
    pub parent: Option<u32>,
    pub name: String,
    pub class: FolderClass,
    /// EWS's DistinguishedFolderId name, for well-known folders.
    pub well_known: Option<&'static str>,
    pub created_seq: u64,
    pub changed_seq: u64,
    pub items: BTreeMap<u64, Item>,
    /// Deleted items: (id, change counter of the deletion).
    pub tombstones: Vec<(u64, u64)>,
}

impl Folder {
    pub fn unread(&self) -> usize {
        self.items.values().filter(|i| !i.is_read).count()
    }
}

/// The well-known folders of every mailbox: (DistinguishedFolderId, display name, class, parent).
/// `root` is the mailbox's root, `msgfolderroot` the top of the information store.
pub const WELL_KNOWN: &[(&str, &str, FolderClass)] = &[
    ("inbox", "Inbox", FolderClass::Mail),
    ("sentitems", "Sent Items", FolderClass::Mail),
    ("deleteditems", "Deleted Items", FolderClass::Mail),
    ("drafts", "Drafts", FolderClass::Mail),
    ("junkemail", "Junk Email", FolderClass::Mail),
    ("outbox", "Outbox", FolderClass::Mail),
    ("calendar", "Calendar", FolderClass::Calendar),
    ("contacts", "Contacts", FolderClass::Contacts),
    ("tasks", "Tasks", FolderClass::Tasks),
    ("notes", "Notes", FolderClass::Notes),
];

#[derive(Clone, Debug)]
pub struct Mailbox {
    pub folders: Vec<Folder>,
    /// The mailbox's change counter: every change takes the next value.
    pub seq: u64,
    pub next_item: u64,
    /// Fault: EWS answers ErrorMailboxMoveInProgress.
    pub moving: bool,
    /// Part of every item sync state's scope: bumped, it makes every earlier state invalid.
    pub sync_epoch: u64,
}

impl Mailbox {
    fn new() -> Self {
        let mut mailbox = Self {
            folders: Vec::new(),
            seq: 0,
            next_item: 1,
            moving: false,
            sync_epoch: 0,
        };
        mailbox.push_folder(None, "Root", FolderClass::Root, Some("root"));
        mailbox.push_folder(
            Some(0),
            "Top of Information Store",
            FolderClass::Root,
            Some("msgfolderroot"),
        );
        for &(wk, name, class) in WELL_KNOWN {
            mailbox.push_folder(Some(1), name, class, Some(wk));
        }
        mailbox
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn push_folder(
        &mut self,
        parent: Option<u32>,
        name: &str,
        class: FolderClass,
        well_known: Option<&'static str>,
    ) -> u32 {
        let seq = self.next_seq();
        let id = self.folders.len() as u32;
        self.folders.push(Folder {
            id,
            parent,
            name: name.to_string(),
            class,
            well_known,
            created_seq: seq,
            changed_seq: seq,
            items: BTreeMap::new(),
            tombstones: Vec::new(),
        });
        id
    }

    pub fn well_known(&self, name: &str) -> Option<&Folder> {
        self.folders
            .iter()
            .find(|f| f.well_known.is_some_and(|w| w.eq_ignore_ascii_case(name)))
    }

    /// A folder by its path from the top of the information store (`Inbox`, `Projects/2026`),
    /// created (as a mail folder) when `create` and missing.
    pub fn folder_by_path(&mut self, path: &str, create: bool) -> Option<u32> {
        let mut current = 1u32;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            let found = self
                .folders
                .iter()
                .find(|f| f.parent == Some(current) && f.name.eq_ignore_ascii_case(part))
                .map(|f| f.id);
            current = match found {
                Some(id) => id,
                None if create => {
                    let class = self.folders[current as usize].class;
                    let class = if class == FolderClass::Root {
                        FolderClass::Mail
                    } else {
                        class
                    };
                    self.push_folder(Some(current), part, class, None)
                }
                None => return None,
            };
        }
        Some(current)
    }

    pub fn add_item(
        &mut self,
        folder: u32,
        kind: ItemKind,
        subject: String,
        mime: Bytes,
        received: DateTime<Utc>,
        is_read: bool,
    ) -> u64 {
        let seq = self.next_seq();
        let id = self.next_item;
        self.next_item += 1;
        let f = &mut self.folders[folder as usize];
        f.changed_seq = seq;
        f.items.insert(
            id,
            Item {
                id,
                kind,
                subject,
                mime,
                received,
                is_read,
                created_seq: seq,
                content_seq: seq,
                read_seq: seq,
                broken: None,
            },
        );
        id
    }

    /// Depth-first order from `from` (itself excluded), as FindFolder Deep lists.
    pub fn descendants(&self, from: u32) -> Vec<u32> {
        let mut out = Vec::new();
        let mut stack = vec![from];
        while let Some(id) = stack.pop() {
            let children: Vec<u32> = self
                .folders
                .iter()
                .filter(|f| f.parent == Some(id))
                .map(|f| f.id)
                .collect();
            for c in children.iter().rev() {
                stack.push(*c);
            }
            if id != from {
                out.push(id);
            }
        }
        out
    }

    pub fn find_item(&self, id: u64) -> Option<(&Folder, &Item)> {
        self.folders
            .iter()
            .find_map(|f| f.items.get(&id).map(|i| (f, i)))
    }
}

/// The whole organisation's state.
#[derive(Debug)]
pub struct OrgState {
    pub name: String,
    pub primary_domain: String,
    pub accepted_domains: Vec<String>,
    pub netbios: String,
    pub version: ExchangeVersion,
    pub directory_sync: bool,
    pub connection_limit: usize,
    pub certificate: CertificateKind,
    pub servers: Vec<Server>,
    pub databases: Vec<Database>,
    pub admins: Vec<Admin>,
    pub recipients: Vec<Recipient>,
    /// Lower-cased SMTP address (primary or proxy) -> index in `recipients`.
    by_address: HashMap<String, usize>,
    /// Mailboxes by the lower-cased primary address.
    pub mailboxes: HashMap<String, Mailbox>,
    /// Fault: the mailbox database is down (ErrorMailboxStoreUnavailable).
    pub store_unavailable: bool,
}

impl OrgState {
    pub fn from_config(config: &Config) -> Result<Self, Error> {
        let o = &config.organisation;
        let version = ExchangeVersion::parse(&o.exchange_version)?;
        let primary = o.primary_domain.to_ascii_lowercase();
        let mut accepted: Vec<String> = o
            .accepted_domains
            .iter()
            .map(|d| d.to_ascii_lowercase())
            .collect();
        if !accepted.contains(&primary) {
            accepted.insert(0, primary.clone());
        }
        let netbios = o.netbios_name.clone().unwrap_or_else(|| {
            primary
                .split('.')
                .next()
                .unwrap_or("CONTOSO")
                .to_ascii_uppercase()
        });
        let mut servers: Vec<Server> = config
            .servers
            .iter()
            .map(|s| Server {
                name: s.name.to_ascii_lowercase(),
                roles: if s.roles.is_empty() {
                    vec![ServerRole::Ews]
                } else {
                    s.roles.clone()
                },
            })
            .collect();
        if !servers.iter().any(|s| s.roles.contains(&ServerRole::Ews)) {
            servers.push(Server {
                name: format!("mail.{primary}"),
                roles: vec![ServerRole::Ews],
            });
        }
        if !servers.iter().any(|s| s.roles.contains(&ServerRole::Ldap)) {
            servers.push(Server {
                name: format!("dc01.{primary}"),
                roles: vec![ServerRole::Ldap],
            });
        }
        let first_ews = servers
            .iter()
            .find(|s| s.roles.contains(&ServerRole::Ews))
            .map(|s| s.name.clone())
            .unwrap_or_default();
        let mut databases: Vec<Database> = config
            .databases
            .iter()
            .map(|d| Database {
                name: d.name.clone(),
                server: d.server.clone().unwrap_or_else(|| first_ews.clone()),
            })
            .collect();
        if databases.is_empty() {
            databases.push(Database {
                name: "Mailbox Database 01".into(),
                server: first_ews.clone(),
            });
        }
        let mut state = Self {
            name: o.name.clone(),
            primary_domain: primary,
            accepted_domains: accepted,
            netbios,
            version,
            directory_sync: o.directory_sync,
            connection_limit: o.ews_connection_limit.unwrap_or(version.connection_limit),
            certificate: o.certificate,
            servers,
            databases,
            admins: config.admins.iter().map(admin_from).collect(),
            recipients: Vec::new(),
            by_address: HashMap::new(),
            mailboxes: HashMap::new(),
            store_unavailable: false,
        };
        let mut sections: Vec<RecipientSection> = config.recipients.clone();
        if let Some(g) = &config.generate {
            sections.extend(generate::recipients(g, &state.primary_domain, o.seed));
        }
        for section in &sections {
            state.add_recipient(section, config, o.seed)?;
        }
        state.check_links()?;
        Ok(state)
    }

    fn add_recipient(
        &mut self,
        s: &RecipientSection,
        config: &Config,
        seed: u64,
    ) -> Result<(), Error> {
        let address = s.address.as_ref().map(|a| a.trim().to_ascii_lowercase());
        let alias = s.alias.clone().unwrap_or_else(|| {
            address
                .as_deref()
                .and_then(|a| a.split('@').next())
                .unwrap_or("recipient")
                .to_string()
        });
        let display_name = s.display_name.clone().unwrap_or_else(|| alias.clone());
        let legacy_dn = s.legacy_dn.clone().unwrap_or_else(|| {
            format!(
                "/o={}/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn={}",
                self.name, alias
            )
        });
        let mut proxy = Vec::new();
        if let Some(a) = &address {
            proxy.push(format!("SMTP:{a}"));
        }
        proxy.extend(s.proxy_addresses.iter().cloned());
        let database = if s.kind.is_mailbox() {
            Some(
                s.database
                    .clone()
                    .unwrap_or_else(|| self.databases[0].name.clone()),
            )
        } else {
            None
        };
        if let Some(db) = &database
            && !self.databases.iter().any(|d| &d.name == db)
        {
            return Err(Error::Config(format!(
                "recipient {}: database `{db}` is not one of [[databases]]",
                address.as_deref().unwrap_or(&alias)
            )));
        }
        let recipient = Recipient {
            kind: s.kind,
            address: address.clone(),
            alias,
            display_name,
            proxy_addresses: proxy,
            legacy_dn,
            hidden: s.hidden,
            manager: s.manager.as_ref().map(|m| m.to_ascii_lowercase()),
            delegates: lower_all(&s.delegates),
            managed_by: lower_all(&s.managed_by),
            members: lower_all(&s.members),
            um_enabled: s.um_enabled,
            database,
            // A mail user or contact always has an external address (its own by default).
            target_address: s.target_address.clone().or_else(|| {
                matches!(s.kind, RecipientKind::MailUser | RecipientKind::MailContact)
                    .then(|| address.as_ref().map(|a| format!("SMTP:{a}")))
                    .flatten()
            }),
            password: s.password.clone(),
            first_name: s.first_name.clone(),
            last_name: s.last_name.clone(),
            title: s.title.clone(),
            department: s.department.clone(),
            phone: s.phone.clone(),
        };
        let index = self.recipients.len();
        for a in recipient.smtp_addresses() {
            let key = a.to_ascii_lowercase();
            if self.by_address.insert(key.clone(), index).is_some() {
                return Err(Error::Config(format!(
                    "the address {key} belongs to two recipients"
                )));
            }
        }
        if s.kind.is_mailbox()
            && let Some(a) = &address
        {
            let mut mailbox = Mailbox::new();
            let content = s.content.clone().unwrap_or_default();
            generate::fill_mailbox(&mut mailbox, a, &content, seed);
            for item in &s.items {
                add_item_file(&mut mailbox, item, config, a)?;
            }
            self.mailboxes.insert(a.clone(), mailbox);
        }
        self.recipients.push(recipient);
        Ok(())
    }

    /// Links (manager, delegates, owners, members) name recipients that exist.
    fn check_links(&self) -> Result<(), Error> {
        for r in &self.recipients {
            let who = r.address.as_deref().unwrap_or(&r.legacy_dn);
            let links = r
                .manager
                .iter()
                .chain(&r.delegates)
                .chain(&r.managed_by)
                .chain(&r.members);
            for l in links {
                if !self.by_address.contains_key(l) {
                    return Err(Error::Config(format!(
                        "recipient {who}: `{l}` is not a recipient of the organisation"
                    )));
                }
            }
        }
        Ok(())
    }

    pub fn recipient(&self, address: &str) -> Option<&Recipient> {
        self.by_address
            .get(&address.trim().to_ascii_lowercase())
            .map(|&i| &self.recipients[i])
    }

    /// The admin whose credentials these are: the UPN / address, `NETBIOS\user` or `user`.
    pub fn authenticate(&self, username: &str, password: &str) -> Option<Principal> {
        let user = username.trim().to_ascii_lowercase();
        let local = if let Some((domain, u)) = user.split_once('\\') {
            if !domain.eq_ignore_ascii_case(&self.netbios) {
                return None;
            }
            format!("{u}@{}", self.primary_domain)
        } else if user.contains('@') {
            user.clone()
        } else {
            format!("{user}@{}", self.primary_domain)
        };
        if let Some(a) = self.admins.iter().find(|a| a.address == local) {
            return (a.password == password).then(|| Principal::Admin(a.address.clone()));
        }
        let r = self.recipient(&local)?;
        let primary = r.address.clone()?;
        (r.kind.is_mailbox() && r.password.as_deref() == Some(password))
            .then_some(Principal::User(primary))
    }

    /// Whether `who` may open the mailbox `mailbox` (a primary address) without impersonation.
    pub fn may_open(&self, who: &Principal, mailbox: &str) -> bool {
        match who {
            Principal::User(u) => u.eq_ignore_ascii_case(mailbox),
            Principal::Admin(a) => {
                if a.eq_ignore_ascii_case(mailbox) {
                    return true;
                }
                let Some(admin) = self.admins.iter().find(|x| &x.address == a) else {
                    return false;
                };
                if admin.domain_admins
                    || admin
                        .full_access
                        .iter()
                        .any(|m| m.eq_ignore_ascii_case(mailbox))
                {
                    return true;
                }
                let db = self.recipient(mailbox).and_then(|r| r.database.clone());
                db.is_some_and(|db| admin.receive_as.iter().any(|d| d.eq_ignore_ascii_case(&db)))
            }
        }
    }

    pub fn may_impersonate(&self, who: &Principal) -> bool {
        match who {
            Principal::User(_) => false,
            Principal::Admin(a) => self
                .admins
                .iter()
                .any(|x| &x.address == a && x.impersonation),
        }
    }

    /// The primary address of the mailbox an address names, if it is one.
    pub fn mailbox_address(&self, address: &str) -> Option<String> {
        let r = self.recipient(address)?;
        if !r.kind.is_mailbox() {
            return None;
        }
        r.address.clone()
    }

    pub fn ews_server(&self) -> &str {
        self.servers
            .iter()
            .find(|s| s.roles.contains(&ServerRole::Ews))
            .map(|s| s.name.as_str())
            .unwrap_or("mail.contoso.com")
    }

    pub fn ldap_server(&self) -> &str {
        self.servers
            .iter()
            .find(|s| s.roles.contains(&ServerRole::Ldap))
            .map(|s| s.name.as_str())
            .unwrap_or("dc01.contoso.com")
    }

    /// `DC=contoso,DC=com`.
    pub fn base_dn(&self) -> String {
        self.primary_domain
            .split('.')
            .map(|p| format!("DC={p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn admin_dn(&self, admin: &Admin) -> String {
        let cn = admin.address.split('@').next().unwrap_or("Administrator");
        format!(
            "CN={},CN=Users,{}",
            dn_escape(&capitalise(cn)),
            self.base_dn()
        )
    }

    pub fn recipient_dn(&self, r: &Recipient) -> String {
        format!("CN={},CN=Users,{}", dn_escape(r.cn()), self.base_dn())
    }

    pub fn dn_of_address(&self, address: &str) -> Option<String> {
        self.recipient(address).map(|r| self.recipient_dn(r))
    }

    pub fn database_dn(&self, name: &str) -> String {
        format!(
            "CN={},CN=Databases,CN=Exchange Administrative Group (FYDIBOHF23SPDLT),CN=Administrative Groups,CN={},CN=Microsoft Exchange,CN=Services,CN=Configuration,{}",
            dn_escape(name),
            dn_escape(&self.name),
            self.base_dn()
        )
    }

    pub fn mailbox(&self, address: &str) -> Option<&Mailbox> {
        self.mailboxes.get(&address.to_ascii_lowercase())
    }

    pub fn mailbox_mut(&mut self, address: &str) -> Option<&mut Mailbox> {
        self.mailboxes.get_mut(&address.to_ascii_lowercase())
    }
}

/// Who is authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    Admin(String),
    User(String),
}

impl Principal {
    pub fn address(&self) -> &str {
        match self {
            Principal::Admin(a) | Principal::User(a) => a,
        }
    }
}

fn admin_from(a: &AdminSection) -> Admin {
    Admin {
        address: a.address.trim().to_ascii_lowercase(),
        password: a.password.clone(),
        domain_admins: a.domain_admins,
        impersonation: a.impersonation,
        full_access: lower_all(&a.full_access),
        receive_as: a.receive_as.clone(),
    }
}

fn lower_all(v: &[String]) -> Vec<String> {
    v.iter().map(|s| s.trim().to_ascii_lowercase()).collect()
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// RFC 4514 escaping of an attribute value in a DN.
pub fn dn_escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for (i, ch) in v.chars().enumerate() {
        match ch {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=' => {
                out.push('\\');
                out.push(ch);
            }
            '#' if i == 0 => out.push_str("\\#"),
            _ => out.push(ch),
        }
    }
    out
}

fn add_item_file(
    mailbox: &mut Mailbox,
    item: &crate::config::ItemFileSection,
    config: &Config,
    who: &str,
) -> Result<(), Error> {
    let path = match &config.base_dir {
        Some(dir) if item.file.is_relative() => dir.join(&item.file),
        _ => item.file.clone(),
    };
    let bytes = std::fs::read(&path).map_err(|e| {
        Error::Config(format!(
            "recipient {who}: item file {}: {e}",
            path.display()
        ))
    })?;
    let folder = mailbox
        .folder_by_path(&item.folder, true)
        .ok_or_else(|| Error::Config(format!("recipient {who}: folder `{}`", item.folder)))?;
    let kind = match mailbox.folders[folder as usize].class {
        FolderClass::Calendar => ItemKind::Event,
        FolderClass::Contacts => ItemKind::Contact,
        _ => ItemKind::Message,
    };
    let subject = generate::subject_of(&bytes, kind);
    mailbox.add_item(
        folder,
        kind,
        subject,
        Bytes::from(bytes),
        generate::fixed_date(),
        item.read,
    );
    Ok(())
}

/// The shared organisation, and the handle tests change it through.
#[derive(Clone, Debug)]
pub struct Organisation {
    inner: Arc<Mutex<OrgState>>,
}

impl Organisation {
    pub fn new(state: OrgState) -> Self {
        Self {
            inner: Arc::new(Mutex::new(state)),
        }
    }

    pub fn from_config(config: &Config) -> Result<Self, Error> {
        Ok(Self::new(OrgState::from_config(config)?))
    }

    /// The state, for one short critical section (never held across an await).
    pub fn lock(&self) -> MutexGuard<'_, OrgState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on a mailbox, under the lock.
    fn with_mailbox<T>(
        &self,
        mailbox: &str,
        f: impl FnOnce(&mut Mailbox) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut state = self.lock();
        let mb = state
            .mailbox_mut(mailbox)
            .ok_or_else(|| Error::NotFound(format!("mailbox {mailbox}")))?;
        f(mb)
    }

    /// Delivers an item into a mailbox's folder (a path from the top of the store): a message,
    /// or an event or contact when the folder is a calendar or contacts folder.
    pub fn deliver(&self, mailbox: &str, folder: &str, mime: &[u8]) -> Result<u64, Error> {
        self.with_mailbox(mailbox, |mb| {
            let f = mb
                .folder_by_path(folder, true)
                .ok_or_else(|| Error::NotFound(format!("folder {folder}")))?;
            // A calendar folder holds events and a contacts folder contacts (iCalendar, vCard).
            let kind = match mb.folders[f as usize].class {
                FolderClass::Calendar => ItemKind::Event,
                FolderClass::Contacts => ItemKind::Contact,
                _ => ItemKind::Message,
            };
            let subject = generate::subject_of(mime, kind);
            Ok(mb.add_item(
                f,
                kind,
                subject,
                Bytes::copy_from_slice(mime),
                // EWS dates are to the second.
                chrono::SubsecRound::trunc_subsecs(Utc::now(), 0),
                false,
            ))
        })
    }

    /// Marks an item read or unread (a ReadFlagChange for the next sync).
    pub fn set_read(&self, mailbox: &str, item: u64, read: bool) -> Result<(), Error> {
        self.change_item(mailbox, item, true, |seq, i| {
            i.is_read = read;
            i.read_seq = seq;
        })
    }

    /// Changes an item's subject (an Update for the next sync).
    pub fn set_subject(&self, mailbox: &str, item: u64, subject: &str) -> Result<(), Error> {
        self.change_item(mailbox, item, true, |seq, i| {
            i.subject = subject.to_string();
            i.content_seq = seq;
        })
    }

    /// Fault: GetItem of this item fails with `code` (ErrorItemCorrupt or
    /// ErrorContentConversionFailed). Not a change a sync reports.
    pub fn break_item(&self, mailbox: &str, item: u64, code: &'static str) -> Result<(), Error> {
        self.change_item(mailbox, item, false, |_, i| i.broken = Some(code))
    }

    /// Changes one item; a `visible` change takes the mailbox's next change counter.
    fn change_item(
        &self,
        mailbox: &str,
        item: u64,
        visible: bool,
        change: impl FnOnce(u64, &mut Item),
    ) -> Result<(), Error> {
        self.with_mailbox(mailbox, |mb| {
            let seq = if visible { mb.next_seq() } else { mb.seq };
            let f = mb
                .folders
                .iter_mut()
                .find(|f| f.items.contains_key(&item))
                .ok_or_else(|| Error::NotFound(format!("item {item}")))?;
            change(seq, f.items.get_mut(&item).expect("found"));
            if visible {
                f.changed_seq = seq;
            }
            Ok(())
        })
    }

    /// Deletes an item (a Delete for the next sync).
    pub fn delete_item(&self, mailbox: &str, item: u64) -> Result<(), Error> {
        self.with_mailbox(mailbox, |mb| {
            let seq = mb.next_seq();
            let f = mb
                .folders
                .iter_mut()
                .find(|f| f.items.contains_key(&item))
                .ok_or_else(|| Error::NotFound(format!("item {item}")))?;
            f.items.remove(&item);
            f.tombstones.push((item, seq));
            f.changed_seq = seq;
            Ok(())
        })
    }

    /// Moves an item into another folder of the same class, as Outlook does: EWS gives the
    /// moved item a new id, so a sync sees a Delete in the old folder and a Create in the new
    /// one. Returns the new id.
    pub fn move_item(&self, mailbox: &str, item: u64, folder: &str) -> Result<u64, Error> {
        self.with_mailbox(mailbox, |mb| {
            let to = mb
                .folder_by_path(folder, false)
                .ok_or_else(|| Error::NotFound(format!("folder {folder}")))?;
            let from = mb
                .folders
                .iter()
                .position(|f| f.items.contains_key(&item))
                .ok_or_else(|| Error::NotFound(format!("item {item}")))?;
            if mb.folders[from].class != mb.folders[to as usize].class {
                return Err(Error::Invalid(format!(
                    "item {item} can't move into {folder}: another kind of folder"
                )));
            }
            if from == to as usize {
                return Ok(item);
            }
            let seq = mb.next_seq();
            let old = mb.folders[from].items.remove(&item).expect("found");
            mb.folders[from].tombstones.push((item, seq));
            mb.folders[from].changed_seq = seq;
            Ok(mb.add_item(
                to,
                old.kind,
                old.subject,
                old.mime,
                old.received,
                old.is_read,
            ))
        })
    }

    /// Fault: the mailbox's item sync states stop being valid (as after a restore or a move
    /// between databases): SyncFolderItems answers ErrorInvalidSyncStateData to any earlier
    /// state, and a client must start the folder again from an empty one.
    pub fn invalidate_sync_states(&self, mailbox: &str) -> Result<(), Error> {
        self.with_mailbox(mailbox, |mb| {
            mb.sync_epoch += 1;
            Ok(())
        })
    }

    /// Creates a folder (a Create for the next hierarchy sync).
    pub fn create_folder(&self, mailbox: &str, path: &str) -> Result<(), Error> {
        self.with_mailbox(mailbox, |mb| {
            mb.folder_by_path(path, true)
                .map(|_| ())
                .ok_or_else(|| Error::NotFound(format!("folder {path}")))
        })
    }

    /// Item ids of a folder, oldest first.
    pub fn item_ids(&self, mailbox: &str, folder: &str) -> Result<Vec<u64>, Error> {
        self.with_mailbox(mailbox, |mb| {
            let f = mb
                .folder_by_path(folder, false)
                .ok_or_else(|| Error::NotFound(format!("folder {folder}")))?;
            Ok(mb.folders[f as usize].items.keys().copied().collect())
        })
    }

    /// Changes an admin's password (the "password changed mid-batch" fault).
    pub fn set_password(&self, admin: &str, password: &str) -> Result<(), Error> {
        let mut state = self.lock();
        let a = state
            .admins
            .iter_mut()
            .find(|a| a.address.eq_ignore_ascii_case(admin))
            .ok_or_else(|| Error::NotFound(format!("admin {admin}")))?;
        a.password = password.to_string();
        Ok(())
    }

    /// Starts or ends a mailbox move (EWS answers ErrorMailboxMoveInProgress meanwhile).
    pub fn set_moving(&self, mailbox: &str, moving: bool) -> Result<(), Error> {
        self.with_mailbox(mailbox, |mb| {
            mb.moving = moving;
            Ok(())
        })
    }

    /// Takes the mailbox store down or up (ErrorMailboxStoreUnavailable).
    pub fn set_store_unavailable(&self, down: bool) {
        self.lock().store_unavailable = down;
    }

    pub fn set_directory_sync(&self, on: bool) {
        self.lock().directory_sync = on;
    }

    /// Every recipient (a copy), in directory order.
    pub fn recipients(&self) -> Vec<Recipient> {
        self.lock().recipients.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org(extra: &str) -> OrgState {
        let text = format!(
            r#"
[organisation]
name = "Contoso"
primary_domain = "contoso.com"
[[admins]]
address = "administrator@contoso.com"
password = "P@ssw0rd"
domain_admins = true
[[admins]]
address = "helpdesk@contoso.com"
password = "h"
full_access = ["alice@contoso.com"]
[[admins]]
address = "dbadmin@contoso.com"
password = "d"
receive_as = ["Mailbox Database 01"]
[[recipients]]
kind = "user-mailbox"
address = "alice@contoso.com"
proxy_addresses = ["smtp:a.wonder@contoso.com", "X500:/o=Old/cn=alice"]
password = "alicepw"
[[recipients]]
kind = "user-mailbox"
address = "bob@contoso.com"
{extra}
"#
        );
        OrgState::from_config(&Config::from_toml(&text).unwrap()).unwrap()
    }

    #[test]
    fn logins_take_the_upn_the_netbios_form_and_a_bare_name() {
        let o = org("");
        let admin = Some(Principal::Admin("administrator@contoso.com".into()));
        assert_eq!(
            o.authenticate("administrator@contoso.com", "P@ssw0rd"),
            admin
        );
        assert_eq!(o.authenticate("CONTOSO\\Administrator", "P@ssw0rd"), admin);
        assert_eq!(o.authenticate("administrator", "P@ssw0rd"), admin);
        assert_eq!(o.authenticate("OTHER\\administrator", "P@ssw0rd"), None);
        assert_eq!(o.authenticate("administrator@contoso.com", "wrong"), None);
        assert_eq!(
            o.authenticate("a.wonder@contoso.com", "alicepw"),
            Some(Principal::User("alice@contoso.com".into()))
        );
    }

    #[test]
    fn rights_come_from_domain_admins_full_access_and_receive_as() {
        let o = org("database = \"Mailbox Database 01\"");
        let admin = Principal::Admin("administrator@contoso.com".into());
        let helpdesk = Principal::Admin("helpdesk@contoso.com".into());
        let dbadmin = Principal::Admin("dbadmin@contoso.com".into());
        let alice = Principal::User("alice@contoso.com".into());
        assert!(o.may_open(&admin, "bob@contoso.com"));
        assert!(o.may_open(&helpdesk, "alice@contoso.com"));
        assert!(!o.may_open(&helpdesk, "bob@contoso.com"));
        assert!(o.may_open(&dbadmin, "bob@contoso.com"));
        assert!(o.may_open(&alice, "alice@contoso.com"));
        assert!(!o.may_open(&alice, "bob@contoso.com"));
        assert!(!o.may_impersonate(&admin));
    }

    #[test]
    fn a_link_to_nobody_and_a_shared_address_are_config_errors() {
        let text = r#"
[organisation]
primary_domain = "contoso.com"
[[recipients]]
kind = "user-mailbox"
address = "alice@contoso.com"
manager = "ghost@contoso.com"
"#;
        let e = OrgState::from_config(&Config::from_toml(text).unwrap()).unwrap_err();
        assert!(e.to_string().contains("ghost@contoso.com"), "{e}");
        let text = r#"
[organisation]
primary_domain = "contoso.com"
[[recipients]]
kind = "user-mailbox"
address = "alice@contoso.com"
[[recipients]]
kind = "mail-contact"
address = "x@fabrikam.com"
proxy_addresses = ["smtp:alice@contoso.com"]
"#;
        let e = OrgState::from_config(&Config::from_toml(text).unwrap()).unwrap_err();
        assert!(e.to_string().contains("two recipients"), "{e}");
    }

    #[test]
    fn a_mailbox_has_the_well_known_folders_and_its_content() {
        let o = org("");
        let mb = o.mailbox("alice@contoso.com").unwrap();
        for (wk, _, _) in WELL_KNOWN {
            assert!(mb.well_known(wk).is_some(), "{wk}");
        }
        assert_eq!(mb.well_known("inbox").unwrap().items.len(), 5);
        assert_eq!(mb.well_known("calendar").unwrap().items.len(), 2);
        let projects = mb
            .folders
            .iter()
            .find(|f| f.name == "Projects")
            .expect("a user folder");
        assert_eq!(projects.parent, Some(1));
    }

    #[test]
    fn items_given_as_files_land_in_their_folders_with_their_kind() {
        let dir = std::env::temp_dir().join(format!("fx-items-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.eml"), b"Subject: From a file\r\n\r\nbody\r\n").unwrap();
        std::fs::write(dir.join("e.ics"), b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nSUMMARY:Standup\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n").unwrap();
        std::fs::write(
            dir.join("c.vcf"),
            b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Grace Green\r\nEND:VCARD\r\n",
        )
        .unwrap();
        let text = r#"
[organisation]
primary_domain = "contoso.com"
[[recipients]]
kind = "user-mailbox"
address = "alice@contoso.com"
content = { inbox = 0, sent_items = 0, user_folders = [], calendar = 0, contacts = 0 }
items = [
  { folder = "Projects/2026", file = "a.eml", read = true },
  { folder = "Calendar", file = "e.ics" },
  { folder = "Contacts", file = "c.vcf" },
]
"#;
        let mut config = Config::from_toml(text).unwrap();
        config.base_dir = Some(dir.clone());
        let o = OrgState::from_config(&config).unwrap();
        let mb = o.mailbox("alice@contoso.com").unwrap();
        let found: Vec<(String, ItemKind, String, bool)> = mb
            .folders
            .iter()
            .flat_map(|f| {
                f.items
                    .values()
                    .map(move |i| (f.name.clone(), i.kind, i.subject.clone(), i.is_read))
            })
            .collect();
        assert_eq!(
            found,
            [
                ("Calendar".into(), ItemKind::Event, "Standup".into(), false),
                (
                    "Contacts".into(),
                    ItemKind::Contact,
                    "Grace Green".into(),
                    false
                ),
                ("2026".into(), ItemKind::Message, "From a file".into(), true),
            ]
        );
        config.recipients[0].items[0].file = "missing.eml".into();
        let e = OrgState::from_config(&config).unwrap_err().to_string();
        assert!(
            e.contains("missing.eml") && e.contains("alice@contoso.com"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn packed_server_version_reads_like_outlooks() {
        let v = ExchangeVersion::parse("2016").unwrap();
        assert!(v.packed_hex().starts_with("73C1"), "{}", v.packed_hex());
        assert!(ExchangeVersion::parse("2007").is_err());
    }
}
