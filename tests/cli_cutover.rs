//! The cutover walkthrough through the `mailmig` binary against `mailmig fake-exchange serve`
//! (a real process, the seed's organisation), the seed's commands in order:
//! Test-MigrationServerAvailability -ExchangeOutlookAnywhere by Autodiscover, its JSON reused
//! by New-MigrationEndpoint, Get-MigrationEndpoint's Format-List fields, New-MigrationBatch
//! -AutoStart, the service's run, Get-MigrationUser, Complete refused, the checklist, the
//! removal refused before the MX switch and 72 hours, Set-MigrationBatch -SyncNow, and
//! Remove-MigrationBatch once MX has pointed to the tenant for 72 hours.

mod common;

use std::path::{Path, PathBuf};

use common::{Served, mailmig, mailmig_ok, text};

const ADMIN: &str = "administrator@contoso.com";

fn example(name: &str) -> String {
    format!("{}/examples/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// The test-server / endpoint arguments every step repeats.
fn exchange_args(served: &Served, password_file: &Path) -> Vec<String> {
    let mut args: Vec<String> = [
        "--exchange-outlook-anywhere",
        "--autodiscover",
        "--email-address",
        ADMIN,
        "--password-file",
        password_file.to_str().unwrap(),
        "--ca-file",
        served.get("CA"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(served.connect_to());
    args
}

/// The example organisation served, and a state with the embedded example tenant: the
/// server, the folder, the state and the admin's password file.
async fn organisation_and_tenant() -> (Served, tempfile::TempDir, PathBuf, PathBuf) {
    let served = Served::start(Path::new(&example("fake-exchange.toml")));
    let dir = tempfile::tempdir().unwrap();
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
    (served, dir, state, password_file)
}

#[tokio::test]
async fn test_server_then_endpoint_from_its_connection_settings() {
    let (served, dir, state, password_file) = organisation_and_tenant().await;

    let args = exchange_args(&served, &password_file);
    let mut test: Vec<&str> = vec!["test-server"];
    test.extend(args.iter().map(String::as_str));
    let out = mailmig_ok(&state, &test).await;
    let shown = text(&out);
    for line in [
        "Result             : Success",
        "IncomingExchangeServer : mail.contoso.com",
        "IncomingNSPIServer     : dc01.contoso.com",
        "HasAdminPrivilege      : true",
        "SupportsCutover    : true",
        "5 mailboxes",
    ] {
        assert!(shown.contains(line), "{line:?} in\n{shown}");
    }
    assert!(!shown.contains("P@ssw0rd"));

    test.push("--json");
    let json = mailmig_ok(&state, &test).await;
    let settings_file = dir.path().join("settings.json");
    std::fs::write(&settings_file, &json.stdout).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["Result"], "Success");
    assert_eq!(v["SupportsCutover"], true);
    assert_eq!(
        v["ConnectionSettings"]["AutodiscoverUrl"],
        "https://contoso.com/autodiscover/autodiscover.xml"
    );
    assert!(!String::from_utf8_lossy(&json.stdout).contains("P@ssw0rd"));

    mailmig_ok(
        &state,
        &[
            "endpoint",
            "new",
            "--exchange-outlook-anywhere",
            "--name",
            "CutoverEndpoint",
            "--connection-settings",
            settings_file.to_str().unwrap(),
            "--password-file",
            password_file.to_str().unwrap(),
        ],
    )
    .await;
    let get = text(&mailmig_ok(&state, &["endpoint", "get", "CutoverEndpoint"]).await);
    for line in [
        "EndpointType                  : ExchangeOutlookAnywhere",
        "ExchangeServer                : mail.contoso.com",
        "UseAutoDiscover               : True",
        "MaxConcurrentMigrations       : 20",
        "MaxConcurrentIncrementalSyncs : 10",
    ] {
        assert!(get.contains(line), "{line:?} in\n{get}");
    }
    let json = text(&mailmig_ok(&state, &["endpoint", "get", "--json"]).await);
    assert!(
        json.contains("\"endpointType\": \"ExchangeOutlookAnywhere\""),
        "{json}"
    );
    assert!(
        !json.contains("P@ssw0rd"),
        "the stored password is never shown: {json}"
    );

    // New-MigrationBatch -Name CutoverBatch -SourceEndpoint CutoverEndpoint -AutoStart
    let created = text(
        &mailmig_ok(
            &state,
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
        .await,
    );
    assert!(
        created.contains("with 8 recipients (5 mailboxes; 0 failed)")
            && created.contains("Not taken: hidden@contoso.com"),
        "{created}"
    );
    let again = mailmig(
        &state,
        &[
            "batch",
            "new",
            "--name",
            "Second",
            "--source-endpoint",
            "CutoverEndpoint",
        ],
    )
    .await;
    assert!(!again.status.success());
    assert!(
        text(&again).contains("\"CutoverBatch\" already exists"),
        "{}",
        text(&again)
    );
    let run = mailmig(&state, &["run", "--until-idle"]).await;
    assert!(run.status.success(), "{}", text(&run));
    let run_text = text(&run);
    let users = text(&mailmig_ok(&state, &["user", "get", "--batch", "CutoverBatch"]).await);
    for (who, kind) in [
        ("team@contoso.com", "distributionGroup"),
        ("grace@fabrikam.com", "mailContact"),
        ("frank@contoso.com", "mailUser"),
        ("alice@contoso.com", "userMailbox"),
        ("bob@contoso.com", "userMailbox"),
    ] {
        let line = users
            .lines()
            .find(|l| l.starts_with(who))
            .unwrap_or_else(|| panic!("{who} in\n{users}"));
        assert!(line.contains(kind) && line.contains("Synced"), "{line}");
    }
    let complete = mailmig(&state, &["batch", "complete", "CutoverBatch"]).await;
    assert!(!complete.status.success());
    assert!(
        text(&complete).contains("ends by removal"),
        "{}",
        text(&complete)
    );
    let checklist = text(&mailmig_ok(&state, &["batch", "checklist", "CutoverBatch"]).await);
    for line in [
        "[x] Every recipient provisioned and every mailbox synced: 8 users Synced",
        "[ ] Point MX to the tenant",
        "[ ] Create the CNAME autodiscover -> autodiscover.outlook.com",
    ] {
        assert!(checklist.contains(line), "{line:?} in\n{checklist}");
    }
    let early = mailmig(&state, &["batch", "remove", "CutoverBatch"]).await;
    assert!(!early.status.success());
    assert!(
        text(&early).contains("--mx-switched-at"),
        "{}",
        text(&early)
    );
    let now = chrono::Utc::now().to_rfc3339();
    let early = mailmig(
        &state,
        &["batch", "remove", "CutoverBatch", "--mx-switched-at", &now],
    )
    .await;
    assert!(!early.status.success());
    assert!(
        text(&early).contains("wait at least 72 hours"),
        "{}",
        text(&early)
    );
    let passwords = std::fs::read_to_string(state.join("cutover-passwords.csv")).unwrap();
    assert_eq!(
        passwords.lines().count(),
        7,
        "a header and six accounts: {passwords}"
    );
    for line in passwords.lines().skip(1) {
        let pw = line.split(',').nth(1).unwrap();
        assert!(
            !run_text.contains(pw) && !users.contains(pw),
            "a generated password was shown"
        );
    }
    // Set-MigrationBatch -SyncNow and the incremental sync it asks for.
    mailmig_ok(&state, &["batch", "set", "CutoverBatch", "--sync-now"]).await;
    let run = mailmig(&state, &["run", "--until-idle"]).await;
    assert!(run.status.success(), "{}", text(&run));
    // MX was switched 73 hours ago and every user has synced since: the checklist says so,
    // and Remove-MigrationBatch goes through.
    let switched = (chrono::Utc::now() - chrono::Duration::hours(73)).to_rfc3339();
    let checklist = text(
        &mailmig_ok(
            &state,
            &[
                "batch",
                "checklist",
                "CutoverBatch",
                "--mx-switched-at",
                &switched,
            ],
        )
        .await,
    );
    for line in ["[x] Point MX to the tenant", "[x] Wait 72 hours"] {
        assert!(checklist.contains(line), "{line:?} in\n{checklist}");
    }
    mailmig_ok(
        &state,
        &[
            "batch",
            "remove",
            "CutoverBatch",
            "--mx-switched-at",
            &switched,
        ],
    )
    .await;
    let gone = mailmig(&state, &["batch", "get", "CutoverBatch"]).await;
    assert!(!gone.status.success(), "{}", text(&gone));
    assert!(text(&gone).contains("wasn't found"), "{}", text(&gone));
}

#[tokio::test]
async fn endpoint_new_by_autodiscover_with_the_password_in_a_variable() {
    let served = Served::start(Path::new(&example("fake-exchange.toml")));
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut args = vec![
        "endpoint".to_string(),
        "new".into(),
        "--name".into(),
        "CutoverEndpoint".into(),
        "--mailbox-permission".into(),
        "full-access".into(),
    ];
    let unused = dir.path().join("unused");
    args.extend(exchange_args(&served, &unused));
    // The password from an environment variable instead of the file.
    let at = args.iter().position(|a| a == "--password-file").unwrap();
    args.splice(
        at..at + 2,
        ["--password-env".to_string(), "MAILMIG_TEST_ADMIN_PW".into()],
    );
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = tokio::process::Command::new(common::BIN)
        .arg("--state-dir")
        .arg(&state)
        .args(&refs)
        .env("MAILMIG_TEST_ADMIN_PW", "P@ssw0rd")
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let get = text(&mailmig_ok(&state, &["endpoint", "get", "CutoverEndpoint"]).await);
    assert!(
        get.contains("MailboxPermission             : FullAccess"),
        "{get}"
    );

    // A wrong password: nothing is created, and the password is not shown.
    let out = tokio::process::Command::new(common::BIN)
        .arg("--state-dir")
        .arg(&state)
        .args(
            refs.iter()
                .map(|a| if *a == "CutoverEndpoint" { "Second" } else { a }),
        )
        .env("MAILMIG_TEST_ADMIN_PW", "Wr0ngPassw0rd")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let shown = text(&out);
    assert!(
        shown.contains("The endpoint was not created") && shown.contains("credentials"),
        "{shown}"
    );
    assert!(!shown.contains("Wr0ngPassw0rd"));
    let missing = mailmig(&state, &["endpoint", "get", "Second"]).await;
    assert!(!missing.status.success());
}

/// A cutover rehearsal: no CSV, the organisation read and planned as New-MigrationBatch would,
/// each mailbox surveyed over EWS as the endpoint's admin (mail, calendar and contacts), the
/// recipients without a mailbox listed as provisioned only.
#[tokio::test]
async fn a_cutover_rehearsal_surveys_every_mailbox_of_the_organisation() {
    let (served, dir, state, password_file) = organisation_and_tenant().await;
    let mut args = vec![
        "endpoint".to_string(),
        "new".into(),
        "--name".into(),
        "E".into(),
    ];
    args.extend(exchange_args(&served, &password_file));
    mailmig_ok(&state, &args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let report = dir.path().join("report");
    let refused = mailmig(
        &state,
        &[
            "rehearse",
            "--source-endpoint",
            "E",
            "--csv",
            password_file.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ],
    )
    .await;
    assert!(
        text(&refused).contains("no CSV (leave out --csv)"),
        "{}",
        text(&refused)
    );
    let o = mailmig(
        &state,
        &[
            "rehearse",
            "--source-endpoint",
            "E",
            "--report",
            report.to_str().unwrap(),
            "--json",
        ],
    )
    .await;
    let v: serde_json::Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
    assert!(v["csv"].is_null() && v["refusal"].is_null(), "{v:#}");
    let users = v["users"].as_array().unwrap();
    let alice = users
        .iter()
        .find(|u| u["emailAddress"] == "alice@contoso.com")
        .unwrap_or_else(|| panic!("{v:#}"));
    assert_eq!(alice["kind"], "userMailbox");
    // Tasks and Notes are not migrated: said, as a warning.
    assert_eq!(alice["status"], "Warning", "{alice:#}");
    assert!(
        alice["warnings"][0]
            .as_str()
            .unwrap()
            .starts_with("2 folders skipped: NotMail"),
        "{alice:#}"
    );
    assert_eq!(
        alice["survey"]["toCopyItems"],
        6 + 3 + 2 + 3 + 2,
        "{alice:#}"
    );
    let targets: Vec<&str> = alice["survey"]["folders"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["target"].as_str())
        .collect();
    for f in ["Inbox", "Sent Items", "Calendar", "Contacts"] {
        assert!(targets.contains(&f), "{f} in {targets:?}");
    }
    let team = users
        .iter()
        .find(|u| u["emailAddress"] == "team@contoso.com")
        .unwrap_or_else(|| panic!("{v:#}"));
    assert!(team["survey"].is_null(), "a group has no mailbox: {team:#}");
    assert!(
        !users
            .iter()
            .any(|u| u["emailAddress"] == "hidden@contoso.com"),
        "a hidden recipient is not taken"
    );
    assert!(v["forecast"]["seconds"].as_f64().is_some(), "{v:#}");
    assert!(!text(&o).contains("P@ssw0rd"));
}
