//! SIGKILL of `mailmig run` at 20+ points of a cutover (provisioning, then content over EWS from
//! `mailmig fake-exchange serve`): afterwards the embedded tenant's directory and contents equal
//! the organisation's, with no recipient or item twice.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{BIN, Lcg, Served, mailmig_ok};
use fake_target::ItemFlags;
use fake_target::inspect::{fingerprint, reconcile, target_messages};
use tokio::process::Command;

fn example(name: &str) -> String {
    format!("{}/examples/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_sigkills_during_a_cutover_then_the_tenant_equals_the_organisation() {
    let dir = tempfile::tempdir().unwrap();
    // The seed's organisation, each EWS answer slowed so that kills land during the content.
    let config = dir.path().join("org.toml");
    std::fs::write(
        &config,
        std::fs::read_to_string(example("fake-exchange.toml")).unwrap()
            + "\n[faults.ews]\ndelay_ms = 15\n",
    )
    .unwrap();
    let served = Served::start(&config);
    let state = dir.path().join("state");
    let password_file = dir.path().join("admin.pw");
    std::fs::write(&password_file, "P@ssw0rd\n").unwrap();
    mailmig_ok(
        &state,
        &[
            "target",
            "set",
            "--embedded",
            "--config",
            &example("fake-target.toml"),
        ],
    )
    .await;
    cutover_batch(&state, &served, &password_file).await;

    // The organisation as the fake serves it (the same config gives the same content).
    let org = fake_exchange::Organisation::from_config(
        &fake_exchange::Config::from_file(&config).unwrap(),
    )
    .unwrap();
    let mut phases = Vec::new();
    let mut rng = Lcg(14);
    let mut kills = 0;
    let mut first = true;
    for _ in 0..60 {
        let mut child = Command::new(BIN)
            .arg("--state-dir")
            .arg(&state)
            .args(["run", "--until-idle"])
            .env("MAILMIG_FETCH_CHUNK", "2")
            .spawn()
            .unwrap();
        // The first kills come early (during provisioning), the later ones anywhere.
        let at = if first {
            Duration::from_millis(5 + rng.next(20))
        } else {
            Duration::from_millis(40 + rng.next(150))
        };
        first = kills < 3;
        match tokio::time::timeout(at, child.wait()).await {
            Ok(status) => {
                assert!(status.unwrap().success());
                break;
            }
            Err(_) => {
                child.kill().await.unwrap(); // SIGKILL
                let _ = child.wait().await;
                kills += 1;
                phases.push(phase(&state.join("tenant.sqlite"), &org));
            }
        }
        if kills >= 25 {
            break;
        }
    }
    assert!(kills >= 20, "only {kills} kills landed during the cutover");
    eprintln!("kills: {phases:?}");
    let count = |p: Phase| phases.iter().filter(|&&q| q == p).count();
    assert!(
        count(Phase::Provisioning) >= 2 && count(Phase::Content) >= 10,
        "the kills must land in both phases: {phases:?}"
    );
    mailmig_ok(&state, &["run", "--until-idle"]).await;
    let o = mailmig_ok(&state, &["user", "get", "--json"]).await;
    let users: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(users.as_array().unwrap().len(), 8, "{users}");
    for u in users.as_array().unwrap() {
        assert_eq!(u["status"], "Synced", "{u}");
    }

    let tenant = fake_target::Tenant::open(
        &state.join("tenant.sqlite"),
        Arc::new(fake_target::SystemClock),
    )
    .unwrap();
    let recipients = tenant.recipients();
    for r in org.recipients() {
        let address = r.address.clone().unwrap();
        let copies = recipients
            .iter()
            .filter(|t| t.address.eq_ignore_ascii_case(&address))
            .count();
        let expected = usize::from(!r.hidden);
        assert_eq!(copies, expected, "{address} in the tenant's directory");
    }
    // Every recipient that signs in has one password in the file, the one the tenant set,
    // whichever kill landed between the tenant's creation and the file's write.
    let file = std::fs::read_to_string(state.join("cutover-passwords.csv")).unwrap();
    for address in MAILBOXES.iter().chain(&["frank@contoso.com"]) {
        let rows: Vec<&str> = file
            .lines()
            .filter(|l| l.starts_with(&format!("{address},")))
            .collect();
        assert_eq!(rows.len(), 1, "{address} in {file}");
        let set = tenant.initial_password(address).unwrap();
        assert!(
            rows[0].contains(&format!(",{set},")) || rows[0].contains(&format!(",\"{set}\",")),
            "{address}: the file's password is the tenant's"
        );
    }
    assert_eq!(
        tenant
            .directory_entry("team@contoso.com")
            .unwrap()
            .members
            .len(),
        5,
        "every member once"
    );
    for mailbox in MAILBOXES {
        let source = harness::source_from_fake_exchange(&org, mailbox).unwrap();
        assert!(source.len() > 5, "{mailbox} has content");
        let target = target_messages(&tenant, mailbox).await.unwrap();
        let r = reconcile(&source, &target);
        assert!(r.is_exact(), "{mailbox}: {r:#?}");
    }
    drop(served);
}

/// The seed organisation's migrated mailboxes (one more is hidden from the address list).
const MAILBOXES: [&str; 5] = [
    "alice@contoso.com",
    "bob@contoso.com",
    "carol@contoso.com",
    "dave@contoso.com",
    "erin@contoso.com",
];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Not every recipient is in the tenant yet.
    Provisioning,
    /// Every recipient is, not every item.
    Content,
    /// Everything is (the kill came during the closing checks).
    Done,
}

/// Where the cutover stood when killed, read from the embedded tenant's database.
fn phase(tenant: &Path, org: &fake_exchange::Organisation) -> Phase {
    let tenant = fake_target::Tenant::open(tenant, Arc::new(fake_target::SystemClock)).unwrap();
    let expected = org.recipients().iter().filter(|r| !r.hidden).count();
    if tenant.recipients().len() < expected {
        return Phase::Provisioning;
    }
    let done = MAILBOXES.iter().all(|m| {
        let want = harness::source_from_fake_exchange(org, m).unwrap().len();
        tenant.items(m, None).map_or(0, |i| i.len()) >= want
    });
    if done { Phase::Done } else { Phase::Content }
}

/// New-MigrationEndpoint by Autodiscover and New-MigrationBatch -AutoStart, as the seed does.
async fn cutover_batch(state: &Path, served: &Served, password_file: &Path) {
    let mut endpoint: Vec<String> = [
        "endpoint",
        "new",
        "--exchange-outlook-anywhere",
        "--name",
        "CutoverEndpoint",
        "--autodiscover",
        "--email-address",
        "administrator@contoso.com",
        "--password-file",
        password_file.to_str().unwrap(),
        "--ca-file",
        served.get("CA"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    endpoint.extend(served.connect_to());
    let refs: Vec<&str> = endpoint.iter().map(String::as_str).collect();
    mailmig_ok(state, &refs).await;
    mailmig_ok(
        state,
        &[
            "batch",
            "new",
            "--name",
            "CutoverBatch",
            "--source-endpoint",
            "CutoverEndpoint",
            "--autostart",
        ],
    )
    .await;
}

/// `mailmig fake-target serve` as a child process: its URL and token.
struct ServedTenant(std::process::Child, String, String);

impl Drop for ServedTenant {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve_tenant() -> ServedTenant {
    use std::io::BufRead;
    let mut child = std::process::Command::new(BIN)
        .args(["fake-target", "serve", "--config"])
        .arg(example("fake-target.toml"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut value = |key: &str| {
        let line = lines.next().unwrap().unwrap();
        line.strip_prefix(key)
            .unwrap_or_else(|| panic!("{key} in {line}"))
            .to_string()
    };
    let url = value("URL=");
    let token = value("TOKEN=");
    ServedTenant(child, url, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_reads_every_recipient_and_item_of_the_organisation_from_the_http_tenant() {
    let served = Served::start(Path::new(&example("fake-exchange.toml")));
    let tenant = serve_tenant();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let password_file = dir.path().join("admin.pw");
    std::fs::write(&password_file, "P@ssw0rd\n").unwrap();
    mailmig_ok(
        &state,
        &[
            "target",
            "set",
            "--fake-target",
            &tenant.1,
            "--token",
            &tenant.2,
        ],
    )
    .await;
    cutover_batch(&state, &served, &password_file).await;
    mailmig_ok(&state, &["run", "--until-idle"]).await;

    let org = fake_exchange::Organisation::from_config(
        &fake_exchange::Config::from_file(Path::new(&example("fake-exchange.toml"))).unwrap(),
    )
    .unwrap();
    let recipients: Vec<String> = org
        .recipients()
        .iter()
        .filter_map(|r| r.address.clone())
        .collect();
    let mailboxes = MAILBOXES;
    let out = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/clients/tenant_reader.py"
        ))
        .args([&tenant.1, &tenant.2])
        .arg("--recipients")
        .arg(recipients.join(","))
        .arg("--mailboxes")
        .arg(mailboxes.join(","))
        .output()
        .expect("python3 runs (scripts/install-test-deps.sh installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for r in org.recipients() {
        let address = r.address.clone().unwrap();
        let entry = &read["directory"][&address];
        if r.hidden {
            assert!(entry.is_null(), "{address}: hidden, not migrated");
        } else {
            assert!(entry.is_object(), "python finds {address}");
        }
    }
    assert_eq!(
        read["directory"]["team@contoso.com"]["members"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    use base64::Engine as _;
    for mailbox in mailboxes {
        let target: Vec<fake_target::inspect::TargetMessage> = read["items"][mailbox]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| fake_target::inspect::TargetMessage {
                id: i["id"].as_str().unwrap().to_string(),
                folder: i["folder"].as_str().unwrap().to_string(),
                fingerprint: fingerprint(
                    &base64::engine::general_purpose::STANDARD
                        .decode(i["value"].as_str().unwrap())
                        .unwrap(),
                ),
                flags: ItemFlags::from_imap(
                    &i["flags"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|f| f.as_str().unwrap())
                        .collect::<Vec<_>>(),
                ),
                received_time: i["receivedTime"].as_str().unwrap().parse().unwrap(),
            })
            .collect();
        let r = reconcile(
            &harness::source_from_fake_exchange(&org, mailbox).unwrap(),
            &target,
        );
        assert!(r.is_exact(), "python reads {mailbox}: {r:#?}");
    }
}
