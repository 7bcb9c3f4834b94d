//! `mailmig fake-exchange serve` as a real process, talked to by clients not written here:
//! curl POSTs Autodiscover's POX request (settings, a redirect, error 500) through the printed
//! `CONNECT_TO` lines with the CA verified, and ldapsearch (Debian's ldap-utils) reads a
//! directory of 2,500 recipients with the paged-results control. Both come from
//! scripts/install-test-deps.sh.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

struct Served {
    child: Child,
    values: Vec<(String, String)>,
}

impl Served {
    fn start(config: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mailmig"))
            .args(["fake-exchange", "serve", "--config"])
            .arg(config)
            .stdout(Stdio::piped())
            .spawn()
            .expect("mailmig starts");
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
        Self { child, values }
    }

    fn get(&self, key: &str) -> &str {
        self.values
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {key}= in {:?}", self.values))
    }

    fn connect_to(&self) -> Vec<String> {
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
