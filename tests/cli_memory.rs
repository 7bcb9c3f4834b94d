//! Memory stays bounded by the chunk, not by the mailbox: `mailmig run` copies a mailbox of
//! 24 MB and one of 120 MB (1 MB messages) from `mailmig fake-imap serve` into `mailmig
//! fake-target serve` (both other processes, so the run's own peak is what is measured), and
//! its peak memory hardly moves.

mod common;

use std::path::Path;

use common::{Serving, mailmig_ok, plain_endpoint, text};

/// Copies `count` messages of 1 MB in chunks of 8; returns the run's peak memory in MiB.
async fn peak_for(dir: &Path, count: usize) -> u64 {
    let imap_toml = dir.join(format!("imap-{count}.toml"));
    std::fs::write(
        &imap_toml,
        format!(
            "[server]\nmode = \"plain\"\n[generator]\nmin_size = 1048576\nmax_size = 1048576\n\
             [[users]]\nname = \"u\"\npassword = \"pw\"\nfolders = {{ \"INBOX\" = {count} }}\n"
        ),
    )
    .unwrap();
    let tenant_toml = dir.join(format!("tenant-{count}.toml"));
    std::fs::write(
        &tenant_toml,
        "[tenant]\naccepted_domains = [\"contoso.edu\"]\n[[mailboxes]]\naddress = \"u@contoso.edu\"\n",
    )
    .unwrap();
    let source = Serving::start(
        &[
            "fake-imap",
            "serve",
            "--config",
            imap_toml.to_str().unwrap(),
        ],
        &["IMAP"],
    );
    let tenant = Serving::start(
        &[
            "fake-target",
            "serve",
            "--config",
            tenant_toml.to_str().unwrap(),
        ],
        &["URL", "TOKEN"],
    );
    let state = dir.join(format!("state-{count}"));
    let port: u16 = source
        .get("IMAP")
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let csv = dir.join("users.csv");
    std::fs::write(&csv, "EmailAddress,UserName,Password\nu@contoso.edu,u,pw\n").unwrap();
    let (url, token) = (tenant.get("URL"), tenant.get("TOKEN"));
    mailmig_ok(
        &state,
        &["target", "set", "--fake-target", url, "--token", token],
    )
    .await;
    plain_endpoint(&state, port, 10).await;
    let csv = csv.to_str().unwrap();
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
            csv,
            "--autostart",
        ],
    )
    .await;
    let o = tokio::process::Command::new(common::BIN)
        .arg("--state-dir")
        .arg(&state)
        .args(["run", "--until-idle"])
        .env("MAILMIG_FETCH_CHUNK", "8")
        .output()
        .await
        .unwrap();
    let shown = text(&o);
    assert!(o.status.success(), "{shown}");
    assert!(
        shown.contains(&format!("initial sync done: {count} items")),
        "{shown}"
    );
    let line = shown
        .lines()
        .find(|l| l.contains("run ended; peak memory "))
        .unwrap_or_else(|| panic!("the peak in\n{shown}"));
    line.rsplit("peak memory ")
        .next()
        .and_then(|m| m.strip_suffix(" MiB"))
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("a number in {line}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peak_memory_does_not_grow_with_the_mailbox() {
    let dir = tempfile::tempdir().unwrap();
    let small = peak_for(dir.path(), 24).await;
    let large = peak_for(dir.path(), 120).await;
    // 96 MB more mail; a chunk is 8 MB, and at most two are held (the next one is fetched
    // while this one is written): 16 MiB, plus a little for the allocator, never the mailbox.
    // (Measured: 37 and 46-49 MiB. With chunks of 64 messages the same runs peak at 45 and
    // 115 MiB, and this fails.)
    assert!(
        large <= small + 20,
        "peak memory {small} MiB for 24 MB of mail, {large} MiB for 120 MB"
    );
    eprintln!("peak memory: {small} MiB (24 x 1 MB), {large} MiB (120 x 1 MB)");
}
