//! A cutover through the in-process fakes: fake-exchange with N mailboxes x ~500 items (mail,
//! some calendar items and contacts; Autodiscover, LDAP and EWS over loopback TLS) into the
//! in-process tenant. Times `batch new` (the directory read over LDAP and planned), the
//! provisioning and content copy of the whole organisation (`run --until-idle`), and a no-op
//! incremental pass; every mailbox is checked item for item against the organisation.
//!
//! Run: `cargo bench -p mailmig-benches --bench cutover -- [MAILBOXES]` (default 100).

use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::Engine;
use engine::clock::ManualClock;
use engine::control::NewBatch;
use engine::control::endpoint::Endpoint;
use engine::pipeline::{Copier, CopyOptions};
use engine::service::{RunOptions, Service};
use engine::source::SourceSettings;
use fake_exchange::{Config, FakeExchange};
use fake_target::{Settings, Tenant};
use harness::TenantTarget;

fn organisation(mailboxes: usize) -> String {
    format!(
        r#"
[organisation]
name = "Contoso"
primary_domain = "contoso.com"
seed = 11
[[servers]]
name = "mail.contoso.com"
roles = ["ews"]
[[servers]]
name = "dc01.contoso.com"
roles = ["ldap"]
[[databases]]
name = "DB01"
server = "mail.contoso.com"
[[admins]]
address = "administrator@contoso.com"
password = "P@ssw0rd"
domain_admins = true
impersonation = true
[generate]
mailboxes = {mailboxes}
mail_contacts = 20
distribution_groups = 5
group_size = 20
[generate.content]
inbox = 300
sent_items = 100
user_folders = ["Projects", "Archive"]
per_user_folder = 40
calendar = 15
contacts = 5
"#
    )
}

async fn run(engine: &Arc<Engine>, target: &Arc<TenantTarget>) -> Duration {
    let copy = Copier::new(engine.clone(), target.clone(), CopyOptions::default());
    let service = Service::new(engine.clone(), Arc::new(copy), target.clone());
    let started = Instant::now();
    service
        .run(RunOptions {
            poll: Duration::from_millis(5),
            ..RunOptions::default()
        })
        .await
        .expect("the run ends");
    started.elapsed()
}

#[tokio::main]
async fn main() {
    let mailboxes: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .and_then(|a| a.parse().ok())
        .unwrap_or(100);
    let exchange = FakeExchange::start(Config::from_toml(&organisation(mailboxes)).unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, exchange.ca_pem()).unwrap();
    let settings = harness::cutover_settings(&exchange, &ca);
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
        accepted_domains: vec!["contoso.com".into()],
        ..Settings::default()
    });
    let target = Arc::new(TenantTarget::new(tenant.clone()));

    let started = Instant::now();
    let out = engine
        .cutover_batch_new(
            NewBatch {
                name: "CutoverBatch".into(),
                source_endpoint: "CutoverEndpoint".into(),
                autostart: true,
                ..NewBatch::default()
            },
            &*target,
        )
        .await
        .unwrap();
    let created = started.elapsed();
    let initial = run(&engine, &target).await;
    let users = engine.users(Some("CutoverBatch")).unwrap();
    let mut items = 0u64;
    let mut bytes = 0u64;
    for u in &users {
        assert_eq!(
            u.status,
            engine::control::status::UserStatus::Synced,
            "{}: {:?}",
            u.email_address,
            u.error
        );
        items += u.items_synced;
        bytes += u.bytes_synced;
        if u.kind.is_some_and(|k| k.has_mailbox()) {
            let held = tenant.items(&u.email_address, None).unwrap().len() as u64;
            assert_eq!(held, u.items_synced, "{}", u.email_address);
        }
    }
    clock.advance(chrono::Duration::hours(25));
    let noop = run(&engine, &target).await;
    let secs = initial.as_secs_f64();
    println!(
        "| mailboxes | recipients | items | MiB | batch new | initial (provision + copy) | items/s | MiB/s | no-op incremental |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {items} | {:.1} | {:.2} s | {:.2} s | {:.0} | {:.1} | {:.2} s |",
        out.mailboxes,
        out.recipients,
        bytes as f64 / 1_048_576.0,
        created.as_secs_f64(),
        secs,
        items as f64 / secs,
        bytes as f64 / 1_048_576.0 / secs,
        noop.as_secs_f64()
    );
}
