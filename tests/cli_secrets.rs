//! Secrets never reach a log, at any level: a trace-level log of a real migration (LOGIN and
//! SASL PLAIN admin forms) and of test-server runs holds neither the password nor the SASL
//! message, nor message bodies.

mod common;

use std::path::Path;

use common::{BIN, mailmig_ok};
use fake_imap::{AdminMode, FakeImapServer};
use tokio::process::Command;

const ADMIN_PASSWORD: &str = "Adm1n-S3cret-xyzzy";
const USER_PASSWORD: &str = "Us3r-S3cret-plugh";

/// Runs mailmig with a trace-level log; returns its standard error.
async fn traced(state: &Path, args: &[&str]) -> String {
    let o = Command::new(BIN)
        .arg("--state-dir")
        .arg(state)
        .args(args)
        .env("MAILMIG_LOG", "trace")
        .output()
        .await
        .expect("mailmig runs");
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The base64 of the SASL PLAIN message, as it would go on the wire.
fn sasl_plain(authzid: &str, authcid: &str, password: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("{authzid}\0{authcid}\0{password}"))
}

fn assert_clean(log: &str, what: &str) {
    assert!(
        log.contains("IMAP command"),
        "{what}: the log is at trace level:\n{log}"
    );
    for secret in [
        ADMIN_PASSWORD.to_string(),
        USER_PASSWORD.to_string(),
        sasl_plain("terry", "mailadmin", ADMIN_PASSWORD),
        sasl_plain("", "terry", USER_PASSWORD),
    ] {
        assert!(
            !log.contains(&secret),
            "{what}: {secret} is in the log:\n{log}"
        );
    }
    assert!(
        !log.contains("Subject:"),
        "{what}: message text is in the log"
    );
}

#[tokio::test]
async fn a_traced_migration_and_test_server_show_no_secret() {
    let server = FakeImapServer::new()
        .mode(AdminMode::Dovecot)
        .seed(4)
        .admin("mailadmin", ADMIN_PASSWORD)
        .user("terry", USER_PASSWORD)
        .generated("terry", "INBOX", 3)
        .start()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let tenant = dir.path().join("tenant.toml");
    std::fs::write(
        &tenant,
        "[tenant]\naccepted_domains = [\"contoso.edu\"]\n[[mailboxes]]\naddress = \"terry@contoso.edu\"\n",
    )
    .unwrap();
    let csv = dir.path().join("users.csv");
    std::fs::write(
        &csv,
        format!(
            "EmailAddress,UserName,Password\nterry@contoso.edu,terry*mailadmin,{ADMIN_PASSWORD}\n"
        ),
    )
    .unwrap();
    let port = server.imap_addr().port().to_string();
    mailmig_ok(
        &state,
        &[
            "target",
            "set",
            "--embedded",
            "--config",
            tenant.to_str().unwrap(),
        ],
    )
    .await;
    let endpoint = [
        "endpoint",
        "new",
        "--imap",
        "--name",
        "src",
        "--remote-server",
        "127.0.0.1",
        "--port",
        &port,
        "--security",
        "none",
        "--authentication",
        "plain",
    ];
    let log = traced(&state, &endpoint).await;
    assert!(log.contains("Created the migration endpoint"), "{log}");
    mailmig_ok(
        &state,
        &[
            "batch",
            "new",
            "--name",
            "B",
            "--source-endpoint",
            "src",
            "--csv",
            csv.to_str().unwrap(),
            "--autostart",
        ],
    )
    .await;
    let log = traced(&state, &["run", "--until-idle"]).await;
    assert!(log.contains("AUTHENTICATE PLAIN <hidden>"), "{log}");
    assert_clean(&log, "run");
    let o = mailmig_ok(&state, &["user", "get", "--json"]).await;
    assert!(String::from_utf8_lossy(&o.stdout).contains("\"status\": \"Synced\""));
    for (user, password, auth) in [
        ("terry*mailadmin", ADMIN_PASSWORD, "plain"),
        ("terry", USER_PASSWORD, "basic"),
    ] {
        let log = traced(
            &state,
            &[
                "test-server",
                "--imap",
                "--remote-server",
                "127.0.0.1",
                "--port",
                &port,
                "--security",
                "none",
                "--authentication",
                auth,
                "--username",
                user,
                "--password",
                password,
            ],
        )
        .await;
        assert!(log.contains("Result: Warning"), "{log}");
        assert_clean(&log, "test-server");
    }
}

/// Runs mailmig on a pseudo-terminal (util-linux's `script`), typing `typed` at it; returns
/// what the terminal showed.
fn on_a_terminal(state: &Path, args: &[&str], typed: &str) -> (bool, String) {
    use std::io::Write;
    let mut line = format!("'{BIN}' --state-dir '{}'", state.display());
    for a in args {
        line.push_str(&format!(" '{a}'"));
    }
    let mut child = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("script runs");
    // Typed once the prompt is up (the terminal would otherwise echo it before echo is off).
    std::thread::sleep(std::time::Duration::from_millis(700));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(typed.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

/// A password asked for on the terminal, not echoed: explicitly with --password-prompt, and
/// by default where one is required and none was given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_typed_at_the_prompt_is_used_and_not_echoed() {
    let server = FakeImapServer::new()
        .user("u", USER_PASSWORD)
        .start()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let port = server.imap_addr().port().to_string();
    let base = [
        "test-server",
        "--imap",
        "--remote-server",
        "127.0.0.1",
        "--port",
        &port,
        "--security",
        "none",
        "--username",
        "u",
    ];
    for extra in [&["--password-prompt"][..], &[][..]] {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        let typed = format!("{USER_PASSWORD}\n");
        let (ok, shown) = tokio::task::spawn_blocking({
            let state = state.clone();
            let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            move || {
                let refs: Vec<&str> = args.iter().map(String::as_str).collect();
                on_a_terminal(&state, &refs, &typed)
            }
        })
        .await
        .unwrap();
        assert!(ok, "{extra:?}: {shown}");
        assert!(shown.contains("The password: "), "the prompt: {shown}");
        assert!(
            shown.contains("Result: Warning") && shown.contains("'u' signed in."),
            "{shown}"
        );
        assert!(!shown.contains(USER_PASSWORD), "echoed: {shown}");
    }
    // Off a terminal there is nobody to ask: said, with the ways that work.
    let o = Command::new(BIN)
        .arg("--state-dir")
        .arg(&state)
        .args(base)
        .arg("--password-prompt")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(!o.status.success());
    let shown = String::from_utf8_lossy(&o.stderr);
    assert!(shown.contains("--password-file"), "{shown}");
}
