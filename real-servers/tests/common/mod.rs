//! What the interop and differential suites share: the fixture mail, a migration through the
//! engine (into the in-process tenant or into an IMAP server), and message-by-message checks.

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use engine::clock::ManualClock;
use engine::control::endpoint::Endpoint;
use engine::control::state::BatchSettings;
use engine::control::status::UserStatus;
use engine::control::{Engine, NewBatch};
use engine::imap::{Authentication, ImapSettings, Security};
use engine::pipeline::plan::{Plan, SourceFolder, plan};
use engine::pipeline::{Copier, CopyOptions};
use engine::service::{RunOptions, Service};
use engine::source::SourceSettings;
use engine::target::Target;
use engine::target::imap::{ImapTarget, ImapTargetConfig, KEY_HEADER};
use fake_target::inspect::{
    Reconciliation, SourceMessage, TargetMessage, fingerprint, reconcile, target_messages,
};
use fake_target::{ItemFlags, Recipient, Settings, Tenant};
use harness::TenantTarget;
use real_servers::{Message, RealServer, Stored};

pub const DOMAIN: &str = "contoso.edu";

/// The fixture's mail for one user: plain and 8-bit text, a multipart message, no Message-ID,
/// flags and keywords, nested and non-ASCII folders, distinct internal dates.
pub fn fixture_mail() -> Vec<Message> {
    let text = |n: u32, subject: &str, body: &str| {
        format!(
            "From: Ann <ann@example.org>\r\nTo: user@{DOMAIN}\r\nSubject: {subject}\r\n\
             Date: Mon, 0{n} Mar 2025 10:00:00 +0000\r\nMessage-ID: <m{n}-{subject}@example.org>\r\n\
             MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: 8bit\r\n\r\n{body}\r\n"
        )
        .into_bytes()
    };
    let multipart = b"From: b@example.org\r\nSubject: report\r\nMIME-Version: 1.0\r\n\
        Content-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\n\
        see attached\r\n--XX\r\nContent-Type: application/octet-stream\r\n\
        Content-Transfer-Encoding: base64\r\n\r\nAAECAwQFBgcICQ==\r\n--XX--\r\n"
        .to_vec();
    vec![
        Message::new("INBOX", text(1, "hello", "plain text"))
            .flags(&["\\Seen"])
            .date("2025-03-01T10:00:00Z"),
        Message::new("INBOX", text(2, "gruss", "Grüße aus Köln, ça va?"))
            .flags(&["$Work"])
            .date("2025-03-02T11:30:00+02:00"),
        Message::new("INBOX", multipart).date("2025-03-03T09:15:00Z"),
        Message::new("Sent", text(4, "sent1", "sent one"))
            .flags(&["\\Seen"])
            .date("2025-02-01T08:00:00Z"),
        Message::new("Sent", text(5, "sent2", "sent two"))
            .flags(&["\\Seen", "\\Answered"])
            .date("2025-02-02T08:00:00Z"),
        Message::new("Projects", text(6, "plan", "the plan")).date("2024-12-24T18:00:00Z"),
        Message::new("Projects/2019", text(7, "old", "old news"))
            .flags(&["\\Flagged"])
            .date("2019-06-01T12:00:00Z"),
        Message::new("Entwürfe", text(8, "draft", "noch nicht fertig"))
            .flags(&["\\Draft"])
            .date("2025-03-04T07:00:00Z"),
    ]
}

/// What arrives between the initial and the incremental sync.
pub fn new_mail() -> Vec<Message> {
    vec![
        Message::new(
            "INBOX",
            b"From: c@example.org\r\nSubject: later\r\nMessage-ID: <later@x>\r\n\r\nnew\r\n"
                .to_vec(),
        )
        .date("2025-03-05T10:00:00Z"),
        Message::new(
            "Projects/2019",
            b"From: c@example.org\r\nSubject: later too\r\n\r\nno message id\r\n".to_vec(),
        )
        .flags(&["\\Seen"])
        .date("2025-03-05T11:00:00Z"),
    ]
}

/// Where a folder the user sees under `name` lands at the target, per the engine's plan.
pub fn target_folder(name: &str, delimiter: char) -> Option<String> {
    let f = SourceFolder {
        name: name.to_string(),
        relative: name.to_string(),
        delimiter: Some(delimiter),
        selectable: true,
        content: Default::default(),
    };
    match plan(&[f], &[], &[]).pop()?.1 {
        Plan::Copy { target, .. } => Some(target),
        Plan::Skip { .. } => None,
    }
}

/// The source as reconciliation input: what the user sees, through the engine's plan.
pub fn source_messages(stored: &[Stored]) -> Vec<SourceMessage> {
    stored
        .iter()
        .filter_map(|m| {
            Some(SourceMessage {
                label: format!("{} UID {}", m.folder, m.uid),
                folder: target_folder(&m.folder, m.delimiter)?,
                fingerprint: fingerprint(&m.raw),
                flags: ItemFlags::from_imap(&m.flags),
                received_time: Some(m.internal_date),
            })
        })
        .collect()
}

/// An IMAP target's mailbox as reconciliation input: its folder names back to paths, and the
/// key header the copy adds taken off.
pub fn imap_target_messages(stored: &[Stored]) -> Vec<TargetMessage> {
    stored
        .iter()
        .map(|m| {
            let mut path: Vec<String> = m.folder.split(m.delimiter).map(String::from).collect();
            if path[0].eq_ignore_ascii_case("INBOX") {
                path[0] = "Inbox".into();
            }
            let prefix = format!("{KEY_HEADER}: ");
            let raw = if m.raw.starts_with(prefix.as_bytes()) {
                let end = m.raw.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
                &m.raw[end..]
            } else {
                &m.raw[..]
            };
            TargetMessage {
                id: format!("{} UID {}", m.folder, m.uid),
                folder: path.join("/"),
                fingerprint: fingerprint(raw),
                flags: ItemFlags::from_imap(&m.flags),
                received_time: m.internal_date,
            }
        })
        .collect()
}

/// How the engine logs in to the source for one user.
#[derive(Clone, Debug)]
pub struct Login {
    pub user_name: String,
    pub password: String,
    pub user_root: Option<String>,
    pub authentication: Authentication,
}

/// Where a migration writes.
pub enum Into {
    Tenant(Tenant),
    Imap(Arc<ImapTarget>),
}

/// One user's migration world: an engine on a virtual clock, the endpoint, the target.
pub struct Migration {
    pub engine: Arc<Engine>,
    pub clock: ManualClock,
    pub target: Arc<dyn Target>,
    pub into: Into,
    pub email: String,
    _dir: tempfile::TempDir,
}

pub fn endpoint_settings(port: u16, security: Security, ca: Option<&Path>) -> ImapSettings {
    let mut s = ImapSettings::new("127.0.0.1", port, security);
    s.ca_file = ca.map(Path::to_path_buf);
    s
}

impl Migration {
    /// An engine with an endpoint on `settings`, writing to the tenant (`imap_target` None) or
    /// to an IMAP server (logged in to as `{local}*admin` with `adminpw`).
    pub fn new(
        mut settings: ImapSettings,
        login: &Login,
        email: &str,
        imap_target: Option<&RealServer>,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::at_epoch();
        let engine =
            Arc::new(Engine::open(&dir.path().join("state"), Arc::new(clock.clone())).unwrap());
        settings.authentication = login.authentication;
        engine
            .endpoint_new(Endpoint::new("src", SourceSettings::Imap(settings)))
            .unwrap();
        let (target, into): (Arc<dyn Target>, Into) = match imap_target {
            None => {
                let tenant = Tenant::with_clock(
                    Settings {
                        accepted_domains: vec![DOMAIN.into()],
                        ..Settings::default()
                    },
                    Arc::new(clock.clone()),
                );
                tenant
                    .add_recipient(Recipient::mailbox(email, true, tenant.now()))
                    .unwrap();
                (
                    Arc::new(TenantTarget::new(tenant.clone())),
                    Into::Tenant(tenant),
                )
            }
            Some(server) => {
                let t = Arc::new(ImapTarget::new(ImapTargetConfig {
                    remote_server: "127.0.0.1".into(),
                    port: server.imap_port(),
                    security: Security::None,
                    ca_file: None,
                    username_format: format!("{{local}}{}admin", server.master_separator()),
                    password: "adminpw".into(),
                    source_key_header: false,
                }));
                (t.clone(), Into::Imap(t))
            }
        };
        Self {
            engine,
            clock,
            target,
            into,
            email: email.to_string(),
            _dir: dir,
        }
    }

    pub async fn batch(&self, login: &Login) {
        let mut csv = String::from("EmailAddress,UserName,Password");
        if login.user_root.is_some() {
            csv.push_str(",UserRoot");
        }
        csv.push_str(&format!(
            "\n{},{},{}",
            self.email, login.user_name, login.password
        ));
        if let Some(root) = &login.user_root {
            csv.push_str(&format!(",{root}"));
        }
        csv.push('\n');
        self.engine
            .batch_new(
                NewBatch {
                    name: "B".into(),
                    source_endpoint: "src".into(),
                    autostart: true,
                    settings: BatchSettings::default(),
                },
                Path::new("users.csv"),
                csv.as_bytes(),
                &*self.target,
            )
            .await
            .unwrap();
    }

    /// Runs the service until nothing is due.
    pub async fn run(&self) {
        self.run_with(self.target.clone()).await
    }

    /// [`Migration::run`] writing through `target` (e.g. one that crashes after a write).
    pub async fn run_with(&self, target: Arc<dyn Target>) {
        let options = CopyOptions {
            timeout: Duration::from_secs(20),
            ..CopyOptions::default()
        };
        let copy = Copier::new(self.engine.clone(), target.clone(), options);
        Service::new(self.engine.clone(), Arc::new(copy), target)
            .run(RunOptions {
                poll: Duration::from_millis(5),
                ..RunOptions::default()
            })
            .await
            .unwrap();
    }

    /// The next day's incremental sync.
    pub async fn incremental(&self) {
        self.clock.advance(chrono::Duration::hours(25));
        self.run().await;
    }

    pub fn user(&self) -> engine::control::state::UserRow {
        self.engine.user(&self.email).unwrap()
    }

    /// Synced, no error, and every source message once in the target, byte for byte, flags
    /// and dates kept.
    pub async fn assert_exact(&self, what: &str, source: &[Stored], target: Option<&RealServer>) {
        let u = self.user();
        assert_eq!(u.status, UserStatus::Synced, "{what}: {u:?} {:?}", u.error);
        assert_eq!(u.error, None, "{what}");
        let skipped = self
            .engine
            .db
            .read(|tx| tx.skipped_items(&self.email))
            .unwrap();
        assert_eq!(
            u.items_synced as usize,
            source.len(),
            "{what}: {u:?}, skipped: {skipped:#?}"
        );
        let r = self.reconciliation(source, target).await;
        assert!(r.is_exact(), "{what}: {r:#?}");
    }

    pub async fn reconciliation(
        &self,
        source: &[Stored],
        target: Option<&RealServer>,
    ) -> Reconciliation {
        let src = source_messages(source);
        assert_eq!(src.len(), source.len(), "every fixture folder is migrated");
        let tgt = match (&self.into, target) {
            (Into::Tenant(t), _) => target_messages(t, &self.email).await.unwrap(),
            (Into::Imap(_), Some(server)) => {
                let local = self.email.split('@').next().unwrap();
                imap_target_messages(&server.mailbox(local).await.unwrap())
            }
            (Into::Imap(_), None) => panic!("an IMAP target needs its server to be read"),
        };
        reconcile(&src, &tgt)
    }
}
