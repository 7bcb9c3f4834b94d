//! Provisioning a cutover against fake-exchange's directory (read over LDAP) into the fake
//! tenant: the seed's organisation, idempotence on a re-run, and each rule of cutover.md §4
//! (different-type conflict, security groups, unmigrated links, UM, invalid SMTP, 250 members,
//! the batch refusals).

use std::time::Duration;

use engine::exchange::ConnectTo;
use engine::exchange::directory::{self, Plan};
use engine::exchange::http::HttpClient;
use engine::exchange::provision::{ProvisionState, Provisioned, check_batch, provision};
use engine::target::Target;
use fake_exchange::{Config, FakeExchange, RunningExchange};
use fake_target::{Recipient, RecipientKind, Settings, Tenant};
use harness::TenantTarget;
use mailmig_model::{DirectoryKind, OrganizationInfo};

fn seed_config() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/fake-exchange.toml"
    ))
    .unwrap()
}

async fn read_plan(exchange: &RunningExchange) -> Plan {
    let connect_to: Vec<ConnectTo> = exchange
        .connect_to()
        .iter()
        .map(|c| c.parse().unwrap())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, exchange.ca_pem()).unwrap();
    let http = HttpClient::new(Some(&ca), false, connect_to, Duration::from_secs(10)).unwrap();
    let settings = harness::cutover_settings(exchange, &ca);
    let d = directory::read(&http, &settings).await.unwrap();
    assert!(d.admin_is_domain_admin);
    directory::plan(&d)
}

async fn start(config: &str) -> (RunningExchange, Plan) {
    let exchange = FakeExchange::start(Config::from_toml(config).unwrap())
        .await
        .unwrap();
    let plan = read_plan(&exchange).await;
    (exchange, plan)
}

fn tenant() -> (Tenant, TenantTarget) {
    let t = Tenant::new(Settings {
        accepted_domains: vec!["contoso.com".into()],
        ..Settings::default()
    });
    (t.clone(), TenantTarget::new(t))
}

fn state<'a>(out: &'a [Provisioned], id: &str) -> &'a ProvisionState {
    &out.iter()
        .find(|p| p.identity == id)
        .unwrap_or_else(|| panic!("{id}"))
        .state
}

async fn snapshot(t: &Tenant, plan: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    for p in &plan.recipients {
        if let Some(e) = t.directory_entry(&p.identity) {
            out.push(format!("{e:?}"));
        }
    }
    out
}

#[tokio::test]
async fn the_seed_organisation_is_provisioned_and_a_rerun_changes_nothing() {
    let (_exchange, plan) = start(&seed_config()).await;
    let ids: Vec<&str> = plan
        .recipients
        .iter()
        .map(|p| p.identity.as_str())
        .collect();
    assert!(
        !ids.contains(&"hidden@contoso.com"),
        "hidden mailboxes are not taken"
    );
    assert_eq!(plan.mailboxes(), 5);
    let (t, target) = tenant();
    let org = target.organization().await.unwrap().unwrap();
    check_batch(&plan, &org, None).unwrap();

    let first = provision(&plan, &target, &Default::default())
        .await
        .unwrap();
    for p in &first {
        assert_eq!(p.state, ProvisionState::Done, "{}", p.identity);
    }
    let passwords: Vec<&Provisioned> = first
        .iter()
        .filter(|p| p.initial_password.is_some())
        .collect();
    assert_eq!(
        passwords.len(),
        6,
        "the five mailboxes and the mail user sign in: {passwords:?}"
    );
    for p in &passwords {
        let pw = p.initial_password.as_deref().unwrap();
        assert_eq!(pw.len(), 16);
        assert!(pw.chars().filter(|c| !c.is_ascii_alphanumeric()).count() >= 3);
    }
    let bob = t.directory_entry("bob@contoso.com").unwrap();
    assert_eq!(bob.kind, DirectoryKind::UserMailbox);
    assert_eq!(bob.links.manager.as_deref(), Some("alice@contoso.com"));
    assert_eq!(bob.links.delegates, vec!["carol@contoso.com".to_string()]);
    assert!(bob.must_change_password);
    assert!(
        bob.proxy_addresses
            .iter()
            .any(|p| p.starts_with("X500:/o=")),
        "the legacyExchangeDN as X500: {:?}",
        bob.proxy_addresses
    );
    let team = t.directory_entry("team@contoso.com").unwrap();
    assert_eq!(team.members.len(), 5);
    assert_eq!(team.links.owners, vec!["alice@contoso.com".to_string()]);
    let grace = t.directory_entry("grace@fabrikam.com").unwrap();
    assert_eq!(grace.kind, DirectoryKind::MailContact);
    assert_eq!(
        grace.external_address.as_deref(),
        Some("grace@fabrikam.com")
    );

    let before = snapshot(&t, &plan).await;
    let again = provision(&plan, &target, &Default::default())
        .await
        .unwrap();
    assert!(again.iter().all(|p| p.state == ProvisionState::Done));
    assert!(
        again.iter().all(|p| p.initial_password.is_none()),
        "nothing is created twice"
    );
    assert_eq!(snapshot(&t, &plan).await, before, "a re-run converges");
}

const RULES: &str = r#"
[organisation]
name = "Contoso"
primary_domain = "contoso.com"
seed = 5
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
[[recipients]]
kind = "user-mailbox"
address = "alice@contoso.com"
[[recipients]]
kind = "user-mailbox"
address = "dave@contoso.com"
[[recipients]]
kind = "user-mailbox"
address = "hidden@contoso.com"
hidden = true
[[recipients]]
kind = "user-mailbox"
address = "bob@contoso.com"
manager = "hidden@contoso.com"
[[recipients]]
kind = "user-mailbox"
address = "um@contoso.com"
um_enabled = true
[[recipients]]
kind = "mail-contact"
legacy_dn = "/o=Contoso/ou=External/cn=Recipients/cn=nosmtp"
[[recipients]]
kind = "security-group"
address = "sec@contoso.com"
members = ["alice@contoso.com"]
[[recipients]]
kind = "security-group"
address = "precreated@contoso.com"
members = ["alice@contoso.com", "dave@contoso.com"]
[[recipients]]
kind = "distribution-group"
address = "waits@contoso.com"
members = ["alice@contoso.com", "um@contoso.com"]
"#;

#[tokio::test]
async fn each_rule_fails_only_its_recipient_with_its_message() {
    let (_exchange, plan) = start(RULES).await;
    let (t, target) = tenant();
    // A contact already holds dave's address in the tenant: a different type.
    let mut contact = Recipient::mailbox("dave@contoso.com", false, t.now());
    contact.kind = RecipientKind::MailContact;
    t.add_recipient(contact).unwrap();
    let mut pre = Recipient::mailbox("precreated@contoso.com", false, t.now());
    pre.kind = RecipientKind::MailEnabledSecurityGroup { members: vec![] };
    t.add_recipient(pre).unwrap();

    let out = provision(&plan, &target, &Default::default())
        .await
        .unwrap();
    let failed = |id: &str| match state(&out, id) {
        ProvisionState::Failed(m) => m.clone(),
        other => panic!("{id}: {other:?}"),
    };
    assert_eq!(
        failed("dave@contoso.com"),
        "A different type of Active Directory object already exists for \"dave@contoso.com\" in the target forest. Please verify that the SMTP address is correct."
    );
    assert!(failed("bob@contoso.com").contains("The manager of bob@contoso.com"));
    assert!(failed("um@contoso.com").contains("Unified Messaging"));
    assert_eq!(
        failed("/o=Contoso/ou=External/cn=Recipients/cn=nosmtp"),
        "\"/o=Contoso/ou=External/cn=Recipients/cn=nosmtp\" is not a valid SMTP address."
    );
    assert!(failed("sec@contoso.com").contains("security group"));
    assert!(
        t.directory_entry("sec@contoso.com").is_none(),
        "security groups are never created"
    );
    match state(&out, "precreated@contoso.com") {
        ProvisionState::Updating(m) => assert!(m.contains("dave@contoso.com"), "{m}"),
        other => panic!("a member failed: the group waits for it: {other:?}"),
    }
    let pre = t.directory_entry("precreated@contoso.com").unwrap();
    assert_eq!(
        pre.members,
        vec!["alice@contoso.com".to_string()],
        "the pre-created group is kept and filled"
    );
    match state(&out, "waits@contoso.com") {
        ProvisionState::Updating(m) => assert!(m.contains("um@contoso.com"), "{m}"),
        other => panic!("a group with a missing member waits: {other:?}"),
    }
    assert_eq!(state(&out, "alice@contoso.com"), &ProvisionState::Done);
}

#[tokio::test]
async fn a_250_member_group_is_filled_in_chunks_of_100() {
    let config = seed_config().replace(
        "[[recipients]]\nkind = \"distribution-group\"",
        "[generate]\nmailboxes = 250\ndistribution_groups = 1\ngroup_size = 250\n\n[[recipients]]\nkind = \"distribution-group\"",
    );
    let (_exchange, plan) = start(&config).await;
    let big = plan
        .recipients
        .iter()
        .find(|p| p.kind == DirectoryKind::DistributionGroup && p.members.len() == 250)
        .expect("a generated 250-member group")
        .identity
        .clone();
    let (t, target) = tenant();
    let out = provision(&plan, &target, &Default::default())
        .await
        .unwrap();
    assert_eq!(state(&out, &big), &ProvisionState::Done);
    assert_eq!(t.directory_entry(&big).unwrap().members.len(), 250);
}

#[tokio::test]
async fn batch_refusals_name_their_rule() {
    let (_exchange, plan) = start(&seed_config()).await;
    let org = |domains: &[&str], sync: bool| OrganizationInfo {
        accepted_domains: domains.iter().map(|d| d.to_string()).collect(),
        directory_sync: sync,
    };
    assert!(
        check_batch(&plan, &org(&["contoso.com"], false), Some("CutoverBatch"))
            .unwrap_err()
            .contains("\"CutoverBatch\" already exists")
    );
    assert!(
        check_batch(&plan, &org(&["contoso.com"], true), None)
            .unwrap_err()
            .contains("Directory synchronization is turned on")
    );
    assert!(
        check_batch(&plan, &org(&["fabrikam.com"], false), None)
            .unwrap_err()
            .contains("contoso.com of the organisation isn't an accepted domain")
    );
    let mut big = plan.clone();
    let mailbox = big
        .recipients
        .iter()
        .find(|p| p.kind.has_mailbox())
        .unwrap()
        .clone();
    while big.mailboxes() <= 2000 {
        let mut m = mailbox.clone();
        m.identity = format!("u{}@contoso.com", big.recipients.len());
        big.recipients.push(m);
    }
    assert_eq!(big.mailboxes(), 2001);
    assert!(
        check_batch(&big, &org(&["contoso.com"], false), None)
            .unwrap_err()
            .contains("2001 mailboxes: a cutover migration moves at most 2000")
    );
}
