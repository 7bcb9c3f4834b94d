//! The control plane through the `mailmig` binary, as an admin uses it: exit codes, JSON,
//! concurrency seen from the source server, and a run killed with SIGKILL mid-batch.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{BIN, assert_exact, embedded_batch, mailmig, mailmig_ok, text};

use chrono::TimeZone;
use fake_imap::{FakeImapServer, Fault, FaultAction, ServerHandle};
use serde_json::Value;
use tokio::process::Command;

const USERS: usize = 8;

fn user_names() -> Vec<String> {
    (0..USERS).map(|i| format!("u{i}")).collect()
}

async fn source(delay_ms: u64) -> ServerHandle {
    let mut s = FakeImapServer::new().seed(9);
    for i in 0..USERS {
        s = s
            .user(&format!("u{i}"), "pw")
            .generated(&format!("u{i}"), "INBOX", 40);
    }
    s.fault(
        Fault::new(FaultAction::Delay)
            .command("UID FETCH")
            .ms(delay_ms),
    )
    .start()
    .await
    .unwrap()
}

async fn users_json(state: &Path) -> Vec<Value> {
    let o = mailmig(state, &["user", "get", "--json"]).await;
    assert!(o.status.success(), "{}", text(&o));
    serde_json::from_slice::<Value>(&o.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_more_than_max_concurrent_migrations_at_the_source() {
    let server = source(30).await;
    let dir = tempfile::tempdir().unwrap();
    embedded_batch(dir.path(), &server, &user_names(), "Batch1", 3).await;
    let before = server.stats().peak();
    let o = mailmig(&dir.path().join("state"), &["run", "--until-idle"]).await;
    assert!(o.status.success(), "{}", text(&o));
    let peak = server.stats().peak();
    assert!(
        peak <= 3,
        "{peak} connections at once with MaxConcurrentMigrations = 3"
    );
    assert!(
        peak >= 2 && peak > before.min(1),
        "users do run in parallel (peak {peak})"
    );
    let users = users_json(&dir.path().join("state")).await;
    assert_eq!(users.len(), USERS);
    for u in &users {
        assert_eq!(u["status"], "Synced", "{u}");
        assert_eq!(u["itemsSynced"], 40, "{u}");
        assert_eq!(u["itemsSkipped"], 0);
        assert!(u["lastSuccessfulSyncTime"].is_string());
        assert!(u.get("password").is_none(), "passwords are never printed");
        assert_eq!(
            u["missingInTarget"], 0,
            "the closing reconciliation found nothing missing"
        );
        assert_eq!(u["lastSyncItems"], 40);
        assert!(u["lastSyncItemsPerSecond"].as_f64().unwrap() > 0.0);
    }
    let o = mailmig(
        &dir.path().join("state"),
        &["batch", "get", "Batch1", "--json"],
    )
    .await;
    let b: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(b[0]["status"], "Synced");
    assert_eq!(b[0]["totalCount"], USERS);
    assert_eq!(b[0]["itemsSynced"], 40 * USERS as u64);
    assert!(b[0]["bytesSynced"].as_u64().unwrap() > 0);
    assert!(b[0]["itemsPerSecond"].as_f64().unwrap() > 0.0);
    assert_eq!(b[0]["estimatedSecondsRemaining"], 0, "nothing left to copy");
    assert_exact(&dir.path().join("state"), &server, &user_names()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_with_sigkill_is_finished_by_the_next_run() {
    let server = source(40).await;
    let dir = tempfile::tempdir().unwrap();
    embedded_batch(dir.path(), &server, &user_names(), "Batch1", 2).await;
    let state = dir.path().join("state");
    let mut child = Command::new(BIN)
        .arg("--state-dir")
        .arg(&state)
        .args(["run", "--until-idle"])
        .spawn()
        .unwrap();
    // Kill it once some users are done and others are mid-sync.
    let mut killed_mid_batch = false;
    for _ in 0..400 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let synced = server.stats().total();
        if synced >= 3 {
            child.kill().await.unwrap(); // SIGKILL
            killed_mid_batch = true;
            break;
        }
    }
    let _ = child.wait().await;
    assert!(killed_mid_batch, "the run ended before it could be killed");
    let users = users_json(&state).await;
    let done = users.iter().filter(|u| u["status"] == "Synced").count();
    assert!(done < USERS, "killed mid-batch ({done} of {USERS} done)");
    // The next run goes on where the first stopped.
    let o = mailmig(&state, &["run", "--until-idle"]).await;
    assert!(o.status.success(), "{}", text(&o));
    let users = users_json(&state).await;
    assert!(users.iter().all(|u| u["status"] == "Synced"), "{users:#?}");
    assert_exact(&dir.path().join("state"), &server, &user_names()).await;
}

#[tokio::test]
async fn csv_check_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let good = write(
        "good.csv",
        "EmailAddress,UserName,Password\na@contoso.edu,a,secret1\n",
    );
    let o = mailmig(&state, &["csv", "check", &good]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(!text(&o).contains("secret1"));
    let rows = write(
        "rows.csv",
        "EmailAddress,UserName,Password\na@contoso.edu,a,p\nbad,b,p\n",
    );
    let o = mailmig(&state, &["csv", "check", &rows]).await;
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("Line 3: EmailAddress \"bad\" isn't a valid SMTP address."));
    let rejected = write("rejected.csv", "EmailAddress,UserName\na@contoso.edu,a\n");
    let o = mailmig(&state, &["csv", "check", &rejected, "--json"]).await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        v["rejected"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Column \"Password\" is missing")
    );
}

/// Every example CSV of the README is valid and read in the admin form its name says, and the
/// JSON's keys are camelCase throughout.
#[tokio::test]
async fn the_example_csvs_pass_in_their_admin_forms() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    for (file, form) in [
        ("per-user.csv", "plain"),
        ("dovecot-master-user.csv", "dovecot"),
        ("exchange-admin.csv", "exchange"),
        ("mirapoint-admin.csv", "mirapoint"),
        ("courier-userroot.csv", "courier"),
    ] {
        let path = format!("{}/examples/csv/{file}", env!("CARGO_MANIFEST_DIR"));
        let o = mailmig(&state, &["csv", "check", &path, "--json"]).await;
        assert_eq!(o.status.code(), Some(0), "{file}: {}", text(&o));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        let rows = v["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 2, "{file}");
        for r in rows {
            assert_eq!(r["form"]["form"], form, "{file}: {r}");
        }
        let json = String::from_utf8_lossy(&o.stdout).to_string();
        assert!(
            !json.contains("user_root") && !json.contains("email_address"),
            "{json}"
        );
    }
    let mut listed: Vec<String> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/csv"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
    listed.sort();
    assert_eq!(
        listed.len(),
        5,
        "every example CSV is checked here: {listed:?}"
    );
}

#[tokio::test]
async fn test_server_exit_codes_and_refusals() {
    let server = FakeImapServer::new().user("u", "pw").start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let port = server.imap_addr().port().to_string();
    let o = mailmig(
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
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("Result: Success"));
    let o = mailmig(
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
            "--username",
            "u",
            "--password",
            "wrong-pw",
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("Result: Failed") && text(&o).contains("We had trouble signing in"));
    assert!(!text(&o).contains("wrong-pw"));
    // An endpoint that cannot be verified is not created; with --skip-verification it is.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port().to_string()
    };
    let args = [
        "endpoint",
        "new",
        "--imap",
        "--name",
        "src",
        "--remote-server",
        "127.0.0.1",
        "--port",
        &closed,
        "--security",
        "ssl",
    ];
    let o = mailmig(&state, &args).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("The connection to the server '127.0.0.1' could not be completed."));
    let mut skip = args.to_vec();
    skip.push("--skip-verification");
    assert!(mailmig(&state, &skip).await.status.success());
    let o = mailmig(
        &state,
        &[
            "endpoint",
            "new",
            "--imap",
            "--name",
            "src",
            "--remote-server",
            "x",
            "--port",
            "1",
            "--security",
            "none",
            "--skip-verification",
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("already exists"));
    let o = mailmig(
        &state,
        &[
            "endpoint",
            "set",
            "src",
            "--max-concurrent-incremental-syncs",
            "50",
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("--max-concurrent-incremental-syncs (50)"),
        "{}",
        text(&o)
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(state.join("mailmig.sqlite"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "the state file holds passwords");
    }
}

#[tokio::test]
async fn closed_sets_are_checked_by_the_parser_and_every_command_explains_itself() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let o = mailmig(
        &state,
        &[
            "endpoint",
            "new",
            "--imap",
            "--name",
            "src",
            "--remote-server",
            "127.0.0.1",
            "--port",
            "143",
            "--security",
            "bogus",
            "--skip-verification",
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(2), "a usage error: {}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("invalid value 'bogus'") && t.contains("[possible values: none, ssl, tls]"),
        "{t}"
    );
    assert!(!state.exists(), "a usage error touches no state");
    let o = mailmig(&state, &["endpoint", "new", "--authentication", "kerberos"]).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("[possible values: basic, plain]"),
        "{}",
        text(&o)
    );
    // Upper case is accepted, as Exchange's parameters are case-insensitive.
    let o = mailmig(
        &state,
        &[
            "test-server",
            "--imap",
            "--remote-server",
            "127.0.0.1",
            "--port",
            "1",
            "--security",
            "SSL",
            "--timeout",
            "1",
        ],
    )
    .await;
    assert_eq!(
        o.status.code(),
        Some(1),
        "parsed, then failed to connect: {}",
        text(&o)
    );
    let o = mailmig(&state, &["batch", "start", "--help"]).await;
    assert_eq!(o.status.code(), Some(0));
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(help.starts_with("Start-MigrationBatch: "), "{help}");
    assert!(help.contains("The batch's name"), "{help}");
}

#[tokio::test]
async fn a_truncated_or_missing_state_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let db = state.join("mailmig.sqlite");
    std::fs::write(&db, b"").unwrap();
    let o = mailmig(&state, &["batch", "get"]).await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains(&db.display().to_string()) && t.contains("empty (0 bytes)"),
        "{t}"
    );
    assert_eq!(
        std::fs::metadata(&db).unwrap().len(),
        0,
        "nothing re-created"
    );
    // A mistyped state directory is not an empty migration.
    let typo = dir.path().join("stat");
    let o = mailmig(&typo, &["user", "get"]).await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("no mailmig state here"), "{}", text(&o));
    assert!(!typo.exists(), "a read creates no state");
}

#[tokio::test]
async fn a_batch_name_with_a_terminal_escape_is_refused_and_not_echoed_raw() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    common::mailmig_ok(&state, &["target", "set", "--embedded"]).await;
    let csv = dir.path().join("u.csv");
    std::fs::write(&csv, "EmailAddress,UserName,Password\na@contoso.edu,a,pw\n").unwrap();
    let o = mailmig(
        &state,
        &[
            "batch",
            "new",
            "--name",
            "B\u{1b}[31mred\nline",
            "--source-endpoint",
            "src",
            "--csv",
            csv.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("holds a control character"), "{t}");
    assert!(
        !t.contains('\u{1b}'),
        "no raw escape reaches the terminal: {t:?}"
    );
}

/// `target set --fake-target` saves nothing unless the tenant answers with that token: a URL
/// where nothing listens and a wrong token both fail, naming the problem.
#[tokio::test]
async fn target_set_refuses_a_fake_tenant_that_does_not_answer_or_refuses_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let o = mailmig(
        &state,
        &["target", "set", "--fake-target", &dead, "--token", "t"],
    )
    .await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains(&dead) && t.contains("nothing was saved"), "{t}");
    assert!(!state.exists(), "a refused target leaves no state behind");
    let tenant = fake_target::Tenant::new(fake_target::Settings::default());
    let server = fake_target::http::serve(tenant, "right-token".into())
        .await
        .unwrap();
    let url = server.url();
    let o = mailmig(
        &state,
        &["target", "set", "--fake-target", &url, "--token", "wrong"],
    )
    .await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("refused the token"), "{}", text(&o));
    assert!(
        !text(&o).contains("wrong"),
        "the token is not repeated: {}",
        text(&o)
    );
    let o = common::mailmig_ok(
        &state,
        &[
            "target",
            "set",
            "--fake-target",
            &url,
            "--token",
            "right-token",
        ],
    )
    .await;
    assert!(text(&o).contains("0 recipients"), "{}", text(&o));
}

/// A low --max-concurrent-migrations brings the incremental default down with it, and a
/// contradiction is refused naming this command's flags, not PowerShell's parameters.
#[tokio::test]
async fn endpoint_limits_default_sensibly_and_errors_name_the_flags() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let new = |extra: &'static [&'static str], name: &'static str| {
        let mut args = vec![
            "endpoint",
            "new",
            "--imap",
            "--name",
            name,
            "--remote-server",
            "127.0.0.1",
            "--port",
            "143",
            "--security",
            "none",
            "--skip-verification",
        ];
        args.extend_from_slice(extra);
        args
    };
    common::mailmig_ok(&state, &new(&["--max-concurrent-migrations", "2"], "low")).await;
    let o = common::mailmig_ok(&state, &["endpoint", "get", "low", "--json"]).await;
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let e = if v.is_array() { v[0].clone() } else { v };
    assert_eq!(e["maxConcurrentMigrations"], 2, "{e}");
    assert_eq!(e["maxConcurrentIncrementalSyncs"], 2, "{e}");
    let o = mailmig(
        &state,
        &new(
            &[
                "--max-concurrent-migrations",
                "2",
                "--max-concurrent-incremental-syncs",
                "5",
            ],
            "contradiction",
        ),
    )
    .await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("--max-concurrent-incremental-syncs (5) must be between 1 and --max-concurrent-migrations (2)"),
        "{t}"
    );
    assert!(!t.contains("MaxConcurrent"), "{t}");
}

/// Empty tables say so; the embedded tenant (copies of people's mail) is private like the
/// state; the batch table keeps Synced and Completed apart.
#[tokio::test]
async fn empty_tables_say_so_and_the_embedded_tenant_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    common::mailmig_ok(&state, &["target", "set", "--embedded"]).await;
    let mode = std::fs::metadata(state.join("tenant.sqlite"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    for (args, says) in [
        (&["batch", "get"][..], "No migration batches."),
        (&["endpoint", "get"][..], "No migration endpoints."),
        (&["user", "get"][..], "No migration users."),
    ] {
        let o = common::mailmig_ok(&state, args).await;
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), says, "{args:?}");
    }
}

/// `csv check` lists the rows in the file's order, errors where they are.
#[tokio::test]
async fn csv_check_lists_rows_in_the_files_order() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.csv");
    std::fs::write(
        &file,
        "EmailAddress,UserName,Password\na@contoso.edu,a,p\nbad,b,p\nc@contoso.edu,c,p\n",
    )
    .unwrap();
    let o = mailmig(
        &dir.path().join("state"),
        &["csv", "check", file.to_str().unwrap()],
    )
    .await;
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| !l.contains("valid rows"))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.chars().all(|c| c.is_ascii_digit()))
        .collect();
    assert_eq!(lines, ["2", "3", "4"], "{stdout}");
}

/// Set-MigrationUser fixes one row's mistyped password without removing the batch (the new
/// password from an environment variable, never printed); Remove-MigrationUser takes a user
/// out of its batch; both refuse what they cannot do, in words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_in_one_row_is_fixed_with_user_set_and_a_user_removed() {
    let server = FakeImapServer::new()
        .seed(8)
        .user("ann", "pw")
        .user("bob", "Bob-s3cret")
        .generated("ann", "INBOX", 3)
        .generated("bob", "INBOX", 4)
        .start()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The CSV says "pw" for both: bob's is wrong.
    let state = embedded_batch(
        dir.path(),
        &server,
        &["ann".to_string(), "bob".to_string()],
        "B",
        2,
    )
    .await;
    // Outside a terminal, `run` writes timestamped lines: each user's start and end, with
    // what the sync moved and why it failed.
    let first = text(&mailmig_ok(&state, &["run", "--until-idle"]).await);
    let line = |who: &str, what: &str| {
        first
            .lines()
            .find(|l| l.contains(who) && l.contains(what))
            .unwrap_or_else(|| panic!("{who} {what} in\n{first}"))
            .to_string()
    };
    assert!(line("ann@contoso.edu", "initial sync started").starts_with("20"));
    let ann = line("ann@contoso.edu", "initial sync done");
    assert!(
        ann.contains(": 3 items (") && ann.contains("msgs/s") && ann.contains("in all 3 items"),
        "{ann}"
    );
    let failed = line("bob@contoso.edu", "initial sync failed");
    assert!(
        failed.contains("sign"),
        "the login's refusal is named: {failed}"
    );
    let bob = |o: &std::process::Output| -> Value {
        serde_json::from_slice::<Value>(&o.stdout).unwrap()[0].clone()
    };
    let o = mailmig_ok(&state, &["user", "get", "bob@contoso.edu", "--json"]).await;
    assert_eq!(bob(&o)["status"], "Failed", "{}", text(&o));

    let o = mailmig(&state, &["user", "set", "bob@contoso.edu"]).await;
    assert!(!o.status.success());
    assert!(text(&o).contains("nothing to change"), "{}", text(&o));
    let o = mailmig(
        &state,
        &["user", "set", "nobody@contoso.edu", "--password", "x"],
    )
    .await;
    assert!(text(&o).contains("wasn't found"), "{}", text(&o));
    let o = Command::new(BIN)
        .arg("--state-dir")
        .arg(&state)
        .args([
            "user",
            "set",
            "bob@contoso.edu",
            "--password-env",
            "BOB_PASSWORD",
        ])
        .env("BOB_PASSWORD", "Bob-s3cret")
        .output()
        .await
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("is retried"), "{}", text(&o));
    assert!(!text(&o).contains("Bob-s3cret"));
    let run = mailmig_ok(&state, &["run", "--until-idle"]).await;
    assert!(!text(&run).contains("Bob-s3cret"));
    let o = mailmig_ok(&state, &["user", "get", "bob@contoso.edu", "--json"]).await;
    assert_eq!(bob(&o)["status"], "Synced", "{}", text(&o));
    assert_eq!(bob(&o)["itemsSynced"], 4);
    assert!(!text(&o).contains("Bob-s3cret"), "never shown");

    mailmig_ok(&state, &["user", "remove", "ann@contoso.edu"]).await;
    let o = mailmig(&state, &["user", "get", "ann@contoso.edu"]).await;
    assert!(!o.status.success());
    assert!(text(&o).contains("wasn't found"), "{}", text(&o));
    let o = mailmig_ok(&state, &["user", "get", "--batch", "B", "--json"]).await;
    let left: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(left.as_array().unwrap().len(), 1, "{left}");
    // What ann's sync copied stays in the tenant.
    let o = mailmig_ok(
        &state,
        &["target", "folders", "--mailbox", "ann@contoso.edu"],
    )
    .await;
    assert!(text(&o).contains("3 items"), "{}", text(&o));
}

/// Get-MigrationUser moves during a sync: each checkpointed chunk adds to the user's count,
/// also while the sync waits out the source's throttling, which the log says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_get_shows_progress_in_the_middle_of_a_throttled_sync() {
    let server = FakeImapServer::new()
        .seed(9)
        .user("ann", "pw")
        .generated("ann", "INBOX", 30)
        .fault(Fault::new(FaultAction::Delay).command("UID FETCH").ms(100))
        // Exchange Online's NO with a backoff, once, a few chunks in.
        .fault(
            Fault::new(FaultAction::Throttle)
                .command("UID FETCH")
                .after_commands(9)
                .times(1)
                .backoff_ms(2500),
        )
        .start()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = embedded_batch(dir.path(), &server, &["ann".to_string()], "B", 2).await;
    let log = dir.path().join("run.log");
    let mut child = Command::new(BIN)
        .arg("--state-dir")
        .arg(&state)
        .args(["run", "--until-idle"])
        .env("MAILMIG_FETCH_CHUNK", "3")
        .stdout(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut seen_mid_sync = None;
    for _ in 0..300 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let o = mailmig(&state, &["user", "get", "ann@contoso.edu", "--json"]).await;
        let Ok(v) = serde_json::from_slice::<Value>(&o.stdout) else {
            continue;
        };
        let n = v[0]["itemsSynced"].as_u64().unwrap_or(0);
        if v[0]["status"] == "Syncing" && n > 0 && n < 30 {
            assert!(v[0]["bytesSynced"].as_u64().unwrap() > 0, "{v}");
            assert_eq!(v[0]["sourceItems"], 30, "the plan's total: {v}");
            // The batch's ETA comes from the running sync's own progress.
            let b = mailmig_ok(&state, &["batch", "get", "B", "--json"]).await;
            let b: Value = serde_json::from_slice(&b.stdout).unwrap();
            assert!(
                b[0]["estimatedSecondsRemaining"].as_u64().is_some(),
                "an ETA mid-sync: {b}"
            );
            seen_mid_sync = Some(n);
            break;
        }
    }
    assert!(child.wait().await.unwrap().success());
    assert!(
        seen_mid_sync.is_some(),
        "user get never showed a count between 0 and 30 while the user was syncing"
    );
    assert_eq!(server.faults_fired()[1], 1, "throttled once");
    let log = std::fs::read_to_string(&log).unwrap();
    let throttled = log
        .lines()
        .find(|l| l.contains("ann@contoso.edu: throttled by the source, waiting 3s"))
        .unwrap_or_else(|| panic!("the throttling in the log:\n{log}"));
    assert!(throttled.starts_with("20"), "timestamped: {throttled}");
    let done = log
        .lines()
        .find(|l| l.contains("ann@contoso.edu: initial sync done: "))
        .unwrap_or_else(|| panic!("the user's closing line in the log:\n{log}"));
    assert!(
        done.contains("msgs/s")
            && done.contains("in all 30 items")
            && done.contains("missing in the target: 0"),
        "{done}"
    );
    let o = mailmig(&state, &["user", "get", "ann@contoso.edu", "--json"]).await;
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v[0]["itemsSynced"], 30,
        "the end writes the exact total: {v}"
    );
}

/// Get-MigrationUserStatistics -IncludeSkippedItems: `user get --skipped` names each skipped
/// item, its folder, the reason and the server's words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_get_skipped_lists_every_skipped_item() {
    let server = FakeImapServer::new()
        .seed(10)
        .user("ann", "pw")
        .generated("ann", "INBOX", 5)
        .fault(Fault::new(FaultAction::FetchNo).uids(&[2]))
        .start()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = embedded_batch(dir.path(), &server, &["ann".to_string()], "B", 2).await;
    let run = text(&mailmig_ok(&state, &["run", "--until-idle"]).await);
    assert!(
        run.contains("4 items (") && run.contains("1 skipped (BadItem 1)"),
        "the sync's closing line says what it skipped, by reason: {run}"
    );
    let o = mailmig_ok(&state, &["user", "get", "ann@contoso.edu", "--skipped"]).await;
    let shown = text(&o);
    let row = shown
        .lines()
        .find(|l| l.starts_with("INBOX") && l.contains("UID 2"))
        .unwrap_or_else(|| panic!("the skipped message in\n{shown}"));
    assert!(row.contains("BadItem") || row.contains("bad"), "{row}");
    assert!(shown.contains("1 skipped items"), "{shown}");
    let o = mailmig_ok(
        &state,
        &["user", "get", "ann@contoso.edu", "--skipped", "--json"],
    )
    .await;
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let items = v[0]["skippedItems"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{v}");
    assert_eq!(items[0]["item"], "UID 2");
    // Without the flag, the JSON stays as it was (counts by reason only).
    let o = mailmig_ok(&state, &["user", "get", "ann@contoso.edu", "--json"]).await;
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v[0].get("skippedItems").is_none(), "{v}");

    // Get-MigrationUserStatistics -IncludeSkippedItems, as a list and as JSON.
    let o = mailmig_ok(
        &state,
        &[
            "user",
            "statistics",
            "ann@contoso.edu",
            "--include-skipped-items",
        ],
    )
    .await;
    let shown = text(&o);
    for line in [
        "Identity                       : ann@contoso.edu",
        "TotalItemsInSourceMailboxCount : 5",
        "SyncedItemCount                : 4",
        "SkippedItemCount               : 1",
        "PercentageComplete             : 100",
        "SkippedItemsByReason           : BadItem: 1",
    ] {
        assert!(shown.contains(line), "{line:?} in\n{shown}");
    }
    assert!(
        shown.lines().any(|l| l.starts_with("INBOX UID 2 BadItem")),
        "{shown}"
    );
    let o = mailmig_ok(&state, &["user", "statistics", "ann@contoso.edu", "--json"]).await;
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["SyncedItemCount"], 4, "{v}");
    assert_eq!(v["PercentageComplete"], 100);
    assert!(v["BytesTransferred"].as_u64().unwrap() > 0);
    assert!(v.get("SkippedItems").is_none(), "only when asked: {v}");
    let o = mailmig(&state, &["user", "statistics", "nobody@contoso.edu"]).await;
    assert!(text(&o).contains("wasn't found"), "{}", text(&o));
}

/// `target reconcile`: the source read as the sync reads it, matched by exact bytes in the
/// tenant. Exact after a run; a new message and a changed flag at the source are named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_reconcile_names_what_differs_from_the_source() {
    let server = FakeImapServer::new()
        .seed(12)
        .user("ann", "pw")
        .generated("ann", "INBOX", 6)
        .generated("ann", "Sent", 2)
        .start()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = embedded_batch(dir.path(), &server, &["ann".to_string()], "B", 2).await;
    mailmig_ok(&state, &["run", "--until-idle"]).await;
    let o = mailmig_ok(
        &state,
        &["target", "reconcile", "--mailbox", "ann@contoso.edu"],
    )
    .await;
    let shown = text(&o);
    assert!(
        shown.contains("8 messages to migrate at the source, 8 items in the tenant")
            && shown.contains("The copy is exact."),
        "{shown}"
    );

    let store = server.store();
    store.set_flags("ann", "INBOX", 2, &["\\Flagged"]).unwrap();
    store
        .append(
            "ann",
            "INBOX",
            b"From: x@example.com\r\nSubject: late\r\n\r\nhi\r\n".to_vec(),
            &[],
            chrono::FixedOffset::east_opt(0)
                .unwrap()
                .with_ymd_and_hms(2026, 1, 2, 3, 4, 5)
                .unwrap(),
        )
        .unwrap();
    let o = mailmig(
        &state,
        &[
            "target",
            "reconcile",
            "--mailbox",
            "ann@contoso.edu",
            "--json",
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["missing"], serde_json::json!(["INBOX UID 7"]), "{v:#}");
    assert_eq!(v["flagMismatches"][0]["item"], "INBOX UID 2", "{v:#}");
    assert_eq!(v["exact"], false);
    let o = mailmig(
        &state,
        &["target", "reconcile", "--mailbox", "nobody@contoso.edu"],
    )
    .await;
    assert!(text(&o).contains("wasn't found"), "{}", text(&o));
}
