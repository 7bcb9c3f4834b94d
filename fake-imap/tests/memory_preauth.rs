//! Before login, a client may not make the server hold more than a command's worth (64 KB):
//! 100 unauthenticated connections each pushing 10 MB, as one endless line or as a LITERAL+
//! the server never asked for, must not grow the server's memory by more than 20 MB. (Its
//! own test binary, so no other test's allocations blur the peak.)

mod common;

use std::time::Duration;

use common::status_kib;

use fake_imap::FakeImapServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CONNECTIONS: usize = 100;
const PUSH: usize = 10 * 1024 * 1024;

/// Sends the start of a command, then up to `PUSH` bytes of filler from one shared buffer;
/// returns what the server answered before it hung up.
async fn push(addr: std::net::SocketAddr, start: &'static [u8]) -> String {
    static CHUNK: [u8; 64 * 1024] = [b'x'; 64 * 1024];
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let mut greeting = [0u8; 512];
    let _ = tcp.read(&mut greeting).await.unwrap();
    tcp.write_all(start).await.unwrap();
    let mut sent = 0;
    while sent < PUSH {
        // The server closes the connection once the limit is passed: writing then fails.
        match tokio::time::timeout(Duration::from_secs(5), tcp.write_all(&CHUNK)).await {
            Ok(Ok(())) => sent += CHUNK.len(),
            _ => break,
        }
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_clients_cannot_make_the_server_buffer() {
    let server = FakeImapServer::new().user("u", "pw").start().await.unwrap();
    std::fs::write("/proc/self/clear_refs", "5").expect("Linux clear_refs");
    let before = status_kib("VmRSS:");
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|i| {
            let start: &'static [u8] = if i % 2 == 0 {
                b"a LOGIN u "
            } else {
                b"a LOGIN u {67108000+}\r\n"
            };
            tokio::spawn(push(server.imap_addr(), start))
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    let peak = status_kib("VmHWM:");
    let growth_mib = peak.saturating_sub(before) / 1024;
    eprintln!("peak RSS growth: {growth_mib} MiB");
    assert!(
        growth_mib < 20,
        "peak RSS grew by {growth_mib} MiB for {CONNECTIONS} unauthenticated connections"
    );
    assert!(
        answers.iter().all(|a| a.contains("BYE")),
        "every connection is told why it ends: {:?}",
        answers.iter().find(|a| !a.contains("BYE"))
    );
    // The server still serves a well-behaved client.
    let mut tcp = TcpStream::connect(server.imap_addr()).await.unwrap();
    tcp.write_all(b"a LOGIN u pw\r\nb LOGOUT\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).await.unwrap();
    assert!(String::from_utf8_lossy(&answer).contains("a OK"));
}
