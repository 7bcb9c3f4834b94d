//! Test-MigrationServerAvailability -ExchangeOutlookAnywhere against fake-exchange: the seed's
//! organisation found by Autodiscover, and one test per way it fails (certificate, password,
//! rights, redirects, directory sync).

use std::time::Duration;

use engine::exchange::test::{TestInput, test};
use engine::exchange::{AdminCredential, ConnectTo, EwsAccess, MailboxPermission};
use engine::test_server::TestResult;
use fake_exchange::{Config, FakeExchange, RunningExchange};

const ORG: &str = r#"
[organisation]
name = "Contoso"
primary_domain = "contoso.com"
seed = 3
CERT

[[servers]]
name = "mail.contoso.com"
roles = ["ews"]
[[servers]]
name = "dc01.contoso.com"
roles = ["ldap"]

[[databases]]
name = "DB01"
server = "mail.contoso.com"

[[admins]]
address = "administrator@contoso.com"
password = "P@ssw0rd"
domain_admins = true
impersonation = true
[[admins]]
address = "helpdesk@contoso.com"
password = "Help1234!"
full_access = ["alice@contoso.com", "bob@contoso.com"]
[[admins]]
address = "nobody@contoso.com"
password = "Nobody1!"

[[recipients]]
kind = "user-mailbox"
address = "alice@contoso.com"
display_name = "Alice Anders"
[[recipients]]
kind = "user-mailbox"
address = "bob@contoso.com"
display_name = "Bob Brown"
[[recipients]]
kind = "user-mailbox"
address = "hidden@contoso.com"
hidden = true
[[recipients]]
kind = "mail-contact"
address = "grace@fabrikam.com"
FAULTS
"#;

struct Org {
    exchange: RunningExchange,
    _dir: tempfile::TempDir,
    ca: std::path::PathBuf,
}

async fn start_org(certificate: &str, faults: &str) -> Org {
    let text = ORG
        .replace("CERT", &format!("certificate = \"{certificate}\""))
        .replace("FAULTS", faults);
    let exchange = FakeExchange::start(Config::from_toml(&text).unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, exchange.ca_pem()).unwrap();
    Org {
        exchange,
        _dir: dir,
        ca,
    }
}

impl Org {
    fn input(&self, user: &str, password: &str) -> TestInput {
        TestInput {
            email_address: user.to_string(),
            credential: AdminCredential {
                user_name: user.to_string(),
                password: password.to_string(),
            },
            exchange_server: None,
            rpc_proxy_server: None,
            nspi_server: None,
            mailbox_permission: None,
            accept_untrusted_certificates: false,
            ca_file: Some(self.ca.clone()),
            connect_to: self
                .exchange
                .connect_to()
                .iter()
                .map(|c| c.parse::<ConnectTo>().unwrap())
                .collect(),
            timeout: Duration::from_secs(10),
        }
    }

    fn admin(&self) -> TestInput {
        self.input("administrator@contoso.com", "P@ssw0rd")
    }
}

#[tokio::test]
async fn the_seed_organisation_is_found_by_autodiscover() {
    let org = start_org("trusted", "").await;
    let out = test(&org.admin(), Some(false)).await;
    assert_eq!(out.result, TestResult::Success, "{out:?}");
    assert!(out.supports_cutover);
    let s = out.connection_settings.unwrap();
    assert!(s.has_autodiscovery && s.has_admin_privilege);
    assert_eq!(
        s.autodiscover_url.as_deref(),
        Some("https://contoso.com/autodiscover/autodiscover.xml")
    );
    assert_eq!(s.incoming_exchange_server, "mail.contoso.com");
    assert_eq!(s.incoming_rpc_proxy_server, "mail.contoso.com");
    assert_eq!(
        s.incoming_nspi_server, "dc01.contoso.com",
        "Autodiscover's AD"
    );
    assert_eq!(s.incoming_domain, "contoso.com");
    assert_eq!(s.ews_url, "https://mail.contoso.com/EWS/Exchange.asmx");
    assert_eq!(s.ews_access, EwsAccess::Impersonation);
    assert!(s.server_version.is_some());
    assert_eq!(out.mailboxes, Some(2), "the hidden mailbox is not taken");
    assert_eq!(out.recipients, Some(3));
    let json = serde_json::to_string(&s).unwrap();
    assert!(!json.contains("P@ssw0rd"), "{json}");
    for field in [
        "AutodiscoverUrl",
        "HasAdminPrivilege",
        "IncomingRPCProxyServer",
        "IncomingNSPIServer",
        "SourceMailboxLegDn",
    ] {
        assert!(json.contains(field), "{field} in {json}");
    }
}

#[tokio::test]
async fn a_self_signed_certificate_is_refused_unless_accepted() {
    let org = start_org("self-signed", "").await;
    let mut input = org.admin();
    input.ca_file = None;
    let out = test(&input, Some(false)).await;
    assert_eq!(out.result, TestResult::Failed);
    assert!(
        out.message
            .starts_with("We weren't able to connect to the remote server"),
        "{}",
        out.message
    );
    let detail = out.error_detail.unwrap();
    assert!(
        detail.contains("certificate is not trusted") && detail.contains("--ca-file"),
        "{detail}"
    );
    input.accept_untrusted_certificates = true;
    let out = test(&input, Some(false)).await;
    assert_eq!(out.result, TestResult::Warning, "{out:?}");
    assert!(out.message.contains("certificate isn't trusted"));
}

#[tokio::test]
async fn a_wrong_password_is_named_as_such_and_never_shown() {
    let org = start_org("trusted", "").await;
    let out = test(
        &org.input("administrator@contoso.com", "Wr0ng-Secret"),
        Some(false),
    )
    .await;
    assert_eq!(out.result, TestResult::Failed);
    assert!(out.message.contains("credentials"), "{}", out.message);
    assert!(!format!("{out:?}").contains("Wr0ng-Secret"));
}

#[tokio::test]
async fn rights_decide_between_impersonation_and_delegate_access() {
    let org = start_org("trusted", "").await;
    let out = test(&org.input("helpdesk@contoso.com", "Help1234!"), Some(false)).await;
    assert_eq!(out.result, TestResult::Success, "{out:?}");
    let s = out.connection_settings.unwrap();
    assert_eq!(
        s.ews_access,
        EwsAccess::Delegate,
        "impersonation denied, FullAccess works"
    );
    assert!(!s.has_admin_privilege);

    let out = test(&org.input("nobody@contoso.com", "Nobody1!"), Some(false)).await;
    assert_eq!(out.result, TestResult::Failed);
    assert!(
        out.message.contains("can't open the mailboxes"),
        "{}",
        out.message
    );
    let detail = out.error_detail.unwrap();
    assert!(
        detail.contains("ErrorImpersonateUserDenied") && detail.contains("ErrorAccessDenied"),
        "{detail}"
    );

    let mut full = org.admin();
    full.mailbox_permission = Some(MailboxPermission::FullAccess);
    let out = test(&full, Some(false)).await;
    assert_eq!(
        out.connection_settings.unwrap().ews_access,
        EwsAccess::Delegate,
        "FullAccess never impersonates"
    );
}

#[tokio::test]
async fn directory_sync_on_means_no_cutover() {
    let org = start_org("trusted", "").await;
    let out = test(&org.admin(), Some(true)).await;
    assert_eq!(out.result, TestResult::Warning);
    assert!(!out.supports_cutover);
    assert!(
        out.message
            .contains("directory synchronization is turned on")
    );
}

#[tokio::test]
async fn autodiscover_401_on_the_first_url_then_the_next() {
    let org = start_org(
        "trusted",
        "[[faults.autodiscover]]\nhost = \"contoso.com\"\naction = \"unauthorized\"",
    )
    .await;
    let out = test(&org.admin(), Some(false)).await;
    assert_eq!(out.result, TestResult::Success, "{out:?}");
    assert_eq!(
        out.connection_settings.unwrap().autodiscover_url.as_deref(),
        Some("https://autodiscover.contoso.com/autodiscover/autodiscover.xml")
    );
}

#[tokio::test]
async fn autodiscover_by_the_http_redirect_when_both_https_urls_fail() {
    let org = start_org(
        "trusted",
        "[[faults.autodiscover]]\nhost = \"contoso.com\"\naction = \"not-found\"\n[[faults.autodiscover]]\nhost = \"autodiscover.contoso.com\"\naction = \"not-found\"",
    )
    .await;
    let out = test(&org.admin(), Some(false)).await;
    assert_eq!(out.result, TestResult::Success, "{out:?}");
    assert_eq!(
        out.connection_settings.unwrap().autodiscover_url.as_deref(),
        Some("https://mail.contoso.com/autodiscover/autodiscover.xml")
    );
}

#[tokio::test]
async fn redirect_loops_and_long_chains_fail() {
    let org = start_org(
        "trusted",
        "[[faults.autodiscover]]\naction = \"redirect-loop\"",
    )
    .await;
    let out = test(&org.admin(), Some(false)).await;
    assert_eq!(out.result, TestResult::Failed);
    assert!(out.message.contains("Autodiscover"));
    assert!(out.error_detail.unwrap().contains("loop"));

    let org = start_org(
        "trusted",
        "[[faults.autodiscover]]\naction = \"redirect-chain\"\nhops = 11",
    )
    .await;
    let out = test(&org.admin(), Some(false)).await;
    assert_eq!(out.result, TestResult::Failed);
    assert!(out.error_detail.unwrap().contains("more than 10 times"));

    let org = start_org(
        "trusted",
        "[[faults.autodiscover]]\naction = \"redirect-chain\"\nhops = 3",
    )
    .await;
    let out = test(&org.admin(), Some(false)).await;
    assert_eq!(
        out.result,
        TestResult::Success,
        "3 hops are followed: {out:?}"
    );
}

#[tokio::test]
async fn an_unreachable_directory_fails_with_the_connect_message() {
    let org = start_org("trusted", "[faults.ldap]\nunreachable = true").await;
    let out = test(&org.admin(), Some(false)).await;
    assert_eq!(out.result, TestResult::Failed);
    assert!(out.message.starts_with("We weren't able to connect"));
    assert!(out.error_detail.unwrap().contains("dc01.contoso.com:389"));
}
