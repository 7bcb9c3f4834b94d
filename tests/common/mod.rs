//! Helpers for the tests that drive the `mailmig` binary.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Lines, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Output, Stdio};
use std::sync::Arc;

use fake_imap::ServerHandle;
use fake_target::inspect::{reconcile, target_messages};
use harness::source_from_fake_imap;
use tokio::process::Command;

pub const BIN: &str = env!("CARGO_BIN_EXE_mailmig");

/// Runs `mailmig --state-dir STATE ARGS...`.
pub async fn mailmig(state: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--state-dir")
        .arg(state)
        .args(args)
        .output()
        .await
        .expect("mailmig runs")
}

/// Standard output and error together, for assertions and failure messages.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs mailmig and insists on success.
pub async fn mailmig_ok(state: &Path, args: &[&str]) -> Output {
    let o = mailmig(state, args).await;
    assert!(o.status.success(), "mailmig {args:?}: {}", text(&o));
    o
}

/// A state folder in `dir` with the embedded tenant (a mailbox per user), the endpoint `src`
/// on `server` (both concurrency limits `max`), and a started batch `batch` of the users
/// (`user@contoso.edu`, logging in as `user` with `pw`). Returns the state folder.
pub async fn embedded_batch(
    dir: &Path,
    server: &ServerHandle,
    users: &[String],
    batch: &str,
    max: u32,
) -> PathBuf {
    let (state, users_csv) = embedded_endpoint(dir, server, users, max).await;
    mailmig_ok(
        &state,
        &[
            "batch",
            "new",
            "--name",
            batch,
            "--source-endpoint",
            "src",
            "--csv",
            users_csv.to_str().unwrap(),
            "--autostart",
        ],
    )
    .await;
    state
}

/// A state folder in `dir` with the embedded tenant (a mailbox per user) and the endpoint
/// `src` on `server` (both concurrency limits `max`), and `dir/users.csv` of the users
/// (`user@contoso.edu`, logging in as `user` with `pw`): the state and the CSV.
pub async fn embedded_endpoint(
    dir: &Path,
    server: &ServerHandle,
    users: &[String],
    max: u32,
) -> (PathBuf, PathBuf) {
    let mut cfg = String::from("[tenant]\naccepted_domains = [\"contoso.edu\"]\n");
    let mut csv = String::from("EmailAddress,UserName,Password\n");
    for u in users {
        cfg.push_str(&format!("[[mailboxes]]\naddress = \"{u}@contoso.edu\"\n"));
        csv.push_str(&format!("{u}@contoso.edu,{u},pw\n"));
    }
    let (tenant, users_csv) = (dir.join("tenant.toml"), dir.join("users.csv"));
    std::fs::write(&tenant, cfg).unwrap();
    std::fs::write(&users_csv, csv).unwrap();
    let state = dir.join("state");
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
    plain_endpoint(&state, server.imap_addr().port(), max).await;
    (state, users_csv)
}

/// `endpoint new --imap --name src` on 127.0.0.1:`port` in plain text, both concurrency
/// limits `max`.
pub async fn plain_endpoint(state: &Path, port: u16, max: u32) {
    let (port, max) = (port.to_string(), max.to_string());
    mailmig_ok(
        state,
        &[
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
            "--max-concurrent-migrations",
            &max,
            "--max-concurrent-incremental-syncs",
            &max,
        ],
    )
    .await;
}

/// Every user's embedded-tenant mailbox equals its source (INBOX -> Inbox, Sent -> Sent Items).
pub async fn assert_exact(state: &Path, server: &ServerHandle, users: &[String]) {
    let tenant = fake_target::Tenant::open(
        &state.join("tenant.sqlite"),
        Arc::new(fake_target::SystemClock),
    )
    .unwrap();
    for u in users {
        let map = |f: &str| {
            Some(match f {
                "INBOX" => "Inbox".to_string(),
                "Sent" => "Sent Items".to_string(),
                other => other.to_string(),
            })
        };
        let source = source_from_fake_imap(server.store(), u, map).unwrap();
        let target = target_messages(&tenant, &format!("{u}@contoso.edu"))
            .await
            .unwrap();
        let r = reconcile(&source, &target);
        assert!(r.is_exact(), "{u}: {r:#?}");
    }
}

/// `mailmig fake-exchange serve` as a child process, with what it printed (KEY=VALUE lines).
pub struct Served {
    pub child: Child,
    values: Vec<(String, String)>,
    control: Option<(ChildStdin, Lines<BufReader<ChildStdout>>)>,
}

impl Served {
    pub fn start(config: &Path) -> Self {
        Self::start_with(config, false)
    }

    /// With `--control`: commands on stdin, one answer line each.
    pub fn start_with(config: &Path, control: bool) -> Self {
        let mut cmd = std::process::Command::new(BIN);
        cmd.args(["fake-exchange", "serve", "--config"]).arg(config);
        if control {
            cmd.arg("--control").stdin(Stdio::piped());
        }
        let mut child = cmd.stdout(Stdio::piped()).spawn().expect("mailmig starts");
        let mut values = Vec::new();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Everything up to the last CONNECT_TO line (the LDAPS one comes last).
        while let Some(Ok(line)) = lines.next() {
            let (k, v) = line.split_once('=').expect("KEY=VALUE");
            let last = k == "CONNECT_TO" && v.contains(":636:");
            values.push((k.to_string(), v.to_string()));
            if last {
                break;
            }
        }
        let control = control.then(|| (child.stdin.take().unwrap(), lines));
        Self {
            child,
            values,
            control,
        }
    }

    /// Sends one control command and returns its answer (which must be OK).
    pub fn control(&mut self, command: &str) -> String {
        let (stdin, lines) = self.control.as_mut().expect("started with --control");
        writeln!(stdin, "{command}").unwrap();
        let answer = lines.next().expect("an answer").unwrap();
        assert!(answer.starts_with("OK"), "{command}: {answer}");
        answer
    }

    pub fn get(&self, key: &str) -> &str {
        self.values
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {key}= in {:?}", self.values))
    }

    pub fn connect_to(&self) -> Vec<String> {
        self.values
            .iter()
            .filter(|(k, _)| k == "CONNECT_TO")
            .flat_map(|(_, v)| ["--connect-to".to_string(), v.clone()])
            .collect()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A small deterministic PRNG for kill times (a kill test must replay).
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }
}

/// `mailmig ARGS` as a server process, with the KEY=VALUE lines it printed until all of
/// `keys` were seen; killed on drop.
pub struct Serving {
    child: Child,
    values: Vec<(String, String)>,
}

impl Serving {
    pub fn start(args: &[&str], keys: &[&str]) -> Self {
        let mut child = std::process::Command::new(BIN)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("mailmig starts");
        let mut values = Vec::new();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        while !keys.iter().all(|k| values.iter().any(|(v, _)| v == k)) {
            let line = lines.next().expect("a KEY=VALUE line").unwrap();
            if let Some((k, v)) = line.split_once('=') {
                values.push((k.to_string(), v.to_string()));
            }
        }
        // The rest is drained: a closed pipe would kill the server at its next line.
        std::thread::spawn(move || lines.for_each(drop));
        Self { child, values }
    }

    pub fn get(&self, key: &str) -> &str {
        self.values
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {key}= in {:?}", self.values))
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
