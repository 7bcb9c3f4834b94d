//! `mailmig fake-exchange serve` as a real process, talked to by clients not written here:
//! curl POSTs Autodiscover's POX request (settings, a redirect, error 500) through the printed
//! `CONNECT_TO` lines with the CA verified; ldapsearch (Debian's ldap-utils) reads a directory
//! of 2,500 recipients with the paged-results control; Python's exchangelib walks, syncs and
//! fetches over EWS while the test changes the organisation through `--control`. All come from
//! scripts/install-test-deps.sh.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::Served;

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .expect("the client is installed (scripts/install-test-deps.sh)");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn pox(address: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"><Request><EMailAddress>{address}</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>"#
    )
}

#[test]
fn curl_gets_settings_a_redirect_and_error_500_from_the_example_organisation() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fake-exchange.toml");
    let served = Served::start(Path::new(example));
    assert!(served.get("AUTODISCOVER").starts_with("https://127.0.0.1:"));
    assert!(served.get("EWS").ends_with("/EWS/Exchange.asmx"));
    assert!(served.get("LDAP").starts_with("ldap://127.0.0.1:"));
    let connect = served.connect_to();
    for name in [
        "contoso.com:443:",
        "autodiscover.contoso.com:443:",
        "mail.contoso.com:443:",
        "dc01.contoso.com:389:",
    ] {
        assert!(
            connect.iter().any(|c| c.starts_with(name)),
            "{name} in {connect:?}"
        );
    }
    let curl = |address: &str, url: &str| {
        let out = run(Command::new("curl")
            .args([
                "-sS",
                "--fail-with-body",
                "--max-time",
                "20",
                "--cacert",
                served.get("CA"),
            ])
            .args(&connect)
            .args([
                "-u",
                "administrator@contoso.com:P@ssw0rd",
                "-H",
                "Content-Type: text/xml",
            ])
            .args(["--data-binary", &pox(address), url]));
        String::from_utf8(out.stdout).unwrap()
    };
    // The lookup order's second URL, by name, with the certificate verified against CA=.
    let settings = curl(
        "alice@contoso.com",
        "https://autodiscover.contoso.com/autodiscover/autodiscover.xml",
    );
    assert!(settings.contains("<Action>settings</Action>"), "{settings}");
    assert!(settings.contains("<EwsUrl>https://mail.contoso.com/EWS/Exchange.asmx</EwsUrl>"));
    assert!(settings.contains("<Type>EXPR</Type>"));
    assert!(settings.contains("<DisplayName>Alice Anders</DisplayName>"));
    // The mail user's settings are elsewhere: a redirectAddr.
    let redirect = curl(
        "frank@contoso.com",
        "https://contoso.com/autodiscover/autodiscover.xml",
    );
    assert!(
        redirect.contains("<Action>redirectAddr</Action>"),
        "{redirect}"
    );
    assert!(redirect.contains("<RedirectAddr>frank@fabrikam.com</RedirectAddr>"));
    let unknown = curl(
        "nobody@contoso.com",
        "https://autodiscover.contoso.com/autodiscover/autodiscover.xml",
    );
    assert!(unknown.contains("<ErrorCode>500</ErrorCode>"), "{unknown}");
    // The plain-HTTP step: an unauthenticated GET answered with a 302 to HTTPS.
    let out = run(Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "20",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{redirect_url}",
        ])
        .args(&connect)
        .arg("http://autodiscover.contoso.com/autodiscover/autodiscover.xml"));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "302 https://mail.contoso.com/autodiscover/autodiscover.xml"
    );
    // SIGTERM ends the server cleanly and removes the CA file it wrote.
    let mut served = served;
    let ca = served.get("CA").to_string();
    let pid = served.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = served.child.wait().unwrap();
    assert!(status.success(), "exit status after SIGTERM: {status}");
    assert!(!Path::new(&ca).exists(), "{ca} removed");
}

#[test]
fn ldapsearch_pages_through_two_thousand_five_hundred_recipients() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("org.toml");
    std::fs::write(
        &config,
        "[organisation]\nprimary_domain = \"contoso.com\"\n[[admins]]\naddress = \"administrator@contoso.com\"\npassword = \"P@ssw0rd\"\ndomain_admins = true\n[generate]\nmailboxes = 2000\nmail_users = 200\nmail_contacts = 200\ndistribution_groups = 100\n",
    )
    .unwrap();
    let served = Served::start(&config);
    // Asking for pages of 2,000: the directory answers pages of at most 1,000.
    let out = run(Command::new("ldapsearch")
        .args([
            "-LLL",
            "-x",
            "-o",
            "nettimeout=20",
            "-H",
            served.get("LDAP"),
        ])
        .args(["-D", "administrator@contoso.com", "-w", "P@ssw0rd"])
        .args(["-E", "pr=2000/noprompt", "-b", "DC=contoso,DC=com"])
        .args(["(&(mail=*)(msExchRecipientTypeDetails=*))", "mail"]));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut pages = Vec::new();
    let mut in_page = 0;
    for line in text.lines() {
        if line.starts_with("dn: ") {
            in_page += 1;
        } else if line.starts_with("# pagedresults: cookie=") {
            pages.push(in_page);
            in_page = 0;
        }
    }
    assert_eq!(pages.iter().sum::<usize>(), 2500, "{pages:?}");
    assert!(pages.iter().all(|&p| p <= 1000), "{pages:?}");
    assert_eq!(pages, [1000, 1000, 500]);
    let mails: std::collections::HashSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("mail: "))
        .collect();
    assert_eq!(mails.len(), 2500, "every recipient once");
}

#[test]
fn exchangelib_walks_syncs_fetches_and_impersonates_against_the_standalone_server() {
    let dir = tempfile::tempdir().unwrap();
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/fake-exchange.toml"
    ))
    .unwrap();
    // The example plus an admin with FullAccess on carol but no impersonation role.
    let org = format!(
        "{example}\n[[admins]]\naddress = \"helpdesk@contoso.com\"\npassword = \"Help1234!\"\nfull_access = [\"carol@contoso.com\"]\n"
    );
    let plain = dir.path().join("org.toml");
    std::fs::write(&plain, &org).unwrap();
    // The same organisation, throttling every second EWS request.
    let busy = dir.path().join("busy.toml");
    std::fs::write(
        &busy,
        format!("{org}\n[faults.ews]\nbusy_every = 2\nback_off_ms = 100\n"),
    )
    .unwrap();
    let mut served = Served::start_with(&plain, true);
    let busy_served = Served::start(&busy);
    let bundle = dir.path().join("bundle.pem");
    let pem = |s: &Served| std::fs::read_to_string(s.get("CA")).unwrap();
    std::fs::write(&bundle, format!("{}{}", pem(&served), pem(&busy_served))).unwrap();
    let message = dir.path().join("new.eml");
    std::fs::write(
        &message,
        "From: dave@contoso.com\r\nTo: alice@contoso.com\r\nSubject: Delivered during the test\r\n\r\nHello\r\n",
    )
    .unwrap();

    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/exchangelib_client.py"
    );
    let mut python = Command::new("python3")
        .arg(script)
        .arg(served.get("EWS"))
        .arg(busy_served.get("EWS"))
        .arg(&bundle)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (scripts/install-test-deps.sh)");
    let mut to_python = python.stdin.take().unwrap();
    let mut transcript = Vec::new();
    for line in BufReader::new(python.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if line == "WAITING" {
            // Between the two syncs: one message read, one deleted, one delivered.
            let listed = served.control("list alice@contoso.com Inbox");
            let unread = listed
                .split_whitespace()
                .find_map(|w| w.strip_suffix(":unread"))
                .expect("an unread message in the example's inbox")
                .to_string();
            served.control(&format!("set-read alice@contoso.com Inbox {unread} yes"));
            let other = if unread == "0" { "1" } else { "0" };
            served.control(&format!("delete alice@contoso.com Inbox {other}"));
            served.control(&format!(
                "deliver alice@contoso.com Inbox {}",
                message.display()
            ));
            writeln!(to_python, "go").unwrap();
        }
        transcript.push(line);
    }
    let out = python.wait_with_output().unwrap();
    let text = transcript.join("\n");
    assert!(
        out.status.success() && text.contains("all checks passed"),
        "exchangelib client failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
