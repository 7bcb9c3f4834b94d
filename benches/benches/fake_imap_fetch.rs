//! How fast fake-imap serves a pipelined `UID FETCH 1:* (UID FLAGS INTERNALDATE BODY.PEEK[])`
//! of 10,000 messages of 4 KB over loopback: the source side of every throughput benchmark, so
//! it must never be the bottleneck of the engine's numbers.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mailmig_benches::{fetch_all, server};

const MESSAGES: usize = 10_000;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (server, bytes) = rt.block_on(server(MESSAGES, 4096));
    let mut group = c.benchmark_group("fake_imap");
    group.sample_size(10);
    group.throughput(Throughput::Elements(MESSAGES as u64));
    group.bench_function("uid_fetch_10k_x_4k_messages", |b| {
        b.to_async(&rt).iter(|| fetch_all(server.imap_addr()))
    });
    group.throughput(Throughput::Bytes(bytes));
    group.bench_function("uid_fetch_10k_x_4k_bytes", |b| {
        b.to_async(&rt).iter(|| fetch_all(server.imap_addr()))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
