//! Who may log in as whom: the admin-login forms of real servers (exchange-migration.md §3) and
//! the folder view a login gets (its own mailbox, or Courier's virtual shared tree).

use serde::Deserialize;

/// How admins reach other users' mailboxes. One mode per server, as on a real one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdminMode {
    /// Each user logs in as itself; admins have no powers.
    #[default]
    Plain,
    /// Master users: LOGIN `user<SEP>admin`, or SASL PLAIN with authzid = user, authcid = admin.
    Dovecot,
    /// LOGIN `Domain/Admin/User` with the admin's password.
    Exchange,
    /// LOGIN `#user@domain#admin#` with the admin's password.
    Mirapoint,
    /// No impersonation: the admin sees every user's folders under a shared root.
    Courier,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub name: String,
    pub password: String,
}

/// A user account of the directory.
#[derive(Clone, Debug)]
pub struct UserAccount {
    pub name: String,
    pub password: String,
    pub domain: Option<String>,
}

/// The folder view of a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum View {
    /// The owner's own folders.
    Own { owner: String },
    /// Courier admin: its own folders plus `<root><delim><user><delim><folder>` for every user.
    Shared { owner: String, root: String },
}

impl View {
    pub fn owner(&self) -> &str {
        match self {
            View::Own { owner } | View::Shared { owner, .. } => owner,
        }
    }
}

/// A successful login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Login {
    /// Who authenticated (for faults and logs).
    pub authenticated_as: String,
    pub view: View,
}

/// The users and admins of a server, and its admin mode.
#[derive(Clone, Debug)]
pub struct Directory {
    pub mode: AdminMode,
    pub separator: char,
    pub shared_root: String,
    pub users: Vec<UserAccount>,
    pub admins: Vec<Credentials>,
    /// User name -> index in `users` (the first with that name).
    pub by_name: std::collections::HashMap<String, usize>,
    /// Lower-cased `name@domain` -> index in `users`, for users with a domain.
    pub by_domain_form: std::collections::HashMap<String, usize>,
}

impl Directory {
    pub fn new(
        mode: AdminMode,
        separator: char,
        shared_root: String,
        users: Vec<UserAccount>,
        admins: Vec<Credentials>,
    ) -> Self {
        let mut by_name = std::collections::HashMap::with_capacity(users.len());
        let mut by_domain_form = std::collections::HashMap::new();
        for (i, u) in users.iter().enumerate() {
            by_name.entry(u.name.clone()).or_insert(i);
            if let Some(d) = &u.domain {
                by_domain_form
                    .entry(format!("{}@{d}", u.name).to_ascii_lowercase())
                    .or_insert(i);
            }
        }
        Self {
            mode,
            separator,
            shared_root,
            users,
            admins,
            by_name,
            by_domain_form,
        }
    }

    fn user(&self, name: &str) -> Option<&UserAccount> {
        // Hash lookups, not a scan of every account per login.
        self.by_name
            .get(name)
            .or_else(|| self.by_domain_form.get(&name.to_ascii_lowercase()))
            .and_then(|&i| self.users.get(i))
    }

    fn admin(&self, name: &str, password: &str) -> bool {
        self.admins
            .iter()
            .any(|a| a.name == name && a.password == password)
    }

    fn own(&self, authenticated_as: &str, owner: &str) -> Login {
        Login {
            authenticated_as: authenticated_as.to_string(),
            view: View::Own {
                owner: owner.to_string(),
            },
        }
    }

    /// IMAP LOGIN. `None` means `NO [AUTHENTICATIONFAILED]`.
    pub fn login(&self, username: &str, password: &str) -> Option<Login> {
        if let Some(u) = self.user(username)
            && u.password == password
        {
            return Some(self.own(&u.name, &u.name));
        }
        match self.mode {
            AdminMode::Plain => None,
            AdminMode::Dovecot => {
                let (user, admin) = username.rsplit_once(self.separator)?;
                self.impersonate(admin, password, user)
            }
            AdminMode::Exchange => {
                let mut parts = username.splitn(3, '/');
                let (domain, admin, user) = (parts.next()?, parts.next()?, parts.next()?);
                let account = self.user(user)?;
                if let Some(d) = &account.domain
                    && !d.eq_ignore_ascii_case(domain)
                {
                    return None;
                }
                self.impersonate(admin, password, user)
            }
            AdminMode::Mirapoint => {
                let inner = username.strip_prefix('#')?.strip_suffix('#')?;
                let (user, admin) = inner.split_once('#')?;
                self.impersonate(admin, password, user)
            }
            AdminMode::Courier => self.admin(username, password).then(|| Login {
                authenticated_as: username.to_string(),
                view: View::Shared {
                    owner: username.to_string(),
                    root: self.shared_root.clone(),
                },
            }),
        }
    }

    /// A login as this user without checking a password: only for the `login-then-fail`
    /// fault, which plays a server that lets a wrong password through.
    pub fn owner_of(&self, username: &str) -> Option<Login> {
        let account = self.user(username)?;
        Some(self.own(&account.name, &account.name))
    }

    fn impersonate(&self, admin: &str, password: &str, user: &str) -> Option<Login> {
        if !self.admin(admin, password) {
            return None;
        }
        let account = self.user(user)?;
        Some(self.own(admin, &account.name))
    }

    /// SASL PLAIN: authzid (who to act as, may be empty), authcid, password.
    pub fn sasl_plain(&self, authzid: &str, authcid: &str, password: &str) -> Option<Login> {
        if authzid.is_empty() || authzid == authcid {
            return self.login(authcid, password);
        }
        match self.mode {
            AdminMode::Dovecot => self.impersonate(authcid, password, authzid),
            // Courier ignores the authorization identity and logs the admin in as itself.
            AdminMode::Courier => self.login(authcid, password),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(mode: AdminMode) -> Directory {
        Directory::new(
            mode,
            '*',
            "/users".into(),
            vec![
                UserAccount {
                    name: "terry.adams".into(),
                    password: "1091990".into(),
                    domain: Some("contoso-students".into()),
                },
                UserAccount {
                    name: "ann".into(),
                    password: "annpw".into(),
                    domain: None,
                },
            ],
            vec![Credentials {
                name: "mailadmin".into(),
                password: "P@ssw0rd".into(),
            }],
        )
    }

    fn owner(l: Option<Login>) -> Option<String> {
        l.map(|l| l.view.owner().to_string())
    }

    #[test]
    fn each_mode_accepts_its_own_form_only() {
        let d = dir(AdminMode::Dovecot);
        assert_eq!(
            owner(d.login("terry.adams*mailadmin", "P@ssw0rd")),
            Some("terry.adams".into())
        );
        assert_eq!(owner(d.login("terry.adams*mailadmin", "1091990")), None);
        assert_eq!(
            owner(d.login("terry.adams*ann", "annpw")),
            None,
            "ann is no admin"
        );
        assert_eq!(
            owner(d.sasl_plain("terry.adams", "mailadmin", "P@ssw0rd")),
            Some("terry.adams".into())
        );
        assert_eq!(owner(d.sasl_plain("terry.adams", "ann", "annpw")), None);

        let e = dir(AdminMode::Exchange);
        assert_eq!(
            owner(e.login("contoso-students/mailadmin/terry.adams", "P@ssw0rd")),
            Some("terry.adams".into())
        );
        assert_eq!(
            owner(e.login("other/mailadmin/terry.adams", "P@ssw0rd")),
            None
        );
        assert_eq!(owner(e.login("terry.adams*mailadmin", "P@ssw0rd")), None);

        let m = dir(AdminMode::Mirapoint);
        assert_eq!(
            owner(m.login("#terry.adams@contoso-students#mailadmin#", "P@ssw0rd")),
            Some("terry.adams".into())
        );
        assert_eq!(
            owner(m.login("#terry.adams@contoso-students#mailadmin", "P@ssw0rd")),
            None
        );

        let p = dir(AdminMode::Plain);
        assert_eq!(owner(p.login("ann", "annpw")), Some("ann".into()));
        assert_eq!(owner(p.login("ann*mailadmin", "P@ssw0rd")), None);
        assert_eq!(owner(p.login("ann", "wrong")), None);
        assert_eq!(owner(p.login("nobody", "x")), None);
    }

    #[test]
    fn courier_admin_gets_the_shared_view_and_ignores_authzid() {
        let c = dir(AdminMode::Courier);
        let l = c.login("mailadmin", "P@ssw0rd").unwrap();
        assert_eq!(
            l.view,
            View::Shared {
                owner: "mailadmin".into(),
                root: "/users".into()
            }
        );
        let l2 = c
            .sasl_plain("terry.adams", "mailadmin", "P@ssw0rd")
            .unwrap();
        assert_eq!(l2.view, l.view);
    }

    #[test]
    fn configurable_separator() {
        let mut d = dir(AdminMode::Dovecot);
        d.separator = '%';
        assert!(d.login("ann%mailadmin", "P@ssw0rd").is_some());
        assert!(d.login("ann*mailadmin", "P@ssw0rd").is_none());
    }
}
