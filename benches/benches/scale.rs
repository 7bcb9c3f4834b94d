//! Batches at Exchange's scale: N users x 2 small messages through the in-process fakes
//! (fake-imap in Dovecot's admin mode, the in-process tenant with N mailboxes), timing
//! `batch new` (CSV parse + recipient checks + insert), the initial sync of the whole batch
//! (`run --until-idle`) and a no-op incremental pass 24 hours later, and the peak RSS of the
//! process (the engine and both fakes with all their mail).
//!
//! Run: `cargo bench -p mailmig-benches --bench scale -- 1000 5000 50000`
//! (default sizes: 1000 5000). Prints one table row per size; the cost per user should stay
//! flat as the batch grows.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::Engine;
use engine::clock::ManualClock;
use engine::control::NewBatch;
use engine::control::endpoint::Endpoint;
use engine::control::state::BatchSettings;
use engine::imap::Security;
use engine::pipeline::{Copier, CopyOptions};
use engine::service::{RunOptions, Service};
use engine::target::Target;
use fake_imap::generate::GeneratorConfig;
use fake_imap::{AdminMode, FakeImapServer};
use fake_target::{Tenant, TenantConfig};
use harness::TenantTarget;

const DOMAIN: &str = "contoso.edu";

fn peak_rss_mib() -> u64 {
    status_mib("VmHWM:")
}

fn status_mib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        / 1024
}

struct Row {
    users: usize,
    batch_new: Duration,
    batch_new_http: Duration,
    initial: Duration,
    noop: Duration,
    synced: usize,
    /// RSS once both fakes hold their users and mail, before the engine starts.
    base_mib: u64,
    peak_mib: u64,
}

async fn one(users: usize) -> Row {
    // Small messages: the subject is the batch's bookkeeping, not the bytes.
    let generator = GeneratorConfig {
        min_size: 300,
        max_size: 600,
        attachment: 0.0,
        ..GeneratorConfig::default()
    };
    let mut source = FakeImapServer::new()
        .mode(AdminMode::Dovecot)
        .admin("mailadmin", "P@ssw0rd")
        .generator(generator);
    for i in 0..users {
        let name = format!("u{i}");
        source = source.user(&name, "pw").generated(&name, "INBOX", 2);
    }
    let source = source.start().await.expect("fake-imap starts");

    let mut tenant_toml = format!("[tenant]\naccepted_domains = [\"{DOMAIN}\"]\n");
    for i in 0..users {
        tenant_toml.push_str(&format!(
            "[[mailboxes]]\naddress = \"u{i}@{DOMAIN}\"\nlicensed = true\n"
        ));
    }
    let tenant_config = TenantConfig::from_toml(&tenant_toml).expect("tenant config");
    let clock = ManualClock::at_epoch();
    let tenant = Tenant::from_config(&tenant_config, Arc::new(clock.clone())).expect("tenant");
    let target: Arc<dyn Target> = Arc::new(TenantTarget(Arc::new(tenant.clone())));

    let dir = tempfile::tempdir().expect("temp dir");
    let engine = Arc::new(
        Engine::open(&dir.path().join("state"), Arc::new(clock.clone())).expect("state opens"),
    );
    let mut endpoint = Endpoint::imap(
        "Source",
        "127.0.0.1",
        source.imap_addr().port(),
        Security::None,
    );
    endpoint.max_concurrent_migrations = 100;
    endpoint.max_concurrent_incremental_syncs = 100;
    engine.endpoint_new(endpoint).expect("endpoint");

    let mut csv = String::from("EmailAddress,UserName,Password\n");
    for i in 0..users {
        csv.push_str(&format!("u{i}@{DOMAIN},u{i}*mailadmin,P@ssw0rd\n"));
    }

    let csv_bytes = csv.as_bytes();
    // The peak from here on is the engine's (and the fakes' growth as mail is imported).
    std::fs::write("/proc/self/clear_refs", "5").ok();
    let base_mib = status_mib("VmRSS:");
    let batch_new_http = http_batch_new(
        &tenant,
        &dir.path().join("http-state"),
        &clock,
        source.imap_addr().port(),
        csv_bytes,
    )
    .await;

    let batch_new = timed_batch_new(&engine, csv_bytes, &*target, true).await;

    let copier = Copier {
        engine: engine.clone(),
        target: target.clone(),
        options: CopyOptions {
            timeout: Duration::from_secs(30),
            ..CopyOptions::default()
        },
    };
    let service = Service::new(engine.clone(), Arc::new(copier), target.clone());
    let options = || RunOptions {
        poll: Duration::from_millis(5),
        ..RunOptions::default()
    };
    let started = Instant::now();
    service.run(options()).await.expect("initial sync");
    let initial = started.elapsed();

    clock.advance(chrono::Duration::hours(25));
    let started = Instant::now();
    service.run(options()).await.expect("no-op pass");
    let noop = started.elapsed();

    let synced = engine
        .users(Some("Scale"))
        .expect("users")
        .iter()
        .filter(|u| u.items_synced == 2)
        .count();
    Row {
        users,
        batch_new,
        batch_new_http,
        initial,
        noop,
        synced,
        base_mib,
        peak_mib: peak_rss_mib(),
    }
}

/// `batch new` of the batch "Scale" from the Source endpoint, timed.
async fn timed_batch_new(
    engine: &Engine,
    csv: &[u8],
    target: &dyn Target,
    autostart: bool,
) -> Duration {
    let started = Instant::now();
    engine
        .batch_new(
            NewBatch {
                name: "Scale".into(),
                source_endpoint: "Source".into(),
                autostart,
                settings: BatchSettings::default(),
            },
            Path::new("users.csv"),
            csv,
            target,
        )
        .await
        .expect("batch new");
    started.elapsed()
}

/// `batch new` of the same CSV against the same tenant through its HTTP face (a state of its
/// own, so the main run is unaffected).
async fn http_batch_new(
    tenant: &Tenant,
    state: &Path,
    clock: &ManualClock,
    port: u16,
    csv: &[u8],
) -> Duration {
    let server = fake_target::http::serve(tenant.clone(), "token".into())
        .await
        .expect("HTTP tenant");
    let http = fake_target::http::HttpTenant::new(&format!("http://{}", server.addr()), "token");
    let target = TenantTarget(Arc::new(http));
    let engine = Engine::open(state, Arc::new(clock.clone())).expect("state opens");
    engine
        .endpoint_new(Endpoint::imap("Source", "127.0.0.1", port, Security::None))
        .expect("endpoint");
    let took = timed_batch_new(&engine, csv, &target, false).await;
    let invalid = engine
        .users(Some("Scale"))
        .expect("users")
        .iter()
        .filter(|u| u.error.is_some())
        .count();
    assert_eq!(invalid, 0, "every row's recipient was found over HTTP");
    took
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![1000, 5000]
    } else {
        sizes
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "| users | batch new | per user | batch new, HTTP tenant | initial sync | per user | no-op pass | per user | users with 2 items | RSS with the fakes loaded | peak RSS after (engine + tenant growth) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for n in sizes {
        let r = runtime.block_on(one(n));
        let per = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1000.0 / r.users as f64);
        println!(
            "| {} | {:.2} s | {} | {:.2} s | {:.2} s | {} | {:.2} s | {} | {} | {} MiB | +{} MiB |",
            r.users,
            r.batch_new.as_secs_f64(),
            per(r.batch_new),
            r.batch_new_http.as_secs_f64(),
            r.initial.as_secs_f64(),
            per(r.initial),
            r.noop.as_secs_f64(),
            per(r.noop),
            r.synced,
            r.base_mib,
            r.peak_mib.saturating_sub(r.base_mib)
        );
    }
}
