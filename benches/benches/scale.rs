//! Batches at Exchange's scale: N users x 2 small messages through the in-process fakes
//! (fake-imap in Dovecot's admin mode, the in-process tenant with N mailboxes), timing
//! `batch new` (CSV parse + recipient checks + insert), the initial sync of the whole batch
//! (`run --until-idle`) and a no-op incremental pass 24 hours later, and the peak RSS of the
//! process (the engine and both fakes with all their mail).
//!
//! Run: `cargo bench -p mailmig-benches --bench scale -- 1000 5000 50000 [--engine-rss]`
//! (default sizes: 1000 5000). Prints one table row per size; the cost per user should stay
//! flat as the batch grows. `--engine-rss` runs each size again with the fakes in a child
//! process (this binary with `--serve-fakes N`) and the tenant over HTTP, for the peak RSS of
//! the engine alone (`--engine-only` skips the in-process rows).

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

/// The two fakes of a run: fake-imap with `users` users x 2 small messages, and a tenant with
/// their mailboxes.
async fn fakes(users: usize, clock: &ManualClock) -> (fake_imap::ServerHandle, Tenant) {
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
    let tenant = Tenant::from_config(&tenant_config, Arc::new(clock.clone())).expect("tenant");
    (source, tenant)
}

async fn one(users: usize) -> Row {
    let clock = ManualClock::at_epoch();
    let (source, tenant) = fakes(users, &clock).await;
    let target: Arc<dyn Target> = Arc::new(TenantTarget(Arc::new(tenant.clone())));
    let dir = tempfile::tempdir().expect("temp dir");
    let port = source.imap_addr().port();
    // The peak from here on is the engine's (and the fakes' growth as mail is imported).
    std::fs::write("/proc/self/clear_refs", "5").ok();
    let base_mib = status_mib("VmRSS:");
    let batch_new_http = http_batch_new(
        &tenant,
        &dir.path().join("http-state"),
        &clock,
        port,
        csv(users).as_bytes(),
    )
    .await;
    let t = run_engine(users, port, target, &clock, &dir.path().join("state")).await;
    Row {
        users,
        batch_new: t.batch_new,
        batch_new_http,
        initial: t.initial,
        noop: t.noop,
        synced: t.synced,
        base_mib,
        peak_mib: peak_rss_mib(),
    }
}

fn csv(users: usize) -> String {
    mailmig_benches::csv(users, DOMAIN)
}

struct Timings {
    batch_new: Duration,
    initial: Duration,
    noop: Duration,
    synced: usize,
}

/// The engine's part: the endpoint, `batch new --autostart`, the initial sync, and a no-op
/// incremental pass 25 hours later.
async fn run_engine(
    users: usize,
    port: u16,
    target: Arc<dyn Target>,
    clock: &ManualClock,
    state: &Path,
) -> Timings {
    let engine = Arc::new(Engine::open(state, Arc::new(clock.clone())).expect("state opens"));
    let mut endpoint = Endpoint::imap("Source", "127.0.0.1", port, Security::None);
    endpoint.max_concurrent_migrations = 100;
    endpoint.max_concurrent_incremental_syncs = 100;
    engine.endpoint_new(endpoint).expect("endpoint");
    let batch_new = timed_batch_new(&engine, csv(users).as_bytes(), &*target, true).await;
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
    Timings {
        batch_new,
        initial,
        noop,
        synced,
    }
}

/// The fakes in a child process (this binary with `--serve-fakes N`), the tenant over HTTP:
/// the engine's own peak RSS, and its times with a tenant across a socket.
async fn engine_alone(users: usize) -> (Timings, u64) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(std::env::current_exe().expect("this binary"))
        .args(["--serve-fakes", &users.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the fakes' process starts");
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut value = |key: &str| {
        let line = lines.next().expect("a line").expect("UTF-8");
        line.strip_prefix(&format!("{key}="))
            .unwrap_or_else(|| panic!("expected {key}=, got {line}"))
            .to_string()
    };
    let port: u16 = value("IMAP").parse().expect("a port");
    let url = value("TENANT");
    let clock = ManualClock::at_epoch();
    let target: Arc<dyn Target> = Arc::new(TenantTarget(Arc::new(
        fake_target::http::HttpTenant::new(&url, "token"),
    )));
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write("/proc/self/clear_refs", "5").ok();
    let t = run_engine(users, port, target, &clock, &dir.path().join("state")).await;
    let peak = peak_rss_mib();
    drop(child.stdin.take());
    let _ = child.wait();
    (t, peak)
}

/// Child mode: serve both fakes until standard input closes.
async fn serve_fakes(users: usize) {
    let clock = ManualClock::at_epoch();
    let (source, tenant) = fakes(users, &clock).await;
    let server = fake_target::http::serve(tenant, "token".into())
        .await
        .expect("HTTP tenant");
    println!("IMAP={}", source.imap_addr().port());
    println!("TENANT={}", server.url());
    tokio::task::spawn_blocking(|| {
        let mut sink = String::new();
        while std::io::stdin().read_line(&mut sink).unwrap_or(0) > 0 {}
    })
    .await
    .ok();
    drop(server);
    drop(source);
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
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if args.first().map(String::as_str) == Some("--serve-fakes") {
        let users = args
            .get(1)
            .and_then(|a| a.parse().ok())
            .expect("--serve-fakes N");
        runtime.block_on(serve_fakes(users));
        return;
    }
    if args.first().map(String::as_str) == Some("--engine-alone") {
        // A process of its own: its peak RSS is the engine's and nothing else's.
        let users = args
            .get(1)
            .and_then(|a| a.parse().ok())
            .expect("--engine-alone N");
        let (t, peak) = runtime.block_on(engine_alone(users));
        println!(
            "| {users} | {peak} MiB | {:.2} s | {:.2} s | {} |",
            t.initial.as_secs_f64(),
            t.noop.as_secs_f64(),
            t.synced
        );
        return;
    }
    let engine_rss = args
        .iter()
        .any(|a| a == "--engine-rss" || a == "--engine-only");
    let only_engine = args.iter().any(|a| a == "--engine-only");
    let sizes: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let sizes = if sizes.is_empty() {
        vec![1000, 5000]
    } else {
        sizes
    };
    if !only_engine {
        println!(
            "| users | batch new | per user | batch new, HTTP tenant | initial sync | per user | no-op pass | per user | users with 2 items | RSS with the fakes loaded | peak RSS after (engine + tenant growth) |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|");
    }
    for &n in sizes.iter().filter(|_| !only_engine) {
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
    if engine_rss {
        println!();
        println!(
            "| users | the engine alone (fakes in another process, tenant over HTTP): peak RSS | initial sync | no-op pass | users with 2 items |"
        );
        println!("|---|---|---|---|---|");
        for &n in &sizes {
            let out = std::process::Command::new(std::env::current_exe().expect("this binary"))
                .args(["--engine-alone", &n.to_string()])
                .output()
                .expect("the engine's process runs");
            print!("{}", String::from_utf8_lossy(&out.stdout));
        }
    }
}
