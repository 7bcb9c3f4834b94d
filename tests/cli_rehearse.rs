//! `mailmig rehearse` as an admin runs it before a migration: five users with five different
//! fates, the report in JSON, CSV and HTML (the HTML rendered by a real headless Chromium and
//! read back through its DOM), and the source untouched.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;

use chrono::{FixedOffset, TimeZone};
use common::{embedded_endpoint, mailmig, text};
use fake_imap::{FakeImapServer, ServerHandle};
use serde_json::Value;

const USERS: [&str; 5] = ["fine", "wrongpw", "big", "many", "slash"];

/// fine: 5 messages; wrongpw: its password is not the CSV's; big: a 40 MB message among 2
/// small; many: 30 messages over an item cap of 20; slash: a folder `Work/Plans` on a server
/// whose delimiter is `.`.
async fn source() -> ServerHandle {
    let mut b = FakeImapServer::new().seed(15).delimiter('.');
    for u in USERS {
        b = b.user(u, if u == "wrongpw" { "secret" } else { "pw" });
    }
    let server = b
        .generated("fine", "INBOX", 5)
        .generated("wrongpw", "INBOX", 3)
        .generated("big", "INBOX", 2)
        .generated("many", "INBOX", 30)
        .generated("slash", "INBOX", 2)
        .start()
        .await
        .unwrap();
    let store = server.store();
    let date = FixedOffset::east_opt(0)
        .unwrap()
        .with_ymd_and_hms(2026, 3, 4, 5, 6, 7)
        .unwrap();
    let mut big = b"From: a@example.com\r\nSubject: the big one\r\n\r\n".to_vec();
    big.resize(40 * 1024 * 1024, b'x');
    store
        .append("big", "INBOX", big, &["\\Seen"], date)
        .unwrap();
    store.create_folder("slash", "Work/Plans").unwrap();
    for i in 0..3 {
        let raw = format!("From: b@example.com\r\nSubject: plan {i}\r\n\r\nbody\r\n");
        store
            .append("slash", "Work/Plans", raw.into_bytes(), &[], date)
            .unwrap();
    }
    server
}

/// Every folder of every user: its messages' UIDs, flags and sizes.
type Snapshot = BTreeMap<(String, String), Vec<(u32, Vec<String>, usize)>>;

fn snapshot(server: &ServerHandle) -> Snapshot {
    let store = server.store();
    let mut out = Snapshot::new();
    for u in USERS {
        for f in store.folders(u).unwrap() {
            let msgs = store
                .messages(u, &f.name)
                .unwrap()
                .into_iter()
                .map(|m| (m.uid, m.flags.into_iter().collect(), m.raw.len()))
                .collect();
            out.insert((u.to_string(), f.name), msgs);
        }
    }
    out
}

fn user<'a>(report: &'a Value, name: &str) -> &'a Value {
    let email = format!("{name}@contoso.edu");
    report["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["emailAddress"] == email.as_str())
        .unwrap_or_else(|| panic!("{email} in {report:#}"))
}

fn skipped<'a>(u: &'a Value, reason: &str) -> Vec<&'a Value> {
    u["survey"]["skipped"]
        .as_array()
        .map(|s| s.iter().filter(|k| k["reason"] == reason).collect())
        .unwrap_or_default()
}

async fn rehearse(state: &Path, csv: &Path, report: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "rehearse",
        "--source-endpoint",
        "src",
        "--csv",
        csv.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        "--item-cap",
        "20",
    ];
    args.extend_from_slice(extra);
    mailmig(state, &args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rehearsal_names_every_problem_in_exchanges_words_and_leaves_the_source_alone() {
    let server = source().await;
    let before = snapshot(&server);
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = USERS.iter().map(|u| u.to_string()).collect();
    let (state, csv) = embedded_endpoint(dir.path(), &server, &names, 3).await;
    let out_dir = dir.path().join("report");
    let o = rehearse(&state, &csv, &out_dir, &["--json"]).await;
    assert_eq!(o.status.code(), Some(1), "a user would fail: {}", text(&o));
    let report: Value = serde_json::from_slice(&o.stdout).expect("--json prints JSON");
    let saved: Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report, saved, "--json prints what report.json holds");

    let fine = user(&report, "fine");
    assert_eq!(fine["status"], "Ready", "{fine:#}");
    assert_eq!(fine["survey"]["toCopyItems"], 5);
    assert!(
        fine["forecastSeconds"].as_f64().is_some_and(|s| s > 0.0),
        "{fine:#}"
    );

    let wrong = user(&report, "wrongpw");
    assert_eq!(wrong["status"], "Failed");
    assert_eq!(
        wrong["error"],
        "We had trouble signing in to this account. Confirm that you're using the correct user name and password."
    );

    let big = user(&report, "big");
    assert_eq!(big["status"], "Warning");
    let large = skipped(big, "LargeItem");
    assert_eq!(large.len(), 1, "{big:#}");
    assert_eq!(large[0]["folder"], "INBOX");
    assert_eq!(large[0]["size"], 40 * 1024 * 1024);
    assert!(large[0]["date"].as_str().unwrap().starts_with("2026-03-04"));
    assert_eq!(big["survey"]["toCopyItems"], 2);

    let many = user(&report, "many");
    assert_eq!(skipped(many, "ItemCap").len(), 10, "{many:#}");
    assert_eq!(many["survey"]["toCopyItems"], 20);
    assert!(
        many["warnings"][0].as_str().unwrap().contains("ItemCap"),
        "{many:#}"
    );

    let slash = user(&report, "slash");
    let folder = skipped(slash, "FolderName");
    assert_eq!(folder.len(), 1, "{slash:#}");
    assert_eq!(folder[0]["folder"], "Work/Plans");
    assert!(
        folder[0]["detail"]
            .as_str()
            .unwrap()
            .contains("3 messages not migrated"),
        "{slash:#}"
    );
    assert_eq!(slash["survey"]["toCopyItems"], 2);

    let t = &report["totals"];
    assert_eq!(
        (
            t["users"].as_u64(),
            t["ready"].as_u64(),
            t["warning"].as_u64(),
            t["failed"].as_u64()
        ),
        (Some(5), Some(1), Some(3), Some(1)),
        "{t:#}"
    );
    assert_eq!(t["toCopyItems"], 5 + 2 + 20 + 2);
    assert_eq!(t["skippedItems"], 1 + 10);
    let forecast = &report["forecast"];
    assert_eq!(forecast["concurrency"], 3);
    assert_eq!(forecast["rate"]["method"], "read");

    // users.csv: one row per user, in the CSV's order.
    let mut rows = csv::Reader::from_path(out_dir.join("users.csv")).unwrap();
    let rows: Vec<csv::StringRecord> = rows.records().map(Result::unwrap).collect();
    let order: Vec<&str> = rows.iter().map(|r| &r[0]).collect();
    assert_eq!(
        order,
        USERS
            .map(|u| format!("{u}@contoso.edu"))
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
    );
    assert_eq!(&rows[1][2], "Failed");
    assert!(rows[1][10].contains("trouble signing in"));

    let html = std::fs::read_to_string(out_dir.join("report.html")).unwrap();
    assert!(
        !html.contains(" src=") && !html.contains(" href=") && !html.contains("url("),
        "self-contained: nothing to fetch"
    );
    assert!(!html.contains("<script"), "no script");

    // Read-only: every folder, UID, flag and size as before.
    assert_eq!(
        snapshot(&server),
        before,
        "the rehearsal changed the source"
    );
}

/// --copy copies into a scratch tenant and measures; the state's own tenant and batches are
/// not touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rehearsal_with_copy_measures_a_real_copy_and_leaves_no_batch() {
    let server = source().await;
    let before = snapshot(&server);
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = USERS.iter().map(|u| u.to_string()).collect();
    let (state, csv) = embedded_endpoint(dir.path(), &server, &names, 2).await;
    let out_dir = dir.path().join("report");
    let o = rehearse(&state, &csv, &out_dir, &["--copy"]).await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let shown = text(&o);
    assert!(
        shown.contains("5 users: 1 ready, 3 with warnings, 1 would fail"),
        "{shown}"
    );
    assert!(shown.contains("measured by copy"), "{shown}");
    // The copy's progress, as `run` logs it off a terminal (on standard error).
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("fine@contoso.edu: initial sync done: 5 items"),
        "{stderr}"
    );
    let report: Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("report.json")).unwrap()).unwrap();
    let many = user(&report, "many");
    assert_eq!(many["copy"]["items"], 20, "{many:#}");
    assert!(many["copy"]["error"].is_null());
    assert_eq!(user(&report, "big")["copy"]["items"], 2);
    assert!(user(&report, "wrongpw")["copy"].is_null());
    assert_eq!(report["forecast"]["rate"]["method"], "copy");
    assert_eq!(report["forecast"]["rate"]["items"], 5 + 2 + 20 + 2);
    // The state's batches and tenant are as they were: no batch, no mail in the tenant.
    let o = mailmig(&state, &["batch", "get", "--json"]).await;
    assert_eq!(
        serde_json::from_slice::<Value>(&o.stdout).unwrap(),
        Value::Array(vec![])
    );
    let o = mailmig(
        &state,
        &[
            "target",
            "folders",
            "--mailbox",
            "fine@contoso.edu",
            "--json",
        ],
    )
    .await;
    let folders: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    let items: u64 = folders
        .as_array()
        .map(|f| f.iter().filter_map(|f| f["items"].as_u64()).sum())
        .unwrap_or(0);
    assert_eq!(items, 0, "the state's tenant got mail: {folders}");
    assert_eq!(
        snapshot(&server),
        before,
        "the rehearsal changed the source"
    );
}

/// Debian's Chromium, headless, as root or not.
fn chromium() -> Option<std::process::Command> {
    let found = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| {
            std::process::Command::new(c)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
    let Some(bin) = found else {
        assert!(
            std::env::var_os("MAILMIG_REQUIRE_REAL_SERVERS").is_none(),
            "Chromium is not installed (scripts/install-test-deps.sh installs it)"
        );
        eprintln!("skipped: no Chromium");
        return None;
    };
    let mut c = std::process::Command::new(bin);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ]);
    Some(c)
}

/// The HTML report in a real browser: rendered, screenshotted, and its text read back through
/// the DOM Chromium built (users, totals, a skipped item, the failure's message).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_html_report_renders_in_a_real_browser() {
    let Some(_) = chromium() else { return };
    let server = source().await;
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = USERS.iter().map(|u| u.to_string()).collect();
    let (state, csv) = embedded_endpoint(dir.path(), &server, &names, 3).await;
    let out_dir = dir.path().join("report");
    let o = rehearse(&state, &csv, &out_dir, &[]).await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let page = out_dir.join("report.html");
    let url = format!("file://{}", page.display());
    let profile = dir.path().join("chromium-profile");
    let dom = chromium()
        .unwrap()
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--dump-dom", &url])
        .output()
        .unwrap();
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let dom = String::from_utf8_lossy(&dom.stdout);
    // What the browser built, not the file: the parsed document, elements closed and all.
    let table = dom
        .split("<table id=\"users\">")
        .nth(1)
        .and_then(|t| t.split("</table>").next())
        .unwrap_or_else(|| panic!("no users table in the DOM:\n{dom}"));
    for u in USERS {
        assert!(
            table.contains(&format!("{u}@contoso.edu")),
            "{u} in {table}"
        );
    }
    assert!(
        table.contains("We had trouble signing in to this account."),
        "{table}"
    );
    let cards = dom
        .split("id=\"totals\"")
        .nth(1)
        .and_then(|t| t.split("</div></div>").next())
        .unwrap();
    assert!(cards.contains("<b>5</b>users"), "{cards}");
    assert!(cards.contains(">1</b>would fail"), "{cards}");
    assert!(cards.contains("<b>11</b>items skipped"), "{cards}");
    assert!(dom.contains("Work/Plans"), "the skipped folder");
    assert!(dom.contains("LargeItem"), "the large item");
    assert!(dom.contains("ItemCap"), "the items over the cap");
    assert!(dom.contains("<svg id=\"sizes\""), "the sizes chart");
    assert!(dom.contains("<svg id=\"forecast\""), "the forecast chart");

    let shot = dir.path().join("report.png");
    let o = chromium()
        .unwrap()
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", shot.display()))
        .args(["--window-size=1280,1400", "--hide-scrollbars", &url])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let png = std::fs::read(&shot).expect("a screenshot");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(
        png.len() > 20_000,
        "a blank page is smaller: {} bytes",
        png.len()
    );
    if let Some(keep) = std::env::var_os("MAILMIG_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
}
