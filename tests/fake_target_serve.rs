//! `mailmig fake-target serve` as a real process: prints its URL and token, serves the API,
//! stops on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

struct Killed(std::process::Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(config: &str) -> (Killed, String, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tenant.toml");
    std::fs::write(&path, config).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_mailmig"))
        .args(["fake-target", "serve", "--config"])
        .arg(&path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Killed(child);
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let url = lines.next().unwrap().unwrap();
    let token = lines.next().unwrap().unwrap();
    let url = url.strip_prefix("URL=").expect("URL=").to_string();
    let token = token.strip_prefix("TOKEN=").expect("TOKEN=").to_string();
    (child, url, token, dir)
}

#[tokio::test]
async fn serves_the_issue_config_over_http() {
    let (mut child, url, token, _dir) = start(
        r#"
[tenant]
accepted_domains = ["contoso.edu"]
max_message_size = 36700160
token = "secret-token"

[throttle]
messages_per_second = 2

[[mailboxes]]
address = "terrya@contoso.edu"
licensed = true
"#,
    );
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert_eq!(token, "secret-token");
    let client = reqwest::Client::new();
    let users: serde_json::Value = client
        .get(format!("{url}/v1/users"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(users[0]["address"], "terrya@contoso.edu");
    let import = |key: &'static str| {
        client
            .post(format!("{url}/v1/users/terrya@contoso.edu/import"))
            .query(&[("folder", "Inbox"), ("sourceKey", key)])
            .bearer_auth(&token)
            .body("Subject: x\r\n\r\nx\r\n")
            .send()
    };
    assert_eq!(import("a").await.unwrap().status(), 201);
    assert_eq!(import("a").await.unwrap().status(), 200);
    let pid = child.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert!(child.0.wait().unwrap().success());
}

#[tokio::test]
async fn generates_a_token_when_none_is_configured() {
    let (_child, url, token, _dir) = start("[tenant]\naccepted_domains = [\"contoso.edu\"]\n");
    assert_eq!(token.len(), 32, "{token}");
    let resp = reqwest::Client::new()
        .get(format!("{url}/v1/users"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[test]
fn a_bad_config_names_the_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[tenant]\naccepted_domain = []\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mailmig"))
        .args(["fake-target", "serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("accepted_domain"),
        "{err}"
    );
}
