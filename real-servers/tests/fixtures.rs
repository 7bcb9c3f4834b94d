//! The fixtures themselves: each real server starts, takes mail through its own IMAP and gives
//! it back byte for byte with flags and dates, and stops when dropped.

use real_servers::{Kind, Message, RealServer, start_or_skip};

const RAW: &[u8] = b"From: a@contoso.edu\r\nSubject: fixture\r\nMessage-ID: <f1@x>\r\n\r\nbody\r\n";

async fn round_trip(builder: real_servers::Builder) {
    let Some(server) = start_or_skip(builder).await else {
        return;
    };
    server
        .seed(
            "alice",
            &[
                Message::new("INBOX", RAW)
                    .flags(&["\\Seen", "$Work"])
                    .date("2025-03-04T05:06:07Z"),
                Message::new("Projects/2019", RAW.to_vec()).date("2024-01-02T03:04:05+01:00"),
            ],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    let mut got = server.mailbox("alice").await.unwrap();
    got.sort_by(|a, b| a.folder.cmp(&b.folder));
    let kind = server.kind();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].folder, "INBOX");
    assert_eq!(got[1].folder, kind.folder_name("Projects/2019"));
    assert!(got.iter().all(|m| m.raw == RAW));
    assert_eq!(got[0].flags.len(), 2, "{:?}", got[0].flags);
    assert!(
        got[0].flags.contains(&"\\Seen".to_string()) && got[0].flags.contains(&"$Work".to_string())
    );
    assert_eq!(
        got[0].internal_date.to_rfc3339(),
        "2025-03-04T05:06:07+00:00"
    );
    assert_eq!(
        got[1].internal_date.to_rfc3339(),
        "2024-01-02T02:04:05+00:00"
    );
    let port = server.imap_port();
    drop(server);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "{kind} still listens after drop"
    );
}

fn users(b: real_servers::Builder) -> real_servers::Builder {
    b.user("alice", "alicepw")
        .user("bob", "bobpw")
        .admin("admin", "adminpw")
}

#[tokio::test]
async fn dovecot_round_trip() {
    round_trip(users(RealServer::dovecot())).await;
}

#[tokio::test]
async fn cyrus_round_trip() {
    round_trip(users(RealServer::cyrus())).await;
}

#[tokio::test]
async fn courier_round_trip() {
    round_trip(users(RealServer::courier())).await;
}

#[test]
fn folder_names_per_server() {
    assert_eq!(Kind::Dovecot.folder_name("Projects/2019"), "Projects.2019");
    assert_eq!(
        Kind::Courier.folder_name("Projects/2019"),
        "INBOX.Projects.2019"
    );
    assert_eq!(Kind::Cyrus.folder_name("inbox"), "INBOX");
}
