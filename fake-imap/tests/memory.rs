//! Memory stays bounded by connections, not by what they fetch: 100 connections each fetching
//! the same 10 MB message must not hold 100 copies of it. (Its own test binary, so no other
//! test's allocations blur the peak.)

mod common;

use std::time::Duration;

use common::status_kib;

use fake_imap::FakeImapServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CONNECTIONS: usize = 100;
const MESSAGE: usize = 10 * 1024 * 1024;

/// Logs in, fetches the message and reads it in small pieces, returning the bytes received.
async fn fetch_and_discard(addr: std::net::SocketAddr) -> usize {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"a LOGIN u pw\r\nb EXAMINE INBOX\r\nc UID FETCH 1 BODY.PEEK[]\r\nd LOGOUT\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 16 * 1024];
    let mut total = 0;
    loop {
        let n = tcp.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        total += n;
        // Reading slowly keeps every server session mid-literal at the same time.
        if total < MESSAGE / 2 {
            tokio::time::sleep(Duration::from_micros(50)).await;
        }
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_connections_fetching_ten_megabytes_stay_bounded() {
    let server = FakeImapServer::new().user("u", "pw").start().await.unwrap();
    let mut raw = b"Subject: big\r\n\r\n".to_vec();
    raw.resize(MESSAGE, b'x');
    let date = chrono::DateTime::parse_from_rfc3339("2021-01-01T00:00:00Z").unwrap();
    server.store().append("u", "INBOX", raw, &[], date).unwrap();

    // Reset the peak-RSS counter so it measures only what follows.
    std::fs::write("/proc/self/clear_refs", "5").expect("Linux clear_refs");
    let before = status_kib("VmRSS:");
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|_| tokio::spawn(fetch_and_discard(server.imap_addr())))
        .collect();
    for t in tasks {
        let received = t.await.unwrap();
        assert!(
            received > MESSAGE,
            "each client got the whole message ({received} bytes)"
        );
    }
    let peak = status_kib("VmHWM:");
    let growth_mib = peak.saturating_sub(before) / 1024;
    // A copy per connection would be 1000 MiB; streaming from the shared bytes needs buffers
    // only.
    assert!(
        growth_mib < 200,
        "peak RSS grew by {growth_mib} MiB for {CONNECTIONS} fetches"
    );
}
