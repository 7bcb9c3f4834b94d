//! New-MigrationBatch for a cutover against fake-exchange and the fake tenant: the whole
//! organisation as users with their kinds, the batch refusals, the service provisioning the
//! recipients (passwords in an owner-only file), groups and contacts done, mailboxes on to the
//! content step, no Complete, and a retry that provisions again.

use std::sync::Arc;
use std::time::Duration;

use engine::Engine;
use engine::clock::SystemClock;
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
    _exchange: RunningExchange,
    dir: tempfile::TempDir,
    engine: Arc<Engine>,
    tenant: Tenant,
    target: Arc<TenantTarget>,
}

async fn world(config: &str, accepted: &[&str]) -> World {
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
    let found = test(&input, Some(false)).await;
    let settings = found
        .connection_settings
        .expect("the organisation answers")
        .endpoint_settings("P@ssw0rd");
    let engine = Arc::new(Engine::open(&dir.path().join("state"), Arc::new(SystemClock)).unwrap());
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
    for a in ["alice@contoso.com", "bob@contoso.com"] {
        // Content over EWS is the next step: until it exists, the user fails with that said.
        let u = user(a);
        assert_eq!(u.status, UserStatus::Failed, "{a}");
        assert!(
            u.error.as_deref().unwrap().contains("EWS isn't built yet"),
            "{:?}",
            u.error
        );
    }
    assert_eq!(
        w.engine.batch("CutoverBatch").unwrap().status,
        BatchStatus::SyncedWithErrors
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

    // Start retries the failed: they are provisioned again (no second password), then fail
    // at the same content step.
    w.engine.batch_start("CutoverBatch").unwrap();
    assert_eq!(
        w.engine.user("alice@contoso.com").unwrap().status,
        UserStatus::Provisioning
    );
    run(&w).await.unwrap();
    assert_eq!(std::fs::read_to_string(&passwords).unwrap(), text);
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
