//! The data plane's throughput: fake-imap -> engine -> in-process fake tenant.
//! - 10,000 messages of 4 KB (elements/s and bytes/s);
//! - 200 messages of 1 MB;
//! - a no-op re-sync of the 10,000 (nothing new: listing and comparing only).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use engine::Engine;
use engine::clock::ManualClock;
use engine::control::NewBatch;
use engine::control::endpoint::Endpoint;
use engine::imap::Security;
use engine::pipeline::{Copier, CopyOptions};
use engine::service::{RunOptions, Service};
use engine::target::Target;
use fake_imap::generate::GeneratorConfig;
use fake_imap::{FakeImapServer, ServerHandle};
use fake_target::{Recipient, Settings, Tenant};
use harness::TenantTarget;

struct Run {
    engine: Arc<Engine>,
    target: Arc<TenantTarget>,
    clock: ManualClock,
    _dir: tempfile::TempDir,
}

async fn prepare(server: &ServerHandle) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_epoch();
    let engine =
        Arc::new(Engine::open(&dir.path().join("state"), Arc::new(clock.clone())).unwrap());
    let tenant = Tenant::with_clock(
        Settings {
            accepted_domains: vec!["contoso.edu".into()],
            ..Settings::default()
        },
        Arc::new(clock.clone()),
    );
    tenant
        .add_recipient(Recipient::mailbox("u@contoso.edu", true, tenant.now()))
        .unwrap();
    let target = Arc::new(TenantTarget(Arc::new(tenant)));
    engine
        .endpoint_new(Endpoint::imap(
            "src",
            "127.0.0.1",
            server.imap_addr().port(),
            Security::None,
        ))
        .unwrap();
    engine
        .batch_new(
            NewBatch {
                name: "B".into(),
                source_endpoint: "src".into(),
                autostart: true,
                ..NewBatch::default()
            },
            Path::new("bench.csv"),
            b"EmailAddress,UserName,Password\nu@contoso.edu,u,pw\n",
            &*target as &dyn Target,
        )
        .await
        .unwrap();
    Run {
        engine,
        target,
        clock,
        _dir: dir,
    }
}

async fn sync(run: &Run) {
    let copy = Copier {
        engine: run.engine.clone(),
        target: run.target.clone(),
        options: CopyOptions::default(),
    };
    Service::new(run.engine.clone(), Arc::new(copy), run.target.clone())
        .run(RunOptions {
            poll: Duration::from_millis(1),
            ..RunOptions::default()
        })
        .await
        .unwrap();
}

fn server(rt: &tokio::runtime::Runtime, count: usize, size: usize) -> (ServerHandle, u64) {
    let generator = GeneratorConfig {
        min_size: size,
        max_size: size,
        ..GeneratorConfig::default()
    };
    let server = rt
        .block_on(
            FakeImapServer::new()
                .user("u", "pw")
                .generator(generator)
                .generated("u", "INBOX", count)
                .start(),
        )
        .unwrap();
    let bytes = server
        .store()
        .messages("u", "INBOX")
        .unwrap()
        .iter()
        .map(|m| m.raw.len() as u64)
        .sum();
    (server, bytes)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut group = c.benchmark_group("copy");
    group.sample_size(10);

    let (small, small_bytes) = server(&rt, 10_000, 4096);
    for (name, throughput) in [
        ("10k_x_4k_messages", Throughput::Elements(10_000)),
        ("10k_x_4k_bytes", Throughput::Bytes(small_bytes)),
    ] {
        group.throughput(throughput);
        group.bench_function(name, |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let small = &small;
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let run = prepare(small).await;
                        let started = Instant::now();
                        sync(&run).await;
                        total += started.elapsed();
                    }
                    total
                }
            })
        });
    }

    group.throughput(Throughput::Elements(10_000));
    group.bench_function("10k_noop_resync", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let small = &small;
            async move {
                let run = prepare(small).await;
                sync(&run).await;
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    run.clock.advance(chrono::Duration::hours(24));
                    let started = Instant::now();
                    sync(&run).await;
                    total += started.elapsed();
                }
                total
            }
        })
    });

    let (large, large_bytes) = server(&rt, 200, 1024 * 1024);
    group.throughput(Throughput::Bytes(large_bytes));
    group.bench_function("200_x_1m_bytes", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let large = &large;
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let run = prepare(large).await;
                    let started = Instant::now();
                    sync(&run).await;
                    total += started.elapsed();
                }
                total
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
