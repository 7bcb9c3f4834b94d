//! The data plane's throughput: fake-imap -> engine -> in-process fake tenant.
//! - 10,000 messages of 4 KB (elements/s and bytes/s);
//! - 200 messages of 1 MB;
//! - a no-op re-sync of the 10,000 (nothing new: listing and comparing only).

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mailmig_benches::{prepare, server, sync};

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut group = c.benchmark_group("copy");
    group.sample_size(10);

    let (small, small_bytes) = rt.block_on(server(10_000, 4096));
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

    let (large, large_bytes) = rt.block_on(server(200, 1024 * 1024));
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
