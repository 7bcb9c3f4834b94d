//! The TOML configuration of a fake organisation (`mailmig fake-exchange serve --config
//! FILE.toml`, and tests). Unknown keys are errors; every section but `[organisation]` may be
//! left out. fake-exchange/README.md documents each key.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::Error;
use crate::faults::FaultsConfig;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub organisation: OrganisationSection,
    #[serde(default)]
    pub servers: Vec<ServerSection>,
    #[serde(default)]
    pub databases: Vec<DatabaseSection>,
    #[serde(default)]
    pub admins: Vec<AdminSection>,
    #[serde(default)]
    pub recipients: Vec<RecipientSection>,
    /// Recipients made from a seed, on top of the listed ones.
    #[serde(default)]
    pub generate: Option<GenerateSection>,
    #[serde(default)]
    pub faults: FaultsConfig,
    /// Where relative `file` paths of `[[recipients.items]]` are read from (the config file's
    /// directory when loaded from a file).
    #[serde(skip)]
    pub base_dir: Option<PathBuf>,
}

impl Config {
    pub fn from_file(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        let mut config = Self::from_toml(&text)
            .map_err(|e| Error::Config(format!("{}: {}", path.display(), e)))?;
        config.base_dir = path.parent().map(Path::to_path_buf);
        Ok(config)
    }

    pub fn from_toml(text: &str) -> Result<Self, Error> {
        toml::from_str(text).map_err(|e| Error::Config(e.message().to_string()))
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrganisationSection {
    /// The organisation's name (legacyExchangeDN's `/o=`).
    pub name: String,
    /// The primary SMTP domain: the one a cutover needs accepted by the tenant.
    pub primary_domain: String,
    /// Every accepted domain (the primary one is added when missing).
    pub accepted_domains: Vec<String>,
    /// The NetBIOS domain name (`CONTOSO\administrator`).
    pub netbios_name: Option<String>,
    /// Exchange's version: "2010", "2013", "2016" or "2019".
    pub exchange_version: String,
    /// Seeds generated content and recipients: the same seed gives the same organisation.
    pub seed: u64,
    /// Whether the organisation synchronises its directory to a tenant (Azure AD Connect).
    pub directory_sync: bool,
    /// Concurrent EWS requests per account before ErrorExceededConnectionCount (Exchange 2010
    /// allows 10, 2013 and later 27).
    pub ews_connection_limit: Option<usize>,
    /// Certificates: "trusted" (a private CA, written as CA=) or "self-signed".
    pub certificate: CertificateKind,
}

impl Default for OrganisationSection {
    fn default() -> Self {
        Self {
            name: "Contoso".into(),
            primary_domain: "contoso.com".into(),
            accepted_domains: Vec::new(),
            netbios_name: None,
            exchange_version: "2016".into(),
            seed: 1,
            directory_sync: false,
            ews_connection_limit: None,
            certificate: CertificateKind::Trusted,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CertificateKind {
    /// A leaf signed by a private CA (the CA is what a client trusts).
    #[default]
    Trusted,
    /// One self-signed certificate, which Microsoft's service refuses.
    SelfSigned,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    pub name: String,
    /// What it serves: "ews" (also the RPC proxy and OWA), "ldap".
    #[serde(default)]
    pub roles: Vec<ServerRole>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServerRole {
    Ews,
    Ldap,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSection {
    pub name: String,
    /// The mailbox server holding it (defaults to the first EWS server).
    #[serde(default)]
    pub server: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    /// The account's user principal name / SMTP address.
    pub address: String,
    pub password: String,
    /// Member of Domain Admins (rights over every mailbox).
    #[serde(default)]
    pub domain_admins: bool,
    /// Holds the ApplicationImpersonation role (EWS impersonation of any mailbox).
    #[serde(default)]
    pub impersonation: bool,
    /// Mailboxes it has FullAccess to.
    #[serde(default)]
    pub full_access: Vec<String>,
    /// Databases it has Receive As on (every mailbox of those).
    #[serde(default)]
    pub receive_as: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipientSection {
    pub kind: RecipientKind,
    /// The primary SMTP address; leave it out for a GAL entry with only a legacyExchangeDN.
    #[serde(default)]
    pub address: Option<String>,
    /// mailNickname (defaults to the address's local part).
    #[serde(default)]
    pub alias: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    /// Extra proxy addresses as AD stores them: `smtp:`, `X500:`, `EUM:` ...
    #[serde(default)]
    pub proxy_addresses: Vec<String>,
    #[serde(default)]
    pub legacy_dn: Option<String>,
    #[serde(default)]
    pub hidden: bool,
    /// The manager's primary address.
    #[serde(default)]
    pub manager: Option<String>,
    /// Delegates (publicDelegates) by primary address.
    #[serde(default)]
    pub delegates: Vec<String>,
    /// Group owners (managedBy) by primary address.
    #[serde(default)]
    pub managed_by: Vec<String>,
    /// Group members by primary address.
    #[serde(default)]
    pub members: Vec<String>,
    #[serde(default)]
    pub um_enabled: bool,
    /// The mailbox database (defaults to the first one); mailboxes only.
    #[serde(default)]
    pub database: Option<String>,
    /// A mail user's or contact's external address.
    #[serde(default)]
    pub target_address: Option<String>,
    /// A mailbox's own logon password (to log in as the user itself).
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub department: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    /// Generated content (mailboxes only); absent = the default shape.
    #[serde(default)]
    pub content: Option<ContentSection>,
    /// Items given as files (RFC 5322, iCalendar or vCard by the folder's kind).
    #[serde(default)]
    pub items: Vec<ItemFileSection>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecipientKind {
    #[default]
    UserMailbox,
    RoomMailbox,
    EquipmentMailbox,
    MailUser,
    MailContact,
    DistributionGroup,
    /// A mail-enabled security group.
    SecurityGroup,
    PublicFolder,
}

impl RecipientKind {
    pub fn is_mailbox(self) -> bool {
        matches!(
            self,
            RecipientKind::UserMailbox
                | RecipientKind::RoomMailbox
                | RecipientKind::EquipmentMailbox
        )
    }

    pub fn is_group(self) -> bool {
        matches!(
            self,
            RecipientKind::DistributionGroup | RecipientKind::SecurityGroup
        )
    }
}

/// The shape of a mailbox's generated content.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ContentSection {
    pub inbox: usize,
    pub sent_items: usize,
    pub deleted_items: usize,
    pub drafts: usize,
    /// User folders under the top of the information store, each with `per_user_folder` messages.
    pub user_folders: Vec<String>,
    pub per_user_folder: usize,
    pub calendar: usize,
    pub contacts: usize,
}

impl Default for ContentSection {
    fn default() -> Self {
        Self {
            inbox: 5,
            sent_items: 3,
            deleted_items: 0,
            drafts: 0,
            user_folders: vec!["Projects".into()],
            per_user_folder: 2,
            calendar: 2,
            contacts: 2,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemFileSection {
    /// The folder's path from the top of the information store, `/` between levels
    /// ("Inbox", "Calendar", "Projects/2026").
    pub folder: String,
    pub file: PathBuf,
    #[serde(default)]
    pub read: bool,
}

/// Many recipients at once: `<prefix>NNNN@<primary domain>`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GenerateSection {
    pub mailboxes: usize,
    pub mail_users: usize,
    pub mail_contacts: usize,
    pub distribution_groups: usize,
    /// Members of each generated group, drawn from the generated mailboxes.
    pub group_size: usize,
    /// Content of every generated mailbox (none by default: big directories, small mail).
    pub content: Option<ContentSection>,
}

impl Default for GenerateSection {
    fn default() -> Self {
        Self {
            mailboxes: 0,
            mail_users: 0,
            mail_contacts: 0,
            distribution_groups: 0,
            group_size: 5,
            content: None,
        }
    }
}
