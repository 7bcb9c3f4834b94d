//! A folder of 300 messages goes in growing chunks (32, 64, 128, then the rest), each chunk's
//! UID FETCH pipelined behind the previous one's. Dovecot runs pipelined fetches at once and
//! interleaves their replies (and may complete the later one first); every real server's copy
//! must still be whole and in the source's order. This is what fake-imap's
//! `concurrent_fetches` quirk imitates (engine/tests/data_plane.rs copies through it); here
//! the real servers show it.

mod common;

use common::{Into, Login, Migration, endpoint_settings};
use engine::imap::{Authentication, Security};
use real_servers::{Builder, Message, RealServer, start_or_skip};

const COUNT: usize = 300;

fn messages() -> Vec<Message> {
    (0..COUNT)
        .map(|i| {
            let raw = format!(
                "From: a@example.org\r\nSubject: number {i}\r\nMessage-ID: <n{i}@example.org>\r\n\
                 Date: Mon, 03 Mar 2025 10:00:00 +0000\r\n\r\n{}\r\n",
                "body line\r\n".repeat(i % 40)
            );
            Message::new("INBOX", raw)
        })
        .collect()
}

async fn copied_in_order(builder: Builder, what: &str) {
    let Some(source) = start_or_skip(builder.user("u", "pw").admin("admin", "adminpw")).await
    else {
        return;
    };
    source
        .seed("u", &messages())
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}\n{}", source.log()));
    let settings = endpoint_settings(source.imaps_port(), Security::Ssl, Some(source.ca_file()));
    let login = Login {
        user_name: "u".into(),
        password: "pw".into(),
        user_root: None,
        authentication: Authentication::Plain,
    };
    let email = "u@contoso.edu";
    let m = Migration::new(settings, &login, email, None);
    m.batch(&login).await;
    m.run().await;
    let u = m.user();
    assert_eq!(
        u.items_synced as usize, COUNT,
        "{what}: {u:?} {:?}",
        u.error
    );
    let Into::Tenant(tenant) = &m.into else {
        panic!("a tenant target");
    };
    let subjects: Vec<String> = tenant
        .items(email, Some("Inbox"))
        .unwrap()
        .iter()
        .map(|i| {
            let raw = tenant.item_bytes(email, &i.id).unwrap();
            let text = String::from_utf8_lossy(&raw).into_owned();
            text.lines()
                .find_map(|l| l.strip_prefix("Subject: ").map(str::to_string))
                .unwrap_or_default()
        })
        .collect();
    let expected: Vec<String> = (0..COUNT).map(|i| format!("number {i}")).collect();
    assert_eq!(subjects, expected, "{what}: imported in the source's order");
}

#[tokio::test]
async fn dovecot_copies_arrive_whole_and_in_order() {
    copied_in_order(RealServer::dovecot(), "Dovecot").await;
}

#[tokio::test]
async fn cyrus_copies_arrive_whole_and_in_order() {
    copied_in_order(RealServer::cyrus(), "Cyrus").await;
}

#[tokio::test]
async fn courier_copies_arrive_whole_and_in_order() {
    copied_in_order(RealServer::courier(), "Courier").await;
}
