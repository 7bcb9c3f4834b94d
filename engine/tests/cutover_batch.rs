//! New-MigrationBatch for a cutover against fake-exchange and the fake tenant: the whole
//! organisation as users with their kinds, the batch refusals, the service provisioning the
//! recipients (passwords in an owner-only file), groups and contacts done, every mailbox's mail,
//! calendar and contacts copied over EWS, no Complete, and an incremental sync.

use std::sync::Arc;
use std::time::Duration;

use engine::Engine;
use engine::clock::ManualClock;
use engine::control::NewBatch;
use engine::control::endpoint::Endpoint;
use engine::control::status::{BatchStatus, UserStatus};
use engine::exchange::test::{TestInput, test};
use engine::exchange::{AdminCredential, ConnectTo};
use engine::pipeline::{Copier, CopyOptions};
use engine::provisioning::passwords_path;
use engine::service::{RunOptions, Service};
use engine::source::SourceSettings;
use fake_exchange::{Config, FakeExchange, RunningExchange};
use fake_target::{Settings, Tenant};
use harness::TenantTarget;
use mailmig_model::DirectoryKind;

struct World {
    clock: ManualClock,
    _exchange: RunningExchange,
    dir: tempfile::TempDir,
    engine: Arc<Engine>,
    tenant: Tenant,
    target: Arc<TenantTarget>,
}

async fn world(config: &str, accepted: &[&str]) -> World {
    world_with(config, accepted, false).await
}

async fn world_with(config: &str, accepted: &[&str], direct: bool) -> World {
    let exchange = FakeExchange::start(Config::from_toml(config).unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, exchange.ca_pem()).unwrap();
    let input = TestInput {
        email_address: "administrator@contoso.com".into(),
        credential: AdminCredential {
            user_name: "administrator@contoso.com".into(),
            password: "P@ssw0rd".into(),
        },
        exchange_server: None,
        rpc_proxy_server: None,
        nspi_server: None,
        mailbox_permission: None,
        accept_untrusted_certificates: false,
        ca_file: Some(ca),
        connect_to: exchange
            .connect_to()
            .iter()
            .map(|c| c.parse::<ConnectTo>().unwrap())
            .collect(),
        timeout: Duration::from_secs(10),
    };
    // With faults that hit EWS from the first request, the endpoint is made from the known
    // settings instead of a test (which the faults would fail).
    let settings = if direct {
        harness::cutover_settings(&exchange, input.ca_file.as_deref().unwrap())
    } else {
        test(&input, Some(false))
            .await
            .connection_settings
            .expect("the organisation answers")
            .endpoint_settings("P@ssw0rd")
    };
    let clock = ManualClock::new(chrono::Utc::now());
    let engine =
        Arc::new(Engine::open(&dir.path().join("state"), Arc::new(clock.clone())).unwrap());
    engine
        .endpoint_new(Endpoint::new(
            "CutoverEndpoint",
            SourceSettings::ExchangeOutlookAnywhere(Box::new(settings)),
        ))
        .unwrap();
    let tenant = Tenant::new(Settings {
        accepted_domains: accepted.iter().map(|d| d.to_string()).collect(),
        ..Settings::default()
    });
    let target = Arc::new(TenantTarget::new(tenant.clone()));
    World {
        clock,
        _exchange: exchange,
        dir,
        engine,
        tenant,
        target,
    }
}

fn seed() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/fake-exchange.toml"
    ))
    .unwrap()
}

fn cutover(name: &str, autostart: bool) -> NewBatch {
    NewBatch {
        name: name.into(),
        source_endpoint: "CutoverEndpoint".into(),
        autostart,
        ..NewBatch::default()
    }
}

async fn run(w: &World) -> Result<(), engine::Error> {
    let copy = Copier::new(w.engine.clone(), w.target.clone(), CopyOptions::default());
    let service = Service::new(w.engine.clone(), Arc::new(copy), w.target.clone());
    tokio::time::timeout(
        Duration::from_secs(60),
        service.run(RunOptions {
            poll: Duration::from_millis(5),
            ..RunOptions::default()
        }),
    )
    .await
    .expect("the run ends")
}

#[tokio::test]
async fn the_whole_organisation_is_one_batch_provisioned_by_the_service() {
    let w = world(&seed(), &["contoso.com"]).await;
    let out = w
        .engine
        .cutover_batch_new(cutover("CutoverBatch", true), &*w.target)
        .await
        .unwrap();
    assert_eq!((out.recipients, out.mailboxes), (8, 5));
    assert!(out.failed.is_empty(), "{:?}", out.failed);
    assert_eq!(out.not_taken.len(), 1, "the hidden mailbox");
    let users = w.engine.users(Some("CutoverBatch")).unwrap();
    assert!(users.iter().all(|u| u.status == UserStatus::Provisioning));
    let kind = |a: &str| users.iter().find(|u| u.email_address == a).unwrap().kind;
    assert_eq!(
        kind("team@contoso.com"),
        Some(DirectoryKind::DistributionGroup)
    );
    assert_eq!(kind("grace@fabrikam.com"), Some(DirectoryKind::MailContact));

    let second = w
        .engine
        .cutover_batch_new(cutover("Another", false), &*w.target)
        .await
        .unwrap_err();
    assert!(
        second
            .to_string()
            .contains("\"CutoverBatch\" already exists"),
        "{second}"
    );
    // Set-/Remove-MigrationUser don't apply to a cutover's recipients.
    let set = w
        .engine
        .user_set(
            "alice@contoso.com",
            engine::control::SetUser {
                password: Some("x".into()),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(set.to_string().contains("cutover recipient"), "{set}");
    let remove = w.engine.user_remove("alice@contoso.com").unwrap_err();
    assert!(
        remove.to_string().contains("removed as a whole"),
        "{remove}"
    );
    let complete = w.engine.batch_complete("CutoverBatch").unwrap_err();
    assert!(
        complete.to_string().contains("ends by removal"),
        "{complete}"
    );

    run(&w).await.unwrap();
    let users = w.engine.users(Some("CutoverBatch")).unwrap();
    let user = |a: &str| users.iter().find(|u| u.email_address == a).unwrap();
    for a in [
        "team@contoso.com",
        "grace@fabrikam.com",
        "frank@contoso.com",
    ] {
        assert_eq!(
            user(a).status,
            UserStatus::Synced,
            "{a}: nothing to copy once provisioned"
        );
        assert!(user(a).last_successful_sync_time.is_some());
    }
    for a in [
        "alice@contoso.com",
        "bob@contoso.com",
        "carol@contoso.com",
        "dave@contoso.com",
        "erin@contoso.com",
    ] {
        let u = user(a);
        assert_eq!(u.status, UserStatus::Synced, "{a}: {:?}", u.error);
        let expected = source_items(&w, a);
        assert!(expected > 5, "{a} has mail, events and contacts");
        assert_eq!(u.items_synced as usize, expected, "{a}: every item copied");
        assert_eq!(
            w.tenant.items(a, None).unwrap().len(),
            expected,
            "{a} in the tenant"
        );
    }
    let calendar = w
        .tenant
        .items("alice@contoso.com", Some("Calendar"))
        .unwrap();
    assert_eq!(
        calendar.len(),
        3,
        "alice's three events in the tenant's Calendar"
    );
    let contacts = w
        .tenant
        .items("alice@contoso.com", Some("Contacts"))
        .unwrap();
    assert_eq!(contacts.len(), 2);
    assert_eq!(
        w.engine.batch("CutoverBatch").unwrap().status,
        BatchStatus::Synced
    );
    let bob = w.tenant.directory_entry("bob@contoso.com").unwrap();
    assert_eq!(bob.links.manager.as_deref(), Some("alice@contoso.com"));
    assert_eq!(
        w.tenant
            .directory_entry("team@contoso.com")
            .unwrap()
            .members
            .len(),
        5
    );

    let passwords = passwords_path(&w.dir.path().join("state"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&passwords).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "owner-only");
    let text = std::fs::read_to_string(&passwords).unwrap();
    assert_eq!(text.lines().count(), 1 + 6, "{text}");
    let alice_pw = text
        .lines()
        .find(|l| l.starts_with("alice@contoso.com,"))
        .and_then(|l| l.split(',').nth(1))
        .unwrap();
    assert_eq!(
        w.tenant.initial_password("alice@contoso.com").as_deref(),
        Some(alice_pw),
        "the file holds the tenant's password"
    );

    // New mail at the source, then an incremental sync: one more item, nothing twice.
    let before = source_items(&w, "alice@contoso.com");
    w._exchange
        .org()
        .deliver(
            "alice@contoso.com",
            "Inbox",
            b"From: bob@contoso.com\r\nTo: alice@contoso.com\r\nSubject: after the first sync\r\nMessage-ID: <late@contoso.com>\r\n\r\nhello\r\n",
        )
        .unwrap();
    sync_now(&w).await;
    run(&w).await.unwrap();
    assert_eq!(source_items(&w, "alice@contoso.com"), before + 1);
    assert_eq!(
        w.tenant.items("alice@contoso.com", None).unwrap().len(),
        before + 1,
        "the new message, and no duplicate"
    );
    assert_eq!(
        std::fs::read_to_string(&passwords).unwrap(),
        text,
        "no new password"
    );
}

/// Set-MigrationBatch -SyncNow.
async fn sync_now(w: &World) {
    w.engine
        .batch_set(
            "CutoverBatch",
            engine::control::SetBatch {
                sync_now: true,
                ..Default::default()
            },
            &*w.target,
        )
        .await
        .unwrap();
}

/// Items of the kinds a cutover copies (mail, calendar, contacts) in a fake mailbox.
fn source_items(w: &World, mailbox: &str) -> usize {
    let state = w._exchange.org().lock();
    let mb = state.mailbox(mailbox).unwrap();
    mb.folders
        .iter()
        .filter(|f| {
            matches!(
                f.class,
                fake_exchange::org::FolderClass::Mail
                    | fake_exchange::org::FolderClass::Calendar
                    | fake_exchange::org::FolderClass::Contacts
            ) && f.parent.is_some()
        })
        .map(|f| f.items.len())
        .sum()
}

#[tokio::test]
async fn refusals_at_batch_creation() {
    let w = world(&seed(), &["fabrikam.com"]).await;
    let e = w
        .engine
        .cutover_batch_new(cutover("CutoverBatch", false), &*w.target)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("isn't an accepted domain"), "{e}");

    let w = world(&seed(), &["contoso.com"]).await;
    w.tenant.set_directory_sync(true);
    let e = w
        .engine
        .cutover_batch_new(cutover("CutoverBatch", false), &*w.target)
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("Directory synchronization is turned on"),
        "{e}"
    );
    assert!(
        w.engine.batches().unwrap().is_empty(),
        "nothing was created"
    );

    let big = seed().replace(
        "[[recipients]]\nkind = \"distribution-group\"",
        "[generate]\nmailboxes = 1996\n\n[[recipients]]\nkind = \"distribution-group\"",
    );
    let w = world(&big, &["contoso.com"]).await;
    let e = w
        .engine
        .cutover_batch_new(cutover("CutoverBatch", false), &*w.target)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("2001 mailboxes"), "{e}");
}

#[tokio::test]
async fn content_faults_cost_only_what_they_touch() {
    let faults = r#"
[faults.ews]
busy_first = 3
back_off_ms = 50
close_mid_response_every = 17
moving = ["dave@contoso.com"]
[[faults.ews.broken_items]]
mailbox = "alice@contoso.com"
folder = "Inbox"
index = 0
code = "ErrorItemCorrupt"
"#;
    let w = world_with(&format!("{}\n{faults}", seed()), &["contoso.com"], true).await;
    w.engine
        .cutover_batch_new(cutover("CutoverBatch", true), &*w.target)
        .await
        .unwrap();
    run(&w).await.unwrap();
    let dave = w.engine.user("dave@contoso.com").unwrap();
    assert_eq!(dave.status, UserStatus::Failed);
    assert!(
        dave.error
            .as_deref()
            .unwrap()
            .contains("ErrorMailboxMoveInProgress"),
        "{:?}",
        dave.error
    );
    let alice = w.engine.user("alice@contoso.com").unwrap();
    assert_eq!(alice.status, UserStatus::Synced, "{:?}", alice.error);
    assert_eq!(alice.items_skipped, 1, "the corrupt item, and only it");
    let skipped = w
        .engine
        .db
        .read(|tx| tx.skipped_items("alice@contoso.com"))
        .unwrap();
    let items: Vec<_> = skipped.iter().filter(|s| !s.is_folder()).collect();
    assert_eq!(items.len(), 1, "{skipped:#?}");
    assert!(
        items[0].detail.contains("ErrorItemCorrupt"),
        "{:?}",
        items[0]
    );
    let folders: Vec<&str> = skipped
        .iter()
        .filter(|s| s.is_folder())
        .map(|s| s.folder.as_str())
        .collect();
    assert_eq!(
        folders,
        ["Notes", "Tasks"],
        "tasks and notes are not copied, and say so"
    );
    assert_eq!(
        w.tenant.items("alice@contoso.com", None).unwrap().len(),
        source_items(&w, "alice@contoso.com") - 1
    );
    for a in ["bob@contoso.com", "carol@contoso.com", "erin@contoso.com"] {
        let u = w.engine.user(a).unwrap();
        assert_eq!(u.status, UserStatus::Synced, "{a}: {:?}", u.error);
        assert_eq!(
            w.tenant.items(a, None).unwrap().len(),
            source_items(&w, a),
            "{a}: throttling and cut responses cost nothing, and nothing is copied twice"
        );
    }
}

#[tokio::test]
async fn removal_waits_for_the_mx_switch_and_the_checklist_says_what_is_open() {
    use engine::control::cutover::CutoverRemoval;
    let w = world(&seed(), &["contoso.com"]).await;
    w.engine
        .cutover_batch_new(cutover("CutoverBatch", true), &*w.target)
        .await
        .unwrap();
    run(&w).await.unwrap();
    let refused = |r: CutoverRemoval| {
        w.engine
            .batch_remove_cutover("CutoverBatch", r)
            .unwrap_err()
            .to_string()
    };
    assert!(refused(CutoverRemoval::default()).contains("--mx-switched-at"));
    w.clock.advance(chrono::Duration::hours(1));
    let switched = w.engine.now();
    w.clock.advance(chrono::Duration::hours(2));
    let at = |t| CutoverRemoval {
        mx_switched_at: Some(t),
        force: false,
    };
    assert!(
        refused(at(switched)).contains("wait at least 72 hours"),
        "{}",
        refused(at(switched))
    );
    w.clock.advance(chrono::Duration::hours(80));
    let behind = refused(at(switched));
    assert!(
        behind.contains("8 of 8 users haven't synced since the MX switch"),
        "{behind}"
    );

    let list = w
        .engine
        .cutover_checklist("CutoverBatch", Some(switched), &*w.target)
        .await
        .unwrap();
    let step = |s: &str| list.iter().find(|i| i.step.contains(s)).unwrap().clone();
    let licences = step("Assign licences");
    assert!(!licences.done);
    assert!(
        licences.detail.contains("alice@contoso.com (disabled on ")
            && licences.detail.contains("unless licensed, in 26 days"),
        "said before the grace ends: {}",
        licences.detail
    );
    assert!(step("Every recipient provisioned").done);
    assert!(step("Point MX").done);
    assert!(!step("Wait 72 hours").done);
    assert!(!step("autodiscover -> autodiscover.outlook.com").done);

    // The incremental after the switch: mailboxes sync, contacts and groups are due and done.
    sync_now(&w).await;
    run(&w).await.unwrap();
    for u in w.engine.users(Some("CutoverBatch")).unwrap() {
        assert_eq!(
            u.status,
            UserStatus::Synced,
            "{}: {:?}",
            u.email_address,
            u.error
        );
        assert!(
            u.last_successful_sync_time.unwrap() > switched,
            "{}",
            u.email_address
        );
    }
    let list = w
        .engine
        .cutover_checklist("CutoverBatch", Some(switched), &*w.target)
        .await
        .unwrap();
    assert!(
        list.iter()
            .find(|i| i.step.contains("Wait 72 hours"))
            .unwrap()
            .done
    );
    let ids = |a: &str| w.engine.db.read(|tx| tx.item_id_count(a)).unwrap();
    assert!(ids("alice@contoso.com") > 5, "alice's EWS ids are kept");
    w.engine
        .batch_remove_cutover("CutoverBatch", at(switched))
        .unwrap();
    assert!(w.engine.batches().unwrap().is_empty(), "removed");
    assert_eq!(ids("alice@contoso.com"), 0, "and go with the batch");
    assert!(
        w.tenant.directory_entry("alice@contoso.com").is_some(),
        "removing the batch keeps what was migrated"
    );
}

#[tokio::test]
async fn a_group_waiting_for_a_member_is_retried_every_few_minutes_not_every_tick() {
    use engine::provisioning::provision_due;
    let config = seed()
        .replace(
            r#"members = ["alice@contoso.com", "bob@contoso.com", "carol@contoso.com", "dave@contoso.com", "erin@contoso.com"]"#,
            r#"members = ["alice@contoso.com", "um@contoso.com"]"#,
        )
        + "\n[[recipients]]\nkind = \"user-mailbox\"\naddress = \"um@contoso.com\"\num_enabled = true\n";
    let w = world(&config, &["contoso.com"]).await;
    w.engine
        .cutover_batch_new(cutover("CutoverBatch", true), &*w.target)
        .await
        .unwrap();
    let mut tries = std::collections::HashMap::new();
    let first = provision_due(&w.engine, &*w.target, &mut tries)
        .await
        .unwrap();
    assert_eq!(first, None);
    let team = w.engine.user("team@contoso.com").unwrap();
    assert_eq!(team.status, UserStatus::ProvisionUpdating);
    assert!(
        team.error.as_deref().unwrap().contains("um@contoso.com"),
        "{:?}",
        team.error
    );
    assert_eq!(
        w.engine.user("um@contoso.com").unwrap().status,
        UserStatus::Failed
    );

    // The admin's password changes on-premises: a try would now fail to read the directory,
    // which shows whether one was made.
    w._exchange
        .org()
        .set_password("administrator@contoso.com", "Changed-1")
        .unwrap();
    w.clock.advance(chrono::Duration::minutes(1));
    let soon = provision_due(&w.engine, &*w.target, &mut tries)
        .await
        .unwrap();
    assert_eq!(
        soon, None,
        "a batch only waiting is not tried again on every tick"
    );
    w.clock.advance(chrono::Duration::minutes(5));
    let later = provision_due(&w.engine, &*w.target, &mut tries)
        .await
        .unwrap();
    let reason = later.expect("tried again after the interval");
    assert!(reason.contains("couldn't be read"), "{reason}");
    assert!(!reason.contains("Changed-1"), "no password in what is said");
}

#[tokio::test]
async fn incremental_syncs_ask_only_for_the_changes_and_an_invalid_state_relists_without_duplicates()
 {
    let w = world(&seed(), &["contoso.com"]).await;
    w.engine
        .cutover_batch_new(cutover("CutoverBatch", true), &*w.target)
        .await
        .unwrap();
    run(&w).await.unwrap();
    let alice = "alice@contoso.com";
    let total = source_items(&w, alice);
    let copied = w.tenant.items(alice, None).unwrap().len();
    assert_eq!(copied, total);
    let first = w._exchange.ews_item_changes();
    assert!(first >= 60, "the first sync lists every item ({first})");

    // Nothing changed: the next day's sync is answered with no item at all.
    w.clock.advance(chrono::Duration::hours(24));
    run(&w).await.unwrap();
    assert_eq!(
        w._exchange.ews_item_changes(),
        first,
        "a no-op sync lists nothing"
    );

    // One new message and one read flag: two changes travel, one message is copied.
    let org = w._exchange.org();
    org.deliver(
        alice,
        "Inbox",
        b"Subject: after the state\r\nMessage-ID: <state@contoso.com>\r\n\r\nhi\r\n",
    )
    .unwrap();
    let read = org.item_ids(alice, "Inbox").unwrap()[0];
    org.set_read(alice, read, false).unwrap();
    w.clock.advance(chrono::Duration::hours(24));
    run(&w).await.unwrap();
    assert_eq!(w._exchange.ews_item_changes(), first + 2);
    assert_eq!(w.tenant.items(alice, None).unwrap().len(), total + 1);

    // A restore on-premises: every kept state is refused; each folder is listed from the
    // start, and nothing is copied twice.
    for m in [alice, "bob@contoso.com"] {
        org.invalidate_sync_states(m).unwrap();
    }
    w.clock.advance(chrono::Duration::hours(24));
    run(&w).await.unwrap();
    assert!(w._exchange.ews_item_changes() >= first + 2 + total as u64);
    assert_eq!(w.tenant.items(alice, None).unwrap().len(), total + 1);
    for m in [alice, "bob@contoso.com"] {
        let u = w.engine.user(m).unwrap();
        assert_eq!(u.status, UserStatus::Synced, "{m}: {:?}", u.error);
    }
    let source = harness::source_from_fake_exchange(org, alice).unwrap();
    let target = fake_target::inspect::target_messages(&w.tenant, alice)
        .await
        .unwrap();
    let r = fake_target::inspect::reconcile(&source, &target);
    assert!(r.is_exact(), "{r:#?}");
}
