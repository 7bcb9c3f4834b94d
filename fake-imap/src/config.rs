//! The TOML configuration of a fake server (`mailmig fake-imap serve --config FILE.toml`, and
//! scenario files). Unknown keys are errors, so a typo never silently changes a test.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::admin::{AdminMode, Credentials};
use crate::error::Error;
use crate::faults::{Fault, Quirks};
use crate::generate::GeneratorConfig;
use crate::tls::TlsVersions;

/// 64 MiB: the default largest literal a client may send.
pub const DEFAULT_MAX_LITERAL: u64 = 64 * 1024 * 1024;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default)]
    pub admins: Vec<Credentials>,
    #[serde(default)]
    pub users: Vec<UserSection>,
    #[serde(default)]
    pub generator: GeneratorConfig,
    #[serde(default)]
    pub faults: Vec<Fault>,
    #[serde(default)]
    pub quirks: Quirks,
    #[serde(default)]
    pub extensions: Extensions,
}

/// RFC 6154's attributes.
pub const SPECIAL_USES: [&str; 7] = [
    "\\All",
    "\\Archive",
    "\\Drafts",
    "\\Flagged",
    "\\Junk",
    "\\Sent",
    "\\Trash",
];

/// IMAP extensions the server offers; each can be switched off to play a server without it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Extensions {
    pub idle: bool,
    #[serde(rename = "move")]
    pub move_: bool,
    pub enable: bool,
    pub multiappend: bool,
    pub esearch: bool,
    /// LIST-EXTENDED (RFC 5258) with LIST-STATUS (RFC 5819).
    pub list_extended: bool,
    /// SPECIAL-USE (RFC 6154): `\Sent`, `\Trash`, ... in LIST.
    pub special_use: bool,
    pub condstore: bool,
}

impl Default for Extensions {
    fn default() -> Self {
        Self {
            idle: true,
            move_: true,
            enable: true,
            multiappend: true,
            esearch: true,
            list_extended: true,
            special_use: true,
            condstore: true,
        }
    }
}

impl Extensions {
    /// None of them: an IMAP4rev1 server with only the fixed extensions (LITERAL+, ID,
    /// NAMESPACE, UIDPLUS, UNSELECT).
    pub fn none() -> Self {
        Self {
            idle: false,
            move_: false,
            enable: false,
            multiappend: false,
            esearch: false,
            list_extended: false,
            special_use: false,
            condstore: false,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSection {
    pub mode: AdminMode,
    /// Dovecot's master-user separator: one character.
    pub master_separator: String,
    /// The hierarchy delimiter: `/` or `.`.
    pub delimiter: String,
    /// Also listen for implicit TLS (IMAPS).
    pub implicit_tls: bool,
    /// Offer STARTTLS on the plain listener.
    pub starttls: bool,
    /// Announce LOGINDISABLED and refuse LOGIN until STARTTLS.
    pub login_disabled_until_tls: bool,
    pub tls_versions: TlsVersions,
    /// Courier: where users' folders appear for the admin (`/users` gives `/users/<user>/...`;
    /// `#shared` with delimiter `.` gives Courier's own `#shared.<user>.<folder>`).
    pub shared_root: String,
    /// Seeds generated mail, UIDVALIDITY values and probabilistic faults.
    pub seed: u64,
    /// The largest literal accepted from a client, in bytes.
    pub max_literal: u64,
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            mode: AdminMode::Plain,
            master_separator: "*".into(),
            delimiter: "/".into(),
            implicit_tls: false,
            starttls: true,
            login_disabled_until_tls: false,
            tls_versions: TlsVersions::All,
            shared_root: "/users".into(),
            seed: 0,
            max_literal: DEFAULT_MAX_LITERAL,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSection {
    pub name: String,
    pub password: String,
    #[serde(default)]
    pub domain: Option<String>,
    /// Folder name -> number of generated messages (0 makes an empty folder).
    #[serde(default)]
    pub folders: BTreeMap<String, usize>,
    /// Folders that exist but hold no messages (`\Noselect`).
    #[serde(default)]
    pub noselect: Vec<String>,
    /// Folder name -> its SPECIAL-USE attribute (`"\\Sent"`, `"\\Trash"`, `"\\Drafts"`,
    /// `"\\Junk"`, `"\\Archive"`, `"\\All"`, `"\\Flagged"`).
    #[serde(default)]
    pub special_use: BTreeMap<String, String>,
    /// Explicit messages from .eml files.
    #[serde(default)]
    pub messages: Vec<MessageFixture>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageFixture {
    pub folder: String,
    /// Path of an .eml file, relative to the config file.
    pub eml: PathBuf,
    #[serde(default)]
    pub flags: Vec<String>,
    /// RFC 3339; defaults to 2020-01-01T00:00:00Z.
    #[serde(default)]
    pub internal_date: Option<String>,
}

impl Config {
    /// Reads and validates a config file; relative .eml paths are resolved against its folder.
    pub fn from_file(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let mut config = Self::from_toml(&text).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        config.resolve_paths(path.parent().unwrap_or(Path::new(".")));
        Ok(config)
    }

    /// Makes relative .eml paths relative to `base` (the folder of the file they came from).
    pub fn resolve_paths(&mut self, base: &Path) {
        for user in &mut self.users {
            for m in &mut user.messages {
                if m.eml.is_relative() {
                    m.eml = base.join(&m.eml);
                }
            }
        }
    }

    pub fn from_toml(text: &str) -> Result<Self, Error> {
        let config: Config = toml::from_str(text).map_err(|e| Error::Invalid(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), Error> {
        self.separator()?;
        self.delimiter()?;
        for (i, f) in self.faults.iter().enumerate() {
            f.validate(i)?;
        }
        if self.server.max_literal > u64::from(u32::MAX - 65536) {
            return Err(Error::Invalid("server.max_literal is too large".into()));
        }
        let mut names = std::collections::BTreeSet::new();
        for u in &self.users {
            if !names.insert(u.name.as_str()) {
                return Err(Error::Invalid(format!("user {:?} is listed twice", u.name)));
            }
            for (folder, attr) in &u.special_use {
                if !SPECIAL_USES.iter().any(|s| s.eq_ignore_ascii_case(attr)) {
                    return Err(Error::Invalid(format!(
                        "users[{}].special_use: {folder:?} = {attr:?} is not one of {}",
                        u.name,
                        SPECIAL_USES.join(" ")
                    )));
                }
            }
        }
        Ok(())
    }

    pub fn separator(&self) -> Result<char, Error> {
        one_char(&self.server.master_separator, "server.master_separator")
    }

    pub fn delimiter(&self) -> Result<char, Error> {
        let c = one_char(&self.server.delimiter, "server.delimiter")?;
        if c != '/' && c != '.' {
            return Err(Error::Invalid(format!(
                "server.delimiter must be \"/\" or \".\", not {c:?}"
            )));
        }
        Ok(c)
    }
}

fn one_char(s: &str, field: &str) -> Result<char, Error> {
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => Ok(c),
        _ => Err(Error::Invalid(format!(
            "{field} must be exactly one character, not {s:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issue_example_parses() {
        let c = Config::from_toml(
            r#"
[server]
mode = "dovecot"
master_separator = "*"
delimiter = "/"
implicit_tls = true
starttls = true

[[admins]]
name = "mailadmin"
password = "P@ssw0rd"

[[users]]
name = "terry.adams"
password = "1091990"
domain = "contoso-students"
folders = { "INBOX" = 20, "Sent" = 5, "Archive/2019" = 3 }
"#,
        )
        .unwrap();
        assert_eq!(c.server.mode, AdminMode::Dovecot);
        assert_eq!(c.users[0].folders["Archive/2019"], 3);
    }

    #[test]
    fn errors_name_the_field() {
        let e = Config::from_toml("[server]\nmaster_separator = \"**\"\n").unwrap_err();
        assert!(e.to_string().contains("server.master_separator"), "{e}");
        let e = Config::from_toml("[server]\ndelimiter = \"|\"\n").unwrap_err();
        assert!(e.to_string().contains("server.delimiter"), "{e}");
        let e = Config::from_toml("[server]\nmood = \"x\"\n").unwrap_err();
        assert!(e.to_string().contains("mood"), "{e}");
        let e = Config::from_toml("[[faults]]\naction = \"fetch-no\"\n").unwrap_err();
        assert!(e.to_string().contains("faults[0]"), "{e}");
    }
}
