//! The connection counters as a client sees them (the scenarios' "at most N connections at
//! the source" reads them): each connection counted once, and no longer counted once the
//! server has closed it after LOGOUT, so one client opening connections one after another
//! peaks at one.

use fake_imap::FakeImapServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_closed_after_logout_is_no_longer_counted() {
    let server = FakeImapServer::new().user("u", "pw").start().await.unwrap();
    for round in 0..200 {
        let mut tcp = TcpStream::connect(server.imap_addr()).await.unwrap();
        tcp.write_all(b"a LOGIN u pw\r\nb LOGOUT\r\n")
            .await
            .unwrap();
        let mut sink = Vec::new();
        tcp.read_to_end(&mut sink).await.unwrap();
        assert!(
            String::from_utf8_lossy(&sink).contains("b OK"),
            "LOGOUT completed"
        );
        assert_eq!(
            server.stats().open(),
            0,
            "round {round}: the server closed the connection but still counts it"
        );
    }
    assert_eq!(server.stats().total(), 200);
    assert_eq!(server.stats().peak(), 1);
}
