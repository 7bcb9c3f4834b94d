//! The tenant's directory, as a cutover provisions it (cutover.md §4): objects created or
//! updated by type, Exchange's refusal when another type holds an address, security groups
//! never created, generated passwords with change-at-next-sign-in, then links (manager,
//! delegates, owners) and group members in chunks of at most 100, once the objects exist.
//! Refused outright while the tenant's directory is synchronised from on-premises.

use mailmig_model::generate_password;

use crate::error::Error;
use crate::model::{
    DirectoryEntry, DirectoryKind, DirectoryLinks, DirectoryObject, DirectoryRefusal,
    MEMBERS_PER_CALL, OrganizationInfo, ProvisionOutcome, Recipient, RecipientKind,
};
use crate::tenant::Tenant;

fn refuse(r: DirectoryRefusal) -> Error {
    Error::Directory(r)
}

fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map_or("", |(_, d)| d)
}

impl Tenant {
    /// The tenant's accepted domains and whether its directory is synchronised.
    pub fn organization(&self) -> OrganizationInfo {
        let st = self.state();
        OrganizationInfo {
            accepted_domains: st.settings.accepted_domains.clone(),
            directory_sync: st.settings.directory_sync,
        }
    }

    /// Turns directory synchronisation on or off (an admin's switch).
    pub fn set_directory_sync(&self, on: bool) {
        self.state().settings.directory_sync = on;
    }

    /// Creates the object, or updates the one of the same type holding its address.
    pub fn provision(&self, object: &DirectoryObject) -> Result<ProvisionOutcome, Error> {
        let now = self.now();
        let mut st = self.state();
        if st.settings.directory_sync {
            return Err(refuse(DirectoryRefusal::DirectorySyncOn));
        }
        let primary = object.address.trim().to_string();
        if !primary.contains('@') {
            return Err(Error::Invalid(format!(
                "{primary:?} is not an email address"
            )));
        }
        let aliases: Vec<String> = object
            .proxy_addresses
            .iter()
            .filter_map(|p| {
                let (prefix, value) = p.split_once(':')?;
                prefix
                    .eq_ignore_ascii_case("smtp")
                    .then(|| value.trim().to_string())
            })
            .filter(|a| !a.eq_ignore_ascii_case(&primary))
            .collect();
        let others: Vec<String> = object
            .proxy_addresses
            .iter()
            .filter(|p| {
                !p.split_once(':')
                    .is_some_and(|(prefix, _)| prefix.eq_ignore_ascii_case("smtp"))
            })
            .cloned()
            .collect();
        // A contact's address is someone else's; everything else lives in accepted domains.
        if object.kind != DirectoryKind::MailContact {
            for a in std::iter::once(&primary).chain(&aliases) {
                let accepted = st
                    .settings
                    .accepted_domains
                    .iter()
                    .any(|d| d.eq_ignore_ascii_case(domain_of(a)));
                if !accepted {
                    return Err(refuse(DirectoryRefusal::DomainNotAccepted {
                        address: a.clone(),
                    }));
                }
            }
        }
        let existing = st.find(&primary);
        for a in std::iter::once(&primary).chain(&aliases) {
            if let Some(i) = st.find(a) {
                let holder = &st.recipients[i];
                if holder.kind.directory_kind() != object.kind || Some(i) != existing {
                    return Err(refuse(DirectoryRefusal::DifferentTypeExists {
                        address: a.clone(),
                    }));
                }
            }
        }
        let outcome = match existing {
            Some(i) => {
                let r = &mut st.recipients[i];
                r.aliases = aliases;
                let d = &mut r.directory;
                d.name = Some(object.name.clone());
                d.display_name = Some(object.display_name.clone());
                d.proxy_addresses = others;
                d.external_address = object.external_address.clone();
                d.person = object.person.clone();
                st.index(i);
                ProvisionOutcome::Updated
            }
            None => {
                if object.kind == DirectoryKind::MailEnabledSecurityGroup {
                    return Err(refuse(DirectoryRefusal::SecurityGroupMissing {
                        address: primary,
                    }));
                }
                let mut r = Recipient::mailbox(&primary, false, now);
                r.kind = object.kind.empty();
                r.aliases = aliases;
                let password = object.kind.signs_in().then(|| {
                    object
                        .initial_password
                        .clone()
                        .unwrap_or_else(|| generate_password(&mut st.rng))
                });
                r.directory = crate::model::DirectoryAttributes {
                    name: Some(object.name.clone()),
                    display_name: Some(object.display_name.clone()),
                    proxy_addresses: others,
                    external_address: object.external_address.clone(),
                    person: object.person.clone(),
                    links: DirectoryLinks::default(),
                    initial_password: password.clone(),
                    must_change_password: password.is_some(),
                };
                st.add_loaded(r, now);
                ProvisionOutcome::Created {
                    initial_password: password,
                }
            }
        };
        let i = st.find(&primary).expect("just provisioned");
        if let Some(db) = self.db() {
            db.save_recipient(&st.recipients[i])?;
        }
        Ok(outcome)
    }

    /// The second pass: manager, delegates and owners, each of which must exist.
    pub fn set_links(&self, address: &str, links: &DirectoryLinks) -> Result<(), Error> {
        let mut st = self.state();
        if st.settings.directory_sync {
            return Err(refuse(DirectoryRefusal::DirectorySyncOn));
        }
        let i = st.find(address).ok_or_else(|| {
            refuse(DirectoryRefusal::NoSuchObject {
                address: address.to_string(),
            })
        })?;
        let resolve = |a: &String| {
            st.find(a)
                .map(|j| st.recipients[j].address.clone())
                .ok_or_else(|| refuse(DirectoryRefusal::NoSuchObject { address: a.clone() }))
        };
        let resolved = DirectoryLinks {
            manager: links.manager.as_ref().map(resolve).transpose()?,
            delegates: links
                .delegates
                .iter()
                .map(resolve)
                .collect::<Result<_, _>>()?,
            owners: links.owners.iter().map(resolve).collect::<Result<_, _>>()?,
        };
        st.recipients[i].directory.links = resolved;
        if let Some(db) = self.db() {
            db.save_recipient(&st.recipients[i])?;
        }
        Ok(())
    }

    /// Adds members (at most [`MEMBERS_PER_CALL`] a call, in any order, each existing) to a
    /// group; members already there stay once.
    pub fn add_members(&self, group: &str, members: &[String]) -> Result<(), Error> {
        if members.len() > MEMBERS_PER_CALL {
            return Err(refuse(DirectoryRefusal::TooManyMembers {
                given: members.len(),
            }));
        }
        let mut st = self.state();
        if st.settings.directory_sync {
            return Err(refuse(DirectoryRefusal::DirectorySyncOn));
        }
        let g = st.find(group).ok_or_else(|| {
            refuse(DirectoryRefusal::NoSuchObject {
                address: group.to_string(),
            })
        })?;
        let mut resolved = Vec::with_capacity(members.len());
        for m in members {
            let j = st
                .find(m)
                .ok_or_else(|| refuse(DirectoryRefusal::NoSuchObject { address: m.clone() }))?;
            resolved.push(st.recipients[j].address.clone());
        }
        let list = match &mut st.recipients[g].kind {
            RecipientKind::DistributionGroup { members }
            | RecipientKind::MailEnabledSecurityGroup { members } => members,
            _ => {
                return Err(refuse(DirectoryRefusal::NotAGroup {
                    address: group.to_string(),
                }));
            }
        };
        for m in resolved {
            if !list.iter().any(|x| x.eq_ignore_ascii_case(&m)) {
                list.push(m);
            }
        }
        if let Some(db) = self.db() {
            db.save_recipient(&st.recipients[g])?;
        }
        Ok(())
    }

    /// The directory's view of an object (no password).
    pub fn directory_entry(&self, address: &str) -> Option<DirectoryEntry> {
        let st = self.state();
        let r = &st.recipients[st.find(address)?];
        let mut members: Vec<String> = r.kind.members().map(<[String]>::to_vec).unwrap_or_default();
        members.sort_by_key(|m| m.to_ascii_lowercase());
        Some(DirectoryEntry {
            kind: r.kind.directory_kind(),
            address: r.address.clone(),
            aliases: r.aliases.clone(),
            name: r.directory.name.clone(),
            display_name: r.directory.display_name.clone(),
            proxy_addresses: r.directory.proxy_addresses.clone(),
            external_address: r.directory.external_address.clone(),
            person: r.directory.person.clone(),
            links: r.directory.links.clone(),
            members,
            must_change_password: r.directory.must_change_password,
            licensed: r.licensed,
            grace_ends: (r.kind.directory_kind().has_mailbox() && !r.licensed).then(|| {
                r.grace_started + chrono::Duration::days(crate::model::LICENCE_GRACE_DAYS)
            }),
        })
    }

    /// The generated initial password of a provisioned user (for tests that sign in as it;
    /// no API face shows it).
    pub fn initial_password(&self, address: &str) -> Option<String> {
        let st = self.state();
        st.recipients[st.find(address)?]
            .directory
            .initial_password
            .clone()
    }
}
