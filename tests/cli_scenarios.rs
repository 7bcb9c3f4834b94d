//! `mailmig scenario run` as CI uses it: every scenario file passes, JUnit XML that a standard
//! JUnit reader reads (Python's junitparser, installed by scripts/install-test-deps.sh), JSON,
//! and a failing file exits 1.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_mailmig");

fn scenario_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/scenarios")
}

fn parse_junit(path: &std::path::Path) -> (usize, usize, Vec<String>) {
    let script = "import sys\n\
        from junitparser import JUnitXml, Failure\n\
        xml = JUnitXml.fromfile(sys.argv[1])\n\
        cases = [c for suite in xml for c in suite]\n\
        failed = [c.name for c in cases if any(isinstance(r, Failure) for r in c.result)]\n\
        print(len(cases)); print(len(failed))\n\
        [print(f) for f in failed]\n";
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(path)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut lines = text.lines();
    let cases = lines.next().unwrap().parse().unwrap();
    let failed = lines.next().unwrap().parse().unwrap();
    (cases, failed, lines.map(str::to_string).collect())
}

#[test]
fn the_scenario_library_passes_with_junit_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("junit.xml");
    let json = dir.path().join("out.json");
    let out = Command::new(BIN)
        .args(["scenario", "run"])
        .arg(scenario_dir())
        .arg("--junit")
        .arg(&junit)
        .arg("--json")
        .arg(&json)
        .args(["--seed", "7"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let files = std::fs::read_dir(scenario_dir())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "toml")
        })
        .count();
    assert!(files >= 30, "at least 30 scenario files ({files})");
    assert!(
        stdout.contains(&format!("scenarios: {files} passed, 0 failed")),
        "{stdout}"
    );
    let (cases, failed, _) = parse_junit(&junit);
    assert_eq!((cases, failed), (files, 0));
    let outcomes: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(outcomes.as_array().unwrap().len(), files);
}

#[test]
fn a_failing_expectation_fails_the_run_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        r#"
name = "Wrong on purpose: expects 99 items"
seed = 1
csv = """
EmailAddress,UserName,Password
t@contoso.edu,t,pw
"""
[source.server]
[[source.users]]
name = "t"
password = "pw"
folders = { "INBOX" = 2 }
[target.tenant]
accepted_domains = ["contoso.edu"]
[[target.mailboxes]]
address = "t@contoso.edu"
[[steps]]
action = "new-batch"
name = "B"
autostart = true
[[steps]]
action = "run"
[[steps]]
action = "expect"
users = [{ email = "t@contoso.edu", items_synced = 99 }]
"#,
    )
    .unwrap();
    let junit = dir.path().join("junit.xml");
    let out = Command::new(BIN)
        .args(["scenario", "run"])
        .arg(&bad)
        .arg("--junit")
        .arg(&junit)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("FAIL") && stdout.contains("2 items synced, expected 99"),
        "{stdout}"
    );
    let (cases, failed, names) = parse_junit(&junit);
    assert_eq!((cases, failed), (1, 1));
    assert_eq!(names, vec!["Wrong on purpose: expects 99 items"]);
    // A file that is not a scenario is a failure that names the problem, not a panic.
    std::fs::write(&bad, "name = 1\n").unwrap();
    let out = Command::new(BIN)
        .args(["scenario", "run"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("bad.toml"));
}
