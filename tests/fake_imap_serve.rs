//! `mailmig fake-imap serve` as a real process, talked to by a client not written here
//! (Python's imaplib) over STARTTLS and implicit TLS with the CA verified.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const CONFIG: &str = r#"
[server]
mode = "dovecot"
master_separator = "*"
delimiter = "/"
implicit_tls = true
starttls = true

[[admins]]
name = "mailadmin"
password = "P@ssw0rd"

[[users]]
name = "terry.adams"
password = "1091990"
domain = "contoso-students"
folders = { "INBOX" = 20, "Sent" = 5, "Archive/2019" = 3 }
"#;

struct Killed(std::process::Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn python_imaplib_talks_to_the_standalone_server() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("server.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let ca_file = dir.path().join("ca.pem");
    let child = Command::new(env!("CARGO_BIN_EXE_mailmig"))
        .args(["fake-imap", "serve", "--config"])
        .arg(&config)
        .arg("--ca-file")
        .arg(&ca_file)
        .stdout(Stdio::piped())
        .spawn()
        .expect("mailmig starts");
    let mut child = Killed(child);
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let mut value = |key: &str| {
        let line = lines.next().expect("a line").expect("utf-8");
        line.strip_prefix(&format!("{key}="))
            .unwrap_or_else(|| panic!("expected {key}=..., got {line:?}"))
            .to_string()
    };
    let imap = value("IMAP");
    let imaps = value("IMAPS");
    let ca = value("CA");
    assert_eq!(ca, ca_file.display().to_string());
    assert!(imap.starts_with("127.0.0.1:") && imaps.starts_with("127.0.0.1:"));
    let port = |a: &str| a.rsplit(':').next().unwrap().to_string();

    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/imaplib_client.py"
    );
    let out = Command::new("python3")
        .arg(script)
        .arg(port(&imap))
        .arg(port(&imaps))
        .arg(&ca)
        .output()
        .expect("python3 is installed (scripts/install-test-deps.sh)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "imaplib client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");

    // SIGTERM ends the server cleanly.
    let pid = child.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = child.0.wait().unwrap();
    assert!(status.success(), "exit status after SIGTERM: {status}");
}
