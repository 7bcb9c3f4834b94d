//! The performance gate's workloads: `gate WORKLOAD` sets one up, then runs its measured part
//! inside [`measured_section`], which `scripts/perf-gate.sh` has valgrind's callgrind count
//! (`--toggle-collect`): instructions, not seconds, so a shared 2-core CI machine gives the
//! same number every run. One current-thread runtime: every task (the engine's and
//! fake-imap's) is polled inside the section while it runs, and nowhere else.
//!
//! Run without a workload (as `cargo bench` does), it lists them and exits.

use std::future::Future;

use mailmig_benches::{csv, fetch_all, prepare, server, sync};

/// (name, what it measures)
const WORKLOADS: [(&str, &str); 5] = [
    (
        "copy-4k",
        "fake-imap -> engine -> tenant, 10,000 messages of 4 KB",
    ),
    (
        "copy-1m",
        "fake-imap -> engine -> tenant, 200 messages of 1 MB",
    ),
    ("noop-resync", "a re-sync of the 10,000 with nothing new"),
    ("csv-50k", "parsing and checking a CSV of 50,000 rows"),
    (
        "fetch-serve",
        "fake-imap serving UID FETCH 1:* of 10,000 x 4 KB",
    ),
];

/// Everything counted happens below this frame.
#[inline(never)]
fn measured_section<F: Future>(rt: &tokio::runtime::Runtime, f: F) -> F::Output {
    std::hint::black_box(rt.block_on(f))
}

fn main() {
    let Some(workload) = std::env::args().nth(1).filter(|a| !a.starts_with('-')) else {
        println!("perf gate workloads (run by scripts/perf-gate.sh under callgrind):");
        for (name, what) in WORKLOADS {
            println!("  {name:<12} {what}");
        }
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    match workload.as_str() {
        "copy-4k" | "copy-1m" => {
            let (count, size) = if workload == "copy-4k" {
                (10_000, 4096)
            } else {
                (200, 1024 * 1024)
            };
            let (source, _) = rt.block_on(server(count, size));
            let run = rt.block_on(prepare(&source));
            measured_section(&rt, sync(&run));
            let copied = run.engine.user("u@contoso.edu").expect("the user");
            assert_eq!(copied.items_synced, count as u64, "the copy is complete");
        }
        "noop-resync" => {
            let (source, _) = rt.block_on(server(10_000, 4096));
            let run = rt.block_on(prepare(&source));
            rt.block_on(sync(&run));
            run.clock.advance(chrono::Duration::hours(24));
            measured_section(&rt, sync(&run));
            let u = run.engine.user("u@contoso.edu").expect("the user");
            assert_eq!((u.items_synced, u.last_sync_items), (10_000, 0));
        }
        "csv-50k" => {
            let text = csv(50_000, "contoso.edu");
            let options = engine::control::csv::CsvOptions::default();
            let parsed = measured_section(&rt, async {
                engine::control::csv::parse(text.as_bytes(), &options)
            })
            .expect("a valid CSV");
            assert_eq!(parsed.rows.len(), 50_000);
        }
        "fetch-serve" => {
            let (source, bytes) = rt.block_on(server(10_000, 4096));
            let got = measured_section(&rt, fetch_all(source.imap_addr()));
            assert!(got as u64 > bytes, "every message was served");
        }
        other => {
            eprintln!("unknown workload {other:?}");
            std::process::exit(2);
        }
    }
}
