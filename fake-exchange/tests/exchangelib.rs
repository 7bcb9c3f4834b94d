//! Python's exchangelib, a client not written here, against fake-exchange's EWS: Basic over
//! HTTPS with the CA verified, the folder tree, two item syncs around a change made through
//! the fake's handle, MIME of a message, an event and a contact, impersonation allowed and
//! denied, and ErrorServerBusy both raised (fail-fast) and retried (fault tolerance).
//! exchangelib comes from PyPI by scripts/install-test-deps.sh.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use fake_exchange::config::AdminSection;
use fake_exchange::{Config, FakeExchange};

fn example() -> Config {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/fake-exchange.toml"
    );
    let mut config = Config::from_file(path.as_ref()).expect("the example loads");
    config.admins.push(AdminSection {
        address: "helpdesk@contoso.com".into(),
        password: "Help1234!".into(),
        domain_admins: false,
        impersonation: false,
        full_access: vec!["carol@contoso.com".into()],
        receive_as: vec![],
    });
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchangelib_walks_syncs_fetches_and_impersonates() {
    let exchange = FakeExchange::start(example()).await.unwrap();
    let mut busy_config = example();
    busy_config.faults.ews.busy_every = 2;
    busy_config.faults.ews.back_off_ms = 100;
    let busy = FakeExchange::start(busy_config).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, exchange.ca_pem()).unwrap();
    let busy_ca = dir.path().join("busy-ca.pem");
    std::fs::write(&busy_ca, busy.ca_pem()).unwrap();
    // One bundle trusting both organisations' CAs.
    let bundle = dir.path().join("bundle.pem");
    std::fs::write(&bundle, format!("{}{}", exchange.ca_pem(), busy.ca_pem())).unwrap();

    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/exchangelib_client.py"
    );
    let mut child = Command::new("python3")
        .arg(script)
        .arg(exchange.ews_url())
        .arg(busy.ews_url())
        .arg(&bundle)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (scripts/install-test-deps.sh)");
    let stdout = child.stdout.take().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let org = exchange.org().clone();
    let transcript = tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if line == "WAITING" {
                // Between the two syncs: one new message, one read, one deleted.
                let ids = org.item_ids("alice@contoso.com", "Inbox").unwrap();
                let unread = ids
                    .iter()
                    .copied()
                    .find(|&id| {
                        let state = org.lock();
                        let mb = state.mailbox("alice@contoso.com").unwrap();
                        !mb.find_item(id).unwrap().1.is_read
                    })
                    .expect("an unread message in the example's inbox");
                org.set_read("alice@contoso.com", unread, true).unwrap();
                let other = ids.iter().copied().find(|&id| id != unread).unwrap();
                org.delete_item("alice@contoso.com", other).unwrap();
                org.deliver(
                    "alice@contoso.com",
                    "Inbox",
                    b"From: dave@contoso.com\r\nTo: alice@contoso.com\r\nSubject: Delivered during the test\r\n\r\nHello\r\n",
                )
                .unwrap();
                writeln!(stdin, "go").unwrap();
            }
            seen.push(line);
        }
        seen
    })
    .await
    .unwrap();
    let output = child.wait_with_output().unwrap();
    let text = transcript.join("\n");
    assert!(
        output.status.success() && text.contains("all checks passed"),
        "exchangelib client failed:\n{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(busy.ews_requests() > 2, "the busy organisation was asked");
}
