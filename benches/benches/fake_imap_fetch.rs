//! How fast fake-imap serves a pipelined `UID FETCH 1:* (UID FLAGS INTERNALDATE BODY.PEEK[])`
//! of 10,000 messages of 4 KB over loopback: the source side of every throughput benchmark, so
//! it must never be the bottleneck of the engine's numbers.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fake_imap::FakeImapServer;
use fake_imap::generate::GeneratorConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MESSAGES: usize = 10_000;

async fn fetch_all(addr: std::net::SocketAddr) -> usize {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        b"a LOGIN u pw\r\nb EXAMINE INBOX\r\nc UID FETCH 1:* (UID FLAGS INTERNALDATE BODY.PEEK[])\r\nd LOGOUT\r\n",
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0;
    loop {
        let n = tcp.read(&mut buf).await.unwrap();
        if n == 0 {
            return total;
        }
        total += n;
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let generator = GeneratorConfig {
        min_size: 4096,
        max_size: 4096,
        ..GeneratorConfig::default()
    };
    let server = rt
        .block_on(
            FakeImapServer::new()
                .user("u", "pw")
                .generator(generator)
                .generated("u", "INBOX", MESSAGES)
                .start(),
        )
        .unwrap();
    let bytes: u64 = server
        .store()
        .messages("u", "INBOX")
        .unwrap()
        .iter()
        .map(|m| m.raw.len() as u64)
        .sum();
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
