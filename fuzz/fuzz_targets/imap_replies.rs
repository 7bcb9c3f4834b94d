//! The engine's IMAP client reading whatever a server may send: the greeting, then a LIST and
//! a UID FETCH answered by the fuzzer's bytes. Never a panic, never a hang.
#![no_main]

use std::time::Duration;

use engine::imap::client::{Client, Limits};
use engine::imap::{ImapStream, commands};
use libfuzzer_sys::fuzz_target;
use tokio::io::AsyncWriteExt;

fuzz_target!(|data: &[u8]| {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (ours, mut theirs) = tokio::io::duplex(1 << 20);
        let limits = Limits {
            idle: Duration::from_millis(50),
            command: Duration::from_millis(200),
            max_message: 1 << 20,
        };
        let mut client = Client::new(ImapStream::Memory(ours), limits);
        let server = async move {
            let _ = theirs.write_all(b"* OK fuzz\r\n").await;
            let _ = theirs.write_all(data).await;
            // The end of the server's bytes: the client sees the connection close.
            drop(theirs);
        };
        let client_side = async {
            if client.greeting().await.is_ok() {
                let _ = commands::list(&mut client, "*").await;
                let _ = commands::uid_fetch(&mut client, "1:*", "(UID FLAGS BODY.PEEK[])").await;
            }
        };
        tokio::join!(server, client_side);
    });
});
