//! The engine's IMAP client reading whatever a server may send: the greeting, then a LIST and
//! a UID FETCH answered by the fuzzer's bytes. Never a panic, never a hang.
#![no_main]

use std::time::Duration;

use engine::imap::client::{Client, Framed, Framer, Limits};
use engine::imap::{ImapStream, commands};
use libfuzzer_sys::fuzz_target;
use tokio::io::AsyncWriteExt;

fuzz_target!(|data: &[u8]| {
    // The framer alone, with every literal taken out (the client does it from 16 KB).
    let mut framer = Framer::default();
    framer.push(data);
    while framer.next(1 << 20) == Framed::Message {
        if let Some((compact, taken)) = framer.split_big_literals(1) {
            assert!(compact.len() <= framer.message().len() + 3 * taken.len());
        }
    }
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
        let (done, client_done) = tokio::sync::oneshot::channel::<()>();
        let server = async move {
            let _ = theirs.write_all(b"* OK fuzz\r\n").await;
            let _ = theirs.write_all(data).await;
            // The end of the server's bytes (the client reads EOF), while the pipe stays open
            // for the client's commands until it is done.
            let _ = theirs.shutdown().await;
            let _ = client_done.await;
            drop(theirs);
        };
        let client_side = async {
            if client.greeting().await.is_ok() {
                let _ = commands::list(&mut client, "*").await;
                let _ = commands::uid_fetch(&mut client, "1:*", "(UID FLAGS BODY.PEEK[])").await;
            }
            let _ = done.send(());
        };
        tokio::join!(server, client_side);
    });
});
