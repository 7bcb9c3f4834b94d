//! The organisation's directory as a cutover reads it (cutover.md §4): every recipient with
//! Active Directory's attributes, its kind from msExchRecipientTypeDetails, and what
//! provisioning makes of it — the tenant object of the first pass, the links and members of
//! the second, or the reason it fails.

use std::collections::HashMap;

use ldap3_proto::proto::{LdapFilter, LdapSearchScope};
use mailmig_model::{DirectoryKind, DirectoryLinks, DirectoryObject, PersonAttributes};
use serde::Serialize;

use super::http::HttpClient;
use super::ldap::{Entry, Ldap};
use super::{ExchangeError, ExchangeSettings};

/// What a directory entry is, for a cutover.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind", content = "detail")]
pub enum OnPremKind {
    Recipient(DirectoryKind),
    /// Skipped: public folders are not migrated.
    PublicFolder,
    /// Anything else with a mail alias (a dynamic group, a linked mailbox ...).
    Unsupported(String),
}

/// One recipient of the organisation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OnPremRecipient {
    pub dn: String,
    pub kind: OnPremKind,
    /// The primary SMTP address (`SMTP:` proxy, else `mail`).
    pub address: Option<String>,
    pub legacy_dn: String,
    pub alias: String,
    pub display_name: String,
    pub proxy_addresses: Vec<String>,
    pub hidden: bool,
    pub um_enabled: bool,
    pub manager: Option<String>,
    pub delegates: Vec<String>,
    pub owners: Vec<String>,
    pub members: Vec<String>,
    pub target_address: Option<String>,
    /// The server holding the mailbox (its short name), for "Administrator (<server>)".
    pub server: Option<String>,
    pub person: PersonAttributes,
}

/// The directory and who reads it.
#[derive(Clone, Debug, Default)]
pub struct OnPremDirectory {
    pub base_dn: String,
    pub recipients: Vec<OnPremRecipient>,
    /// The admin account is a member of Domain Admins.
    pub admin_is_domain_admin: bool,
}

const ATTRIBUTES: &[&str] = &[
    "distinguishedName",
    "mail",
    "mailNickname",
    "displayName",
    "proxyAddresses",
    "legacyExchangeDN",
    "msExchRecipientTypeDetails",
    "msExchHideFromAddressLists",
    "msExchUMEnabledFlags",
    "manager",
    "publicDelegates",
    "managedBy",
    "msExchCoManagedByLink",
    "member",
    "homeMDB",
    "msExchHomeServerName",
    "targetAddress",
    "givenName",
    "sn",
    "title",
    "department",
    "company",
    "physicalDeliveryOfficeName",
    "telephoneNumber",
    "info",
];

/// Binds as the endpoint's admin and reads the whole directory, page by page.
pub async fn read(
    http: &HttpClient,
    settings: &ExchangeSettings,
) -> Result<OnPremDirectory, ExchangeError> {
    let mut ldap = Ldap::connect(
        http,
        &settings.nspi_server,
        settings.ldap_port,
        settings.ldaps,
    )
    .await?;
    let user = &settings.credential.user_name;
    ldap.bind(user, &settings.credential.password).await?;
    let root = ldap
        .search(
            "",
            LdapSearchScope::Base,
            LdapFilter::Present("objectClass".into()),
            &["defaultNamingContext"],
            false,
        )
        .await?;
    let base_dn = root
        .first()
        .and_then(|e| e.first("defaultNamingContext"))
        .ok_or_else(|| {
            ExchangeError::Directory(format!(
                "the directory at {} names no defaultNamingContext in its rootDSE",
                settings.nspi_server
            ))
        })?
        .to_string();
    let local = user.rsplit('\\').next().unwrap_or(user);
    let sam = local.split('@').next().unwrap_or(local);
    let admin = ldap
        .search(
            &base_dn,
            LdapSearchScope::Subtree,
            LdapFilter::Or(vec![
                LdapFilter::Equality("userPrincipalName".into(), local.into()),
                LdapFilter::Equality("mail".into(), local.into()),
                LdapFilter::Equality("sAMAccountName".into(), sam.into()),
            ]),
            &["memberOf"],
            false,
        )
        .await?;
    let admin_is_domain_admin = admin.iter().any(|e| {
        e.values("memberOf")
            .iter()
            .any(|g| g.to_ascii_lowercase().starts_with("cn=domain admins,"))
    });
    let entries = ldap
        .search(
            &base_dn,
            LdapSearchScope::Subtree,
            LdapFilter::And(vec![
                LdapFilter::Present("mailNickname".into()),
                LdapFilter::Or(vec![
                    LdapFilter::Equality("objectClass".into(), "user".into()),
                    LdapFilter::Equality("objectClass".into(), "contact".into()),
                    LdapFilter::Equality("objectClass".into(), "group".into()),
                    LdapFilter::Equality("objectClass".into(), "publicFolder".into()),
                ]),
            ]),
            ATTRIBUTES,
            true,
        )
        .await?;
    ldap.unbind().await;
    Ok(OnPremDirectory {
        base_dn,
        recipients: entries.iter().map(recipient).collect(),
        admin_is_domain_admin,
    })
}

fn recipient(e: &Entry) -> OnPremRecipient {
    let details: i64 = e
        .first("msExchRecipientTypeDetails")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let has_database = e.first("homeMDB").is_some();
    let kind = match details {
        // User, shared, room and equipment mailboxes; without a database it is a mail user.
        1 | 4 if has_database => OnPremKind::Recipient(DirectoryKind::UserMailbox),
        16 if has_database => OnPremKind::Recipient(DirectoryKind::RoomMailbox),
        32 if has_database => OnPremKind::Recipient(DirectoryKind::EquipmentMailbox),
        1 | 4 | 16 | 32 | 128 => OnPremKind::Recipient(DirectoryKind::MailUser),
        64 => OnPremKind::Recipient(DirectoryKind::MailContact),
        256 | 512 => OnPremKind::Recipient(DirectoryKind::DistributionGroup),
        1024 => OnPremKind::Recipient(DirectoryKind::MailEnabledSecurityGroup),
        4096 => OnPremKind::PublicFolder,
        other => OnPremKind::Unsupported(format!("msExchRecipientTypeDetails {other}")),
    };
    let proxies = e.values("proxyAddresses").to_vec();
    let address = proxies
        .iter()
        .find_map(|p| p.strip_prefix("SMTP:").map(str::to_string))
        .or_else(|| e.first("mail").map(str::to_string))
        .filter(|a| is_smtp(a));
    let text = |n: &str| e.first(n).map(str::to_string);
    let mut owners: Vec<String> = e.values("managedBy").to_vec();
    owners.extend(e.values("msExchCoManagedByLink").iter().cloned());
    OnPremRecipient {
        dn: e.dn.clone(),
        kind,
        address,
        legacy_dn: text("legacyExchangeDN").unwrap_or_default(),
        alias: text("mailNickname").unwrap_or_default(),
        display_name: text("displayName").unwrap_or_default(),
        proxy_addresses: proxies,
        hidden: e
            .first("msExchHideFromAddressLists")
            .is_some_and(|v| v.eq_ignore_ascii_case("TRUE")),
        um_enabled: e
            .first("msExchUMEnabledFlags")
            .and_then(|v| v.parse::<i64>().ok())
            .is_some_and(|f| f != 0),
        manager: text("manager"),
        delegates: e.values("publicDelegates").to_vec(),
        owners,
        members: e.values("member").to_vec(),
        target_address: text("targetAddress"),
        server: e
            .first("msExchHomeServerName")
            .and_then(|s| s.rsplit("cn=").next())
            .map(str::to_string),
        person: PersonAttributes {
            first_name: text("givenName"),
            last_name: text("sn"),
            title: text("title"),
            department: text("department"),
            company: text("company"),
            office: text("physicalDeliveryOfficeName"),
            phone: text("telephoneNumber"),
            notes: text("info"),
        },
    }
}

/// An SMTP address as Exchange accepts one: local@domain, one `@`, a dotted domain, no spaces.
pub fn is_smtp(a: &str) -> bool {
    let Some((local, domain)) = a.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !a
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == ',')
}

/// What a cutover makes of one recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Planned {
    /// The primary SMTP address, or (when there is none) the legacyExchangeDN it fails with.
    pub identity: String,
    pub kind: DirectoryKind,
    pub object: DirectoryObject,
    pub links: DirectoryLinks,
    pub members: Vec<String>,
    /// Why it cannot be provisioned (Exchange's words where known).
    pub failure: Option<String>,
}

/// The batch's view of the directory: who is taken, and who is not (with why).
#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub recipients: Vec<Planned>,
    /// Left out on purpose: (identity, why).
    pub not_taken: Vec<(String, String)>,
}

impl Plan {
    pub fn mailboxes(&self) -> usize {
        self.recipients
            .iter()
            .filter(|p| p.kind.has_mailbox())
            .count()
    }

    /// The primary SMTP domain of the organisation: the most common domain of its mailboxes.
    pub fn primary_domain(&self) -> Option<String> {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for p in self.recipients.iter().filter(|p| p.kind.has_mailbox()) {
            if let Some((_, d)) = p.identity.rsplit_once('@') {
                *counts.entry(d.to_ascii_lowercase()).or_default() += 1;
            }
        }
        counts
            .into_iter()
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
            .map(|(d, _)| d)
    }
}

pub fn not_valid_smtp(legacy_dn: &str) -> String {
    format!("\"{legacy_dn}\" is not a valid SMTP address.")
}

pub fn um_enabled(address: &str) -> String {
    format!(
        "The mailbox {address} has Unified Messaging enabled. Disable UM for it (Disable-UMMailbox) before the migration, then start the batch again."
    )
}

pub fn unmigrated_link(address: &str, role: &str, target: &str) -> String {
    format!(
        "The {role} of {address} ({target}) isn't migrated by this batch. Remove the link on-premises before the migration, then start the batch again."
    )
}

/// Applies cutover.md §4 to the directory.
pub fn plan(directory: &OnPremDirectory) -> Plan {
    let mut plan = Plan::default();
    // Who is taken, by DN -> primary address.
    let mut taken: HashMap<String, String> = HashMap::new();
    for r in &directory.recipients {
        if let (OnPremKind::Recipient(_), false) = (&r.kind, r.hidden) {
            let id = r.address.clone().unwrap_or_else(|| r.legacy_dn.clone());
            taken.insert(r.dn.to_ascii_lowercase(), id);
        }
    }
    let address_of = |dn: &String| taken.get(&dn.to_ascii_lowercase()).cloned();
    for r in &directory.recipients {
        let identity = r.address.clone().unwrap_or_else(|| r.legacy_dn.clone());
        let kind = match &r.kind {
            OnPremKind::Recipient(k) => *k,
            OnPremKind::PublicFolder => {
                plan.not_taken.push((
                    identity,
                    "a public folder: public folders aren't migrated".into(),
                ));
                continue;
            }
            OnPremKind::Unsupported(what) => {
                plan.not_taken
                    .push((identity, format!("an unsupported recipient type ({what})")));
                continue;
            }
        };
        if r.hidden {
            plan.not_taken
                .push((identity, "hidden from address lists: not taken".into()));
            continue;
        }
        let mut failure = None;
        if r.address.is_none() {
            failure = Some(not_valid_smtp(&r.legacy_dn));
        } else if r.um_enabled && kind.has_mailbox() {
            failure = Some(um_enabled(&identity));
        }
        let mut links = DirectoryLinks::default();
        if let Some(m) = &r.manager {
            match address_of(m) {
                Some(a) => links.manager = Some(a),
                None => {
                    failure.get_or_insert_with(|| unmigrated_link(&identity, "manager", m));
                }
            }
        }
        for d in &r.delegates {
            match address_of(d) {
                Some(a) => links.delegates.push(a),
                None => {
                    failure.get_or_insert_with(|| unmigrated_link(&identity, "delegate", d));
                }
            }
        }
        // Owners and members that are not migrated are left out (a group is not failed for a
        // hidden member).
        links.owners = r.owners.iter().filter_map(address_of).collect();
        let members = r.members.iter().filter_map(address_of).collect();
        let name = if !r.alias.is_empty() {
            r.alias.clone()
        } else {
            r.display_name.clone()
        };
        let name = if name.eq_ignore_ascii_case("Administrator") {
            format!("{name} ({})", r.server.as_deref().unwrap_or("on-premises"))
        } else {
            name
        };
        let mut proxies: Vec<String> = r
            .proxy_addresses
            .iter()
            .filter(|p| !p.trim().is_empty())
            .filter(|p| !p.starts_with("SMTP:"))
            .filter(|p| !p.to_ascii_uppercase().starts_with("EUM:"))
            .filter(|p| match p.strip_prefix("smtp:") {
                Some(a) => is_smtp(a),
                None => true,
            })
            .cloned()
            .collect();
        if !r.legacy_dn.is_empty() {
            let x500 = format!("X500:{}", r.legacy_dn);
            if !proxies.iter().any(|p| p.eq_ignore_ascii_case(&x500)) {
                proxies.push(x500);
            }
        }
        let external = r.target_address.as_ref().map(|t| {
            t.trim_start_matches("SMTP:")
                .trim_start_matches("smtp:")
                .to_string()
        });
        plan.recipients.push(Planned {
            object: DirectoryObject {
                kind,
                address: identity.clone(),
                name,
                display_name: r.display_name.clone(),
                proxy_addresses: proxies,
                external_address: external,
                person: r.person.clone(),
                // Chosen at provisioning time, not in the plan (which is logged and shown).
                initial_password: None,
            },
            identity,
            kind,
            links,
            members,
            failure,
        });
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailbox(dn: &str, address: &str) -> OnPremRecipient {
        OnPremRecipient {
            dn: dn.into(),
            kind: OnPremKind::Recipient(DirectoryKind::UserMailbox),
            address: Some(address.into()),
            legacy_dn: format!("/o=Contoso/cn=Recipients/cn={dn}"),
            alias: dn.into(),
            display_name: dn.into(),
            proxy_addresses: vec![format!("SMTP:{address}")],
            hidden: false,
            um_enabled: false,
            manager: None,
            delegates: vec![],
            owners: vec![],
            members: vec![],
            target_address: None,
            server: Some("EX01".into()),
            person: PersonAttributes::default(),
        }
    }

    #[test]
    fn the_rules_of_cutover_section_4() {
        let mut bob = mailbox("bob", "bob@contoso.com");
        bob.manager = Some("hidden".into());
        bob.proxy_addresses.extend([
            "smtp:bob.b@contoso.com".into(),
            "smtp:not valid".into(),
            "EUM:1234;phone-context=x".into(),
            "".into(),
        ]);
        let mut hidden = mailbox("hidden", "hidden@contoso.com");
        hidden.hidden = true;
        let mut um = mailbox("um", "um@contoso.com");
        um.um_enabled = true;
        let mut nosmtp = mailbox("nosmtp", "x");
        nosmtp.address = None;
        let mut admin = mailbox("admin", "administrator@contoso.com");
        admin.alias = "Administrator".into();
        let mut pf = mailbox("pf", "pf@contoso.com");
        pf.kind = OnPremKind::PublicFolder;
        let mut group = mailbox("team", "team@contoso.com");
        group.kind = OnPremKind::Recipient(DirectoryKind::DistributionGroup);
        group.members = vec!["bob".into(), "hidden".into(), "um".into()];
        let dir = OnPremDirectory {
            recipients: vec![bob, hidden, um, nosmtp, admin, pf, group],
            ..Default::default()
        };
        let plan = plan(&dir);
        let by = |id: &str| plan.recipients.iter().find(|p| p.identity == id).unwrap();
        let bob = by("bob@contoso.com");
        assert!(
            bob.failure
                .as_deref()
                .unwrap()
                .contains("The manager of bob@contoso.com"),
            "a manager that is not migrated fails the object"
        );
        assert_eq!(
            bob.object.proxy_addresses,
            vec![
                "smtp:bob.b@contoso.com".to_string(),
                "X500:/o=Contoso/cn=Recipients/cn=bob".to_string()
            ]
        );
        assert!(
            by("um@contoso.com")
                .failure
                .as_deref()
                .unwrap()
                .contains("Unified Messaging")
        );
        assert_eq!(
            by("/o=Contoso/cn=Recipients/cn=nosmtp").failure.as_deref(),
            Some("\"/o=Contoso/cn=Recipients/cn=nosmtp\" is not a valid SMTP address.")
        );
        assert_eq!(
            by("administrator@contoso.com").object.name,
            "Administrator (EX01)"
        );
        assert_eq!(
            by("team@contoso.com").members,
            vec!["bob@contoso.com".to_string(), "um@contoso.com".to_string()],
            "a hidden member is left out"
        );
        let not_taken: Vec<&str> = plan.not_taken.iter().map(|(a, _)| a.as_str()).collect();
        assert_eq!(not_taken, ["hidden@contoso.com", "pf@contoso.com"]);
        assert_eq!(plan.mailboxes(), 4);
        assert_eq!(plan.primary_domain().as_deref(), Some("contoso.com"));
    }
}
