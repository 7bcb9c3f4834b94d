//! Every scenario file is one test, so a failure names the file.

use std::path::{Path, PathBuf};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

async fn check(file: &str) {
    let o = scenarios::run_file(&dir().join(file), None).await;
    assert!(o.passed, "{file}: {}", o.failure.unwrap_or_default());
}

macro_rules! scenario_files {
    ($($test:ident => $file:literal),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                check($file).await;
            }
        )*

        #[test]
        fn every_scenario_file_is_listed() {
            let listed = [$($file),*];
            for entry in std::fs::read_dir(dir()).unwrap() {
                let name = entry.unwrap().file_name().to_string_lossy().to_string();
                if name.ends_with(".toml") {
                    assert!(listed.contains(&name.as_str()), "{name} is not listed in scenario_files!()");
                }
            }
        }
    };
}

scenario_files!(
    walkthrough_dovecot => "01-walkthrough-dovecot.toml",
    csv_exchange_form => "02-csv-exchange-form.toml",
    csv_mirapoint_form => "03-csv-mirapoint-form.toml",
    csv_courier_userroot => "04-csv-courier-userroot.toml",
    missing_recipient => "05-missing-recipient.toml",
    quota_full => "06-quota-full.toml",
    unlicensed_grace => "07-unlicensed-grace.toml",
);
