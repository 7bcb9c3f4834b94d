//! fake-imap's command input, on any bytes sent before and after a login: the server never
//! panics and stays up for the next client.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Fixture {
    rt: tokio::runtime::Runtime,
    addr: std::net::SocketAddr,
    _server: fake_imap::ServerHandle,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let server = rt.block_on(async {
            fake_imap::FakeImapServer::new()
                .mode(fake_imap::AdminMode::Dovecot)
                .admin("admin", "pw")
                .user("terry", "pw")
                .generated("terry", "INBOX", 3)
                .max_literal(64 * 1024)
                .start()
                .await
                .unwrap()
        });
        Fixture {
            addr: server.imap_addr(),
            rt,
            _server: server,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    f.rt.block_on(async {
        let Ok(mut tcp) = tokio::net::TcpStream::connect(f.addr).await else {
            panic!("the server went away");
        };
        let _ = tcp.write_all(b"a LOGIN terry pw\r\n").await;
        let _ = tcp.write_all(data).await;
        let _ = tcp.write_all(b"\r\nz LOGOUT\r\n").await;
        let mut sink = vec![0u8; 1 << 16];
        let _ = tokio::time::timeout(Duration::from_millis(100), async {
            while let Ok(n) = tcp.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
        // Still serving.
        let mut probe = tokio::net::TcpStream::connect(f.addr)
            .await
            .expect("still up");
        let mut greeting = [0u8; 4];
        let _ = tokio::time::timeout(Duration::from_secs(2), probe.read_exact(&mut greeting))
            .await
            .expect("still greets");
    });
});
