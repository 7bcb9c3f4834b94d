//! The directory's vocabulary: the kinds of recipient a tenant holds and what a cutover
//! provisions, with Exchange's words for its refusals (cutover.md §4).

use serde::{Deserialize, Serialize};

/// What kind of directory object a recipient is. Cutover provisions all of these but
/// security groups; an IMAP migration can only write into mailboxes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum RecipientKind {
    UserMailbox,
    /// A resource mailbox (a room).
    RoomMailbox,
    /// A resource mailbox (equipment).
    EquipmentMailbox,
    MailUser,
    MailContact,
    DistributionGroup {
        members: Vec<String>,
    },
    MailEnabledSecurityGroup {
        members: Vec<String>,
    },
}

impl RecipientKind {
    pub fn name(&self) -> &'static str {
        self.directory_kind().name()
    }

    /// The kind without its members.
    pub fn directory_kind(&self) -> DirectoryKind {
        match self {
            RecipientKind::UserMailbox => DirectoryKind::UserMailbox,
            RecipientKind::RoomMailbox => DirectoryKind::RoomMailbox,
            RecipientKind::EquipmentMailbox => DirectoryKind::EquipmentMailbox,
            RecipientKind::MailUser => DirectoryKind::MailUser,
            RecipientKind::MailContact => DirectoryKind::MailContact,
            RecipientKind::DistributionGroup { .. } => DirectoryKind::DistributionGroup,
            RecipientKind::MailEnabledSecurityGroup { .. } => {
                DirectoryKind::MailEnabledSecurityGroup
            }
        }
    }

    /// Whether the recipient has a mailbox that holds items.
    pub fn has_mailbox(&self) -> bool {
        self.directory_kind().has_mailbox()
    }

    pub fn members(&self) -> Option<&[String]> {
        match self {
            RecipientKind::DistributionGroup { members }
            | RecipientKind::MailEnabledSecurityGroup { members } => Some(members),
            _ => None,
        }
    }
}

/// A recipient's kind as a closed set of names (no payload).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DirectoryKind {
    UserMailbox,
    RoomMailbox,
    EquipmentMailbox,
    MailUser,
    MailContact,
    DistributionGroup,
    MailEnabledSecurityGroup,
}

impl DirectoryKind {
    pub const ALL: [DirectoryKind; 7] = [
        DirectoryKind::UserMailbox,
        DirectoryKind::RoomMailbox,
        DirectoryKind::EquipmentMailbox,
        DirectoryKind::MailUser,
        DirectoryKind::MailContact,
        DirectoryKind::DistributionGroup,
        DirectoryKind::MailEnabledSecurityGroup,
    ];

    /// The kind a [`DirectoryKind::name`] names.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            DirectoryKind::UserMailbox => "userMailbox",
            DirectoryKind::RoomMailbox => "roomMailbox",
            DirectoryKind::EquipmentMailbox => "equipmentMailbox",
            DirectoryKind::MailUser => "mailUser",
            DirectoryKind::MailContact => "mailContact",
            DirectoryKind::DistributionGroup => "distributionGroup",
            DirectoryKind::MailEnabledSecurityGroup => "mailEnabledSecurityGroup",
        }
    }

    pub fn has_mailbox(self) -> bool {
        matches!(
            self,
            DirectoryKind::UserMailbox
                | DirectoryKind::RoomMailbox
                | DirectoryKind::EquipmentMailbox
        )
    }

    pub fn is_group(self) -> bool {
        matches!(
            self,
            DirectoryKind::DistributionGroup | DirectoryKind::MailEnabledSecurityGroup
        )
    }

    /// Whether a user signs in to it (it gets an initial password).
    pub fn signs_in(self) -> bool {
        matches!(self, DirectoryKind::UserMailbox | DirectoryKind::MailUser)
    }

    /// A new, empty recipient kind of this name.
    pub fn empty(self) -> RecipientKind {
        match self {
            DirectoryKind::UserMailbox => RecipientKind::UserMailbox,
            DirectoryKind::RoomMailbox => RecipientKind::RoomMailbox,
            DirectoryKind::EquipmentMailbox => RecipientKind::EquipmentMailbox,
            DirectoryKind::MailUser => RecipientKind::MailUser,
            DirectoryKind::MailContact => RecipientKind::MailContact,
            DirectoryKind::DistributionGroup => RecipientKind::DistributionGroup {
                members: Vec::new(),
            },
            DirectoryKind::MailEnabledSecurityGroup => RecipientKind::MailEnabledSecurityGroup {
                members: Vec::new(),
            },
        }
    }
}

/// A person's attributes, as the first provisioning pass copies them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PersonAttributes {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub title: Option<String>,
    pub department: Option<String>,
    pub company: Option<String>,
    pub office: Option<String>,
    pub phone: Option<String>,
    pub notes: Option<String>,
}

/// One object to create or update in the tenant's directory (the first provisioning pass).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryObject {
    pub kind: DirectoryKind,
    /// The primary SMTP address: the object's identity.
    pub address: String,
    /// The name (from the alias).
    pub name: String,
    pub display_name: String,
    /// Further proxy addresses as Exchange stores them (`smtp:`, `X500:`).
    #[serde(default)]
    pub proxy_addresses: Vec<String>,
    /// A mail user's or contact's external address.
    #[serde(default)]
    pub external_address: Option<String>,
    #[serde(default)]
    pub person: PersonAttributes,
    /// The password a new object that signs in gets, chosen and kept by the migration before
    /// it asks (so that a crash between the tenant's creation and its answer loses none); the
    /// tenant generates one when absent. Ignored when the object exists. Never in Debug output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_password: Option<String>,
}

impl std::fmt::Debug for DirectoryObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectoryObject")
            .field("kind", &self.kind)
            .field("address", &self.address)
            .field("name", &self.name)
            .field("display_name", &self.display_name)
            .field("proxy_addresses", &self.proxy_addresses)
            .field("external_address", &self.external_address)
            .field("person", &self.person)
            .field(
                "initial_password",
                &self.initial_password.as_ref().map(|_| "<hidden>"),
            )
            .finish()
    }
}

const SYMBOLS: &[u8] = b"!@#$%^&*-_=+?";
const ALNUM: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";

/// 16 characters, at least 3 of them not alphanumeric (Exchange's rule for the passwords a
/// cutover generates).
pub fn generate_password(rng: &mut impl rand::Rng) -> String {
    let mut chars: Vec<u8> = Vec::with_capacity(16);
    for _ in 0..13 {
        chars.push(ALNUM[rng.random_range(0..ALNUM.len())]);
    }
    for _ in 0..3 {
        chars.push(SYMBOLS[rng.random_range(0..SYMBOLS.len())]);
    }
    for i in (1..chars.len()).rev() {
        chars.swap(i, rng.random_range(0..=i));
    }
    String::from_utf8(chars).expect("ASCII")
}

/// What provisioning an object came to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "outcome")]
pub enum ProvisionOutcome {
    /// A new object; users that sign in get a generated password to change at first sign-in.
    Created { initial_password: Option<String> },
    /// An object of the same type held the address: its attributes were updated.
    Updated,
}

/// The second pass: links that need the other objects to exist first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DirectoryLinks {
    pub manager: Option<String>,
    /// Send on behalf (publicDelegates).
    pub delegates: Vec<String>,
    /// Group owners (managedBy).
    pub owners: Vec<String>,
}

/// Group members are added at most this many at a time.
pub const MEMBERS_PER_CALL: usize = 100;

/// Why the tenant's directory refused a provisioning call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "refusal")]
pub enum DirectoryRefusal {
    /// Another object type holds the address.
    DifferentTypeExists { address: String },
    /// Cutover never creates security groups: an empty one must exist beforehand.
    SecurityGroupMissing { address: String },
    /// The address's domain is not an accepted domain of the tenant.
    DomainNotAccepted { address: String },
    /// The tenant's directory is synchronised from on-premises: it is read-only here.
    DirectorySyncOn,
    /// A link or member names an object the tenant does not have (yet).
    NoSuchObject { address: String },
    /// Members added to something that is not a group.
    NotAGroup { address: String },
    /// More members in one call than allowed.
    TooManyMembers { given: usize },
}

impl DirectoryRefusal {
    /// Exchange's words where it has them (cutover.md §4), plain ones where it has none.
    pub fn message(&self) -> String {
        match self {
            DirectoryRefusal::DifferentTypeExists { address } => format!(
                "A different type of Active Directory object already exists for \"{address}\" in the target forest. Please verify that the SMTP address is correct."
            ),
            DirectoryRefusal::SecurityGroupMissing { address } => format!(
                "The mail-enabled security group {address} doesn't exist in the tenant. Create it (empty) before the migration: security groups aren't provisioned."
            ),
            DirectoryRefusal::DomainNotAccepted { address } => format!(
                "The domain of {address} isn't an accepted domain of the tenant."
            ),
            DirectoryRefusal::DirectorySyncOn => "Directory synchronization is turned on for the tenant: its recipients are managed on-premises and can't be provisioned here.".to_string(),
            DirectoryRefusal::NoSuchObject { address } => {
                format!("The recipient {address} doesn't exist in the tenant.")
            }
            DirectoryRefusal::NotAGroup { address } => {
                format!("{address} isn't a group: it has no members.")
            }
            DirectoryRefusal::TooManyMembers { given } => format!(
                "{given} members in one call; add at most {MEMBERS_PER_CALL} at a time."
            ),
        }
    }
}

impl std::fmt::Display for DirectoryRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

/// A directory object as the tenant shows it (never its password).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryEntry {
    pub kind: DirectoryKind,
    pub address: String,
    /// Further SMTP addresses.
    pub aliases: Vec<String>,
    pub name: Option<String>,
    pub display_name: Option<String>,
    /// Non-SMTP proxy addresses (`X500:` ...).
    pub proxy_addresses: Vec<String>,
    pub external_address: Option<String>,
    pub person: PersonAttributes,
    pub links: DirectoryLinks,
    /// Group members by primary address, sorted.
    pub members: Vec<String>,
    /// Created with a generated password the user must change at first sign-in.
    pub must_change_password: bool,
    pub licensed: bool,
    /// An unlicensed mailbox works until its 30-day grace ends, then it is disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_ends: Option<chrono::DateTime<chrono::Utc>>,
}

/// The tenant as a cutover sees it before starting.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationInfo {
    pub accepted_domains: Vec<String>,
    /// Directory synchronisation from on-premises (cutover is refused while it is on).
    pub directory_sync: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn a_directory_objects_debug_form_hides_its_password() {
        let o = DirectoryObject {
            kind: DirectoryKind::UserMailbox,
            address: "a@contoso.com".into(),
            name: "a".into(),
            display_name: "A".into(),
            proxy_addresses: Vec::new(),
            external_address: None,
            person: PersonAttributes::default(),
            initial_password: Some("S3cret!Pass#word".into()),
        };
        let shown = format!("{o:?}");
        assert!(!shown.contains("S3cret"), "{shown}");
        assert!(
            shown.contains("<hidden>") && shown.contains("a@contoso.com"),
            "{shown}"
        );
    }

    #[test]
    fn generated_passwords_have_sixteen_characters_three_of_them_symbols() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for _ in 0..200 {
            let p = generate_password(&mut rng);
            assert_eq!(p.chars().count(), 16, "{p}");
            assert!(
                p.chars().filter(|c| !c.is_ascii_alphanumeric()).count() >= 3,
                "{p}"
            );
        }
    }
}
