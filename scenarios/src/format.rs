//! The scenario file format (TOML; documented in scenarios/README.md).

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// One scenario: a source server, a target tenant, an endpoint, a CSV, and a timeline of steps
/// with expectations.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Seeds the source's generated mail and faults (overridable with `--seed`).
    #[serde(default)]
    pub seed: Option<u64>,
    /// A fake-imap configuration, with the same keys as `mailmig fake-imap serve`.
    #[serde(default)]
    pub source: Option<toml::Table>,
    /// Instead of an IMAP source, a cutover: a fake-exchange organisation with the same keys
    /// as `mailmig fake-exchange serve`, inline, added to `exchange_file` when both are given
    /// (tables merged, arrays such as `recipients` extended).
    #[serde(default)]
    pub exchange: Option<toml::Table>,
    /// The organisation as a file next to the scenario.
    #[serde(default)]
    pub exchange_file: Option<PathBuf>,
    /// A fake-target configuration, with the same keys as `mailmig fake-target serve`.
    #[serde(default)]
    pub target: toml::Table,
    /// Instead of the tenant: a second fake IMAP server as the target (IMAP to IMAP), with
    /// the same keys as `[source]` plus `username_format` and `password` for the login.
    #[serde(default)]
    pub imap_target: Option<toml::Table>,
    #[serde(default)]
    pub endpoint: EndpointSection,
    /// The migration CSV, inline.
    #[serde(default)]
    pub csv: Option<String>,
    /// The migration CSV, as a file next to the scenario.
    #[serde(default)]
    pub csv_file: Option<PathBuf>,
    pub steps: Vec<Step>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EndpointSection {
    /// none | ssl | tls (ssl and tls trust the fake server's CA).
    pub security: String,
    pub max_concurrent_migrations: u32,
    pub max_concurrent_incremental_syncs: u32,
    /// basic | plain
    pub authentication: String,
    pub master_separator: char,
    pub accept_untrusted_certificates: bool,
    /// Give the endpoint no CA file (to rehearse an untrusted certificate).
    pub no_ca_file: bool,
    /// Limits of the copy, smaller than Exchange's so scenarios stay fast.
    pub item_cap: Option<usize>,
    pub max_message_size: Option<u64>,
    pub error_budget: Option<u32>,
}

impl Default for EndpointSection {
    fn default() -> Self {
        Self {
            security: "none".into(),
            max_concurrent_migrations: 20,
            max_concurrent_incremental_syncs: 10,
            authentication: "basic".into(),
            master_separator: '*',
            accept_untrusted_certificates: false,
            no_ca_file: false,
            item_cap: None,
            max_message_size: None,
            error_budget: None,
        }
    }
}

/// One step of the timeline.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Step {
    /// Test-MigrationServerAvailability against the source.
    TestServer {
        /// Cutover: the admin's address for Autodiscover.
        #[serde(default)]
        email_address: Option<String>,
        #[serde(default)]
        supports_cutover: Option<bool>,
        #[serde(default)]
        accept_untrusted_certificates: bool,
        /// Cutover: no CA file for the organisation's certificate (a self-signed one is then
        /// untrusted).
        #[serde(default)]
        no_ca_file: bool,
        #[serde(default)]
        username: Option<String>,
        #[serde(default)]
        password: Option<String>,
        result: String,
        #[serde(default)]
        message_contains: Option<String>,
    },
    /// Cutover: New-MigrationEndpoint -ExchangeOutlookAnywhere by Autodiscover, as
    /// `CutoverEndpoint`.
    NewEndpoint {
        #[serde(default)]
        email_address: Option<String>,
        #[serde(default)]
        password: Option<String>,
        #[serde(default)]
        accept_untrusted_certificates: bool,
        #[serde(default)]
        no_ca_file: bool,
        /// Made from the organisation's known settings instead of a test (for faults that
        /// would fail the test itself).
        #[serde(default)]
        known_settings: bool,
        #[serde(default)]
        expect_error: Option<String>,
    },
    NewBatch {
        /// Cutover: recipients and mailboxes taken, and who is left out.
        #[serde(default)]
        recipients: Option<usize>,
        #[serde(default)]
        mailboxes: Option<usize>,
        #[serde(default)]
        not_taken: Vec<String>,
        name: String,
        #[serde(default)]
        autostart: bool,
        #[serde(default)]
        exclude_folders: Vec<String>,
        #[serde(default)]
        include_folders: Vec<String>,
        #[serde(default)]
        start_after_hours: Option<i64>,
        #[serde(default)]
        complete_after_hours: Option<i64>,
        #[serde(default)]
        expect_error: Option<String>,
    },
    Start {
        batch: String,
        #[serde(default)]
        expect_error: Option<String>,
    },
    Stop {
        batch: String,
        #[serde(default)]
        expect_error: Option<String>,
    },
    Complete {
        batch: String,
        #[serde(default)]
        expect_error: Option<String>,
    },
    Remove {
        /// Cutover: removal after the MX switch (the time of the `mx-switch` step), or forced.
        #[serde(default)]
        after_mx_switch: bool,
        #[serde(default)]
        force: bool,
        batch: String,
        #[serde(default)]
        expect_error: Option<String>,
    },
    SyncNow {
        batch: String,
        #[serde(default)]
        expect_error: Option<String>,
    },
    AddUsers {
        batch: String,
        csv: String,
        #[serde(default)]
        expect_error: Option<String>,
    },
    /// Cutover: the MX records point to the tenant from now on.
    MxSwitch,
    /// Cutover: the post-migration checklist; steps (by part of their text) done and open,
    /// and text its details contain.
    Checklist {
        batch: String,
        #[serde(default)]
        done: Vec<String>,
        #[serde(default)]
        open: Vec<String>,
        #[serde(default)]
        detail_contains: Vec<String>,
    },
    /// Cutover: a change in an on-premises mailbox: `read`, `unread` or `delete` of the
    /// folder's `index`th item (oldest first).
    ExchangeChange {
        mailbox: String,
        folder: String,
        index: usize,
        change: String,
    },
    /// Cutover: an admin's password changes on-premises.
    ExchangePassword {
        admin: String,
        password: String,
    },
    /// The migration service, until nothing is due now.
    Run,
    /// The migration service killed after `after_ms` of work; the next run recovers.
    Kill {
        after_ms: u64,
    },
    /// The virtual clock moves on (the tenant's licence grace and throttling too).
    Advance {
        hours: i64,
    },
    /// New generated mail at the source (cutover: `user` is the mailbox's address, and a
    /// calendar or contacts folder gets events or contacts).
    Deliver {
        user: String,
        folder: String,
        count: usize,
    },
    SetFlags {
        user: String,
        folder: String,
        uid: u32,
        flags: Vec<String>,
    },
    Expunge {
        user: String,
        folder: String,
        uids: Vec<u32>,
    },
    UidvalidityChange {
        user: String,
        folder: String,
    },
    /// Target-side changes.
    Unlicense {
        address: String,
    },
    SetQuota {
        address: String,
        bytes: u64,
    },
    Expect(Box<Expect>),
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    #[serde(default)]
    pub batch: Option<String>,
    #[serde(default)]
    pub batch_status: Option<String>,
    /// The batch no longer exists.
    #[serde(default)]
    pub batch_gone: bool,
    #[serde(default)]
    pub users: Vec<ExpectUser>,
    /// Every user's target equals its source, modulo the documented limits (skipped items and
    /// folders); extra items at the target are allowed only with `allow_extra`.
    #[serde(default)]
    pub target_equals_source: bool,
    #[serde(default)]
    pub allow_extra: bool,
    /// Cutover: recipients the tenant's directory has, and has not.
    #[serde(default)]
    pub tenant_has: Vec<String>,
    #[serde(default)]
    pub tenant_lacks: Vec<String>,
    /// Cutover: members of tenant groups, by count.
    #[serde(default)]
    pub members: std::collections::BTreeMap<String, usize>,
    /// At most this many connections at the source at once, over the scenario so far.
    #[serde(default)]
    pub max_source_connections: Option<usize>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectUser {
    pub email: String,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub items_synced: Option<u64>,
    #[serde(default)]
    pub items_skipped: Option<u64>,
    #[serde(default)]
    pub error_contains: Option<String>,
    /// Skipped items by reason, e.g. `{ LargeItem = 1 }`.
    #[serde(default)]
    pub skipped: Option<std::collections::BTreeMap<String, u64>>,
    /// Folders skipped, by reason (`FolderName`, `Excluded`, ...).
    #[serde(default)]
    pub skipped_folders: Option<std::collections::BTreeMap<String, String>>,
}

impl Scenario {
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }
}
