//! The directory over LDAP, spoken with ldap3_proto's codec as a client: the rootDSE, binds,
//! scopes, filters, attribute selection, paged results with AD's page limit, LDAPS, faults.

mod common;

use futures::{SinkExt, StreamExt};
use ldap3_proto::LdapCodec;
use ldap3_proto::control::LdapControl;
use ldap3_proto::proto::{
    LdapBindCred, LdapBindRequest, LdapDerefAliases, LdapMsg, LdapOp, LdapResultCode,
    LdapSearchRequest, LdapSearchScope,
};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

struct Client<S> {
    framed: Framed<S, LdapCodec>,
    next: i32,
}

/// (entries as (dn, attributes), result code, the paged-results cookie when any).
type Answer = (
    Vec<(String, Vec<(String, Vec<String>)>)>,
    LdapResultCode,
    Option<Vec<u8>>,
);

impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> Client<S> {
    fn new(stream: S) -> Self {
        Self {
            framed: Framed::new(stream, LdapCodec::default()),
            next: 1,
        }
    }

    async fn send(&mut self, op: LdapOp, ctrl: Vec<LdapControl>) -> i32 {
        let msgid = self.next;
        self.next += 1;
        self.framed.send(LdapMsg { msgid, op, ctrl }).await.unwrap();
        msgid
    }

    async fn bind(&mut self, dn: &str, password: &str) -> LdapResultCode {
        self.send(
            LdapOp::BindRequest(LdapBindRequest {
                version: 3,
                dn: dn.into(),
                cred: LdapBindCred::Simple(password.into()),
            }),
            vec![],
        )
        .await;
        match self.framed.next().await.unwrap().unwrap().op {
            LdapOp::BindResponse(r) => r.res.code,
            other => panic!("{other:?}"),
        }
    }

    async fn search(
        &mut self,
        base: &str,
        scope: LdapSearchScope,
        filter: &str,
        attrs: &[&str],
        page: Option<(i64, Vec<u8>)>,
    ) -> Answer {
        let ctrl = page
            .map(|(size, cookie)| vec![LdapControl::SimplePagedResults { size, cookie }])
            .unwrap_or_default();
        self.send(
            LdapOp::SearchRequest(LdapSearchRequest {
                base: base.into(),
                scope,
                aliases: LdapDerefAliases::Never,
                sizelimit: 0,
                timelimit: 0,
                typesonly: false,
                filter: ldap3_proto::parse_ldap_filter_str(filter).unwrap(),
                attrs: attrs.iter().map(|a| a.to_string()).collect(),
            }),
            ctrl,
        )
        .await;
        let mut entries = Vec::new();
        loop {
            let msg = self.framed.next().await.unwrap().unwrap();
            match msg.op {
                LdapOp::SearchResultEntry(e) => entries.push((
                    e.dn,
                    e.attributes
                        .into_iter()
                        .map(|a| {
                            (
                                a.atype,
                                a.vals
                                    .into_iter()
                                    .map(|v| String::from_utf8(v).unwrap())
                                    .collect(),
                            )
                        })
                        .collect(),
                )),
                LdapOp::SearchResultDone(res) => {
                    let cookie = msg.ctrl.into_iter().find_map(|c| match c {
                        LdapControl::SimplePagedResults { cookie, .. } => Some(cookie),
                        _ => None,
                    });
                    return (entries, res.code, cookie);
                }
                other => panic!("{other:?}"),
            }
        }
    }
}

async fn connect(ex: &fake_exchange::RunningExchange) -> Client<TcpStream> {
    Client::new(TcpStream::connect(ex.ldap_addr().unwrap()).await.unwrap())
}

const BASE: &str = "DC=contoso,DC=com";

#[tokio::test]
async fn the_root_dse_is_anonymous_and_names_the_paged_results_control() {
    let ex = common::start("").await;
    let mut c = connect(&ex).await;
    let (entries, code, _) = c
        .search("", LdapSearchScope::Base, "(objectClass=*)", &[], None)
        .await;
    assert_eq!(code, LdapResultCode::Success);
    let attrs = &entries[0].1;
    let get = |n: &str| attrs.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    assert_eq!(get("defaultNamingContext").unwrap(), [BASE]);
    assert!(
        get("supportedControl")
            .unwrap()
            .contains(&"1.2.840.113556.1.4.319".to_string())
    );
    // Anything else needs a bind first, as AD says.
    let (_, code, _) = c
        .search(BASE, LdapSearchScope::Subtree, "(mail=*)", &[], None)
        .await;
    assert_eq!(code, LdapResultCode::OperationsError);
}

#[tokio::test]
async fn binds_take_a_dn_a_upn_or_netbios_and_check_the_password() {
    let ex = common::start("").await;
    let mut c = connect(&ex).await;
    assert_eq!(
        c.bind("CN=Administrator,CN=Users,DC=contoso,DC=com", "P@ssw0rd")
            .await,
        LdapResultCode::Success
    );
    assert_eq!(
        c.bind("administrator@contoso.com", "P@ssw0rd").await,
        LdapResultCode::Success
    );
    assert_eq!(
        c.bind("CONTOSO\\administrator", "P@ssw0rd").await,
        LdapResultCode::Success
    );
    assert_eq!(
        c.bind("administrator@contoso.com", "wrong").await,
        LdapResultCode::InvalidCredentials
    );
    // A failed bind leaves the connection anonymous.
    let (_, code, _) = c
        .search(BASE, LdapSearchScope::Subtree, "(mail=*)", &[], None)
        .await;
    assert_eq!(code, LdapResultCode::OperationsError);
}

#[tokio::test]
async fn recipients_carry_active_directory_attributes() {
    let ex = common::start(
        r#"
[[recipients]]
kind = "distribution-group"
address = "team@contoso.com"
members = ["alice@contoso.com", "bob@contoso.com"]
managed_by = ["alice@contoso.com"]
[[recipients]]
kind = "user-mailbox"
address = "hidden@contoso.com"
hidden = true
manager = "alice@contoso.com"
delegates = ["bob@contoso.com"]
um_enabled = true
proxy_addresses = ["smtp:h@contoso.com", "EUM:1234;phone-context=dialplan.contoso.com", "X500:/o=Old/cn=hidden"]
[[recipients]]
kind = "room-mailbox"
address = "room1@contoso.com"
[[recipients]]
kind = "user-mailbox"
legacy_dn = "/o=Contoso/ou=First Administrative Group/cn=Recipients/cn=noaddress"
alias = "noaddress"
"#,
    )
    .await;
    let mut c = connect(&ex).await;
    c.bind("administrator@contoso.com", "P@ssw0rd").await;
    let attr = |e: &(String, Vec<(String, Vec<String>)>), n: &str| {
        e.1.iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let (hits, _, _) = c
        .search(
            BASE,
            LdapSearchScope::Subtree,
            "(mail=hidden@contoso.com)",
            &[],
            None,
        )
        .await;
    let hidden = &hits[0];
    assert_eq!(attr(hidden, "msExchHideFromAddressLists"), ["TRUE"]);
    assert_eq!(attr(hidden, "msExchRecipientTypeDetails"), ["1"]);
    assert_eq!(
        attr(hidden, "manager"),
        ["CN=Alice Anders,CN=Users,DC=contoso,DC=com"]
    );
    assert_eq!(
        attr(hidden, "publicDelegates"),
        ["CN=Bob Brown,CN=Users,DC=contoso,DC=com"]
    );
    assert_eq!(attr(hidden, "msExchUMEnabledFlags"), ["831"]);
    assert_eq!(attr(hidden, "proxyAddresses")[0], "SMTP:hidden@contoso.com");
    assert!(
        attr(hidden, "proxyAddresses")
            .iter()
            .any(|p| p.starts_with("EUM:"))
    );
    assert!(attr(hidden, "homeMDB")[0].starts_with("CN=DB01,CN=Databases,"));
    let (hits, _, _) = c
        .search(
            BASE,
            LdapSearchScope::Subtree,
            "(mail=team@contoso.com)",
            &["member", "managedBy", "groupType"],
            None,
        )
        .await;
    assert_eq!(hits[0].1.len(), 3, "only the attributes asked for");
    assert_eq!(attr(&hits[0], "member").len(), 2);
    assert_eq!(attr(&hits[0], "groupType"), ["8"]);
    // A member names its groups (memberOf, as AD computes it from the groups' member).
    let (hits, _, _) = c
        .search(
            BASE,
            LdapSearchScope::Subtree,
            "(mail=bob@contoso.com)",
            &["memberOf"],
            None,
        )
        .await;
    let team_dn = "CN=team,CN=Users,DC=contoso,DC=com";
    assert!(
        attr(&hits[0], "memberOf")
            .iter()
            .any(|g| g.eq_ignore_ascii_case(team_dn)),
        "{:?}",
        attr(&hits[0], "memberOf")
    );
    let (hits, _, _) = c
        .search(
            BASE,
            LdapSearchScope::Subtree,
            "(msExchRecipientTypeDetails=16)",
            &["mail"],
            None,
        )
        .await;
    assert_eq!(hits.len(), 1);
    // A GAL entry without an SMTP address: only its legacyExchangeDN.
    let (hits, _, _) = c
        .search(
            BASE,
            LdapSearchScope::Subtree,
            "(&(legacyExchangeDN=*)(!(mail=*)))",
            &[],
            None,
        )
        .await;
    assert_eq!(hits.len(), 1);
    assert!(attr(&hits[0], "proxyAddresses").is_empty());
    // Contacts and mail users by type, mailboxes without contacts.
    let (hits, _, _) = c
        .search(
            BASE,
            LdapSearchScope::Subtree,
            "(&(objectCategory=person)(objectClass=contact))",
            &["targetAddress"],
            None,
        )
        .await;
    assert_eq!(hits.len(), 1);
    assert_eq!(attr(&hits[0], "targetAddress"), ["SMTP:grace@fabrikam.com"]);
}

#[tokio::test]
async fn scopes_and_missing_bases() {
    let ex = common::start("").await;
    let mut c = connect(&ex).await;
    c.bind("administrator@contoso.com", "P@ssw0rd").await;
    let (hits, _, _) = c
        .search(
            BASE,
            LdapSearchScope::Base,
            "(objectClass=*)",
            &["1.1"],
            None,
        )
        .await;
    assert_eq!(hits.len(), 1);
    assert!(hits[0].1.is_empty(), "1.1 asks for no attributes");
    let (one, _, _) = c
        .search(
            BASE,
            LdapSearchScope::OneLevel,
            "(objectClass=*)",
            &["1.1"],
            None,
        )
        .await;
    assert_eq!(
        one.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(),
        ["CN=Users,DC=contoso,DC=com"]
    );
    let (users, _, _) = c
        .search(
            "CN=Users,DC=contoso,DC=com",
            LdapSearchScope::OneLevel,
            "(objectClass=*)",
            &["1.1"],
            None,
        )
        .await;
    assert!(users.len() >= 7, "{}", users.len());
    let (_, code, _) = c
        .search(
            "OU=Nowhere,DC=contoso,DC=com",
            LdapSearchScope::Subtree,
            "(objectClass=*)",
            &[],
            None,
        )
        .await;
    assert_eq!(code, LdapResultCode::NoSuchObject);
}

#[tokio::test]
async fn paged_results_return_everything_in_pages_of_at_most_a_thousand() {
    let ex = common::start("[generate]\nmailboxes = 2500\n").await;
    let mut c = connect(&ex).await;
    c.bind("administrator@contoso.com", "P@ssw0rd").await;
    let filter = "(&(objectClass=user)(mail=user*))";
    let mut cookie = Vec::new();
    let mut pages = Vec::new();
    loop {
        // Asked for 5,000 a page: AD's limit of 1,000 wins.
        let (hits, code, next) = c
            .search(
                BASE,
                LdapSearchScope::Subtree,
                filter,
                &["mail"],
                Some((5000, cookie)),
            )
            .await;
        assert_eq!(code, LdapResultCode::Success);
        pages.push(hits.len());
        cookie = next.expect("a paged-results control in every answer");
        if cookie.is_empty() {
            break;
        }
    }
    assert_eq!(pages, [1000, 1000, 500]);
    // Without the control: a thousand, then sizeLimitExceeded.
    let (hits, code, _) = c
        .search(BASE, LdapSearchScope::Subtree, filter, &["mail"], None)
        .await;
    assert_eq!(
        (hits.len(), code),
        (1000, LdapResultCode::SizeLimitExceeded)
    );
    // A damaged cookie is refused, not a crash.
    let (_, code, _) = c
        .search(
            BASE,
            LdapSearchScope::Subtree,
            filter,
            &["mail"],
            Some((100, b"garbage".to_vec())),
        )
        .await;
    assert_eq!(code, LdapResultCode::UnwillingToPerform);
}

#[tokio::test]
async fn ldaps_verifies_against_the_organisations_ca() {
    let ex = common::start("").await;
    let tls = std::sync::Arc::new(common::tls_config(ex.ca_pem()));
    let connector = tokio_rustls::TlsConnector::from(tls);
    let tcp = TcpStream::connect(ex.ldaps_addr().unwrap()).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("dc01.contoso.com").unwrap();
    let stream = connector.connect(name, tcp).await.unwrap();
    let mut c = Client::new(stream);
    assert_eq!(
        c.bind("administrator@contoso.com", "P@ssw0rd").await,
        LdapResultCode::Success
    );
    let (hits, _, _) = c
        .search(
            BASE,
            LdapSearchScope::Subtree,
            "(mail=alice@contoso.com)",
            &["mail"],
            None,
        )
        .await;
    assert_eq!(hits.len(), 1);
}

#[tokio::test]
async fn directory_faults_unreachable_and_busy() {
    let ex = common::start("[faults.ldap]\nunreachable = true\n").await;
    assert!(ex.ldap_addr().is_none());
    let port = ex
        .ldap_url()
        .rsplit(':')
        .next()
        .unwrap()
        .parse::<u16>()
        .unwrap();
    assert!(
        TcpStream::connect(("127.0.0.1", port)).await.is_err(),
        "nothing listens"
    );
    let ex = common::start("[faults.ldap]\nbusy = true\n").await;
    let mut c = connect(&ex).await;
    c.bind("administrator@contoso.com", "P@ssw0rd").await;
    let (_, code, _) = c
        .search(BASE, LdapSearchScope::Subtree, "(mail=*)", &[], None)
        .await;
    assert_eq!(code, LdapResultCode::Busy);
}

#[tokio::test]
async fn an_empty_gal_has_no_recipients() {
    let text = "[organisation]\nprimary_domain = \"contoso.com\"\n[[admins]]\naddress = \"administrator@contoso.com\"\npassword = \"P@ssw0rd\"\ndomain_admins = true\n";
    let ex = fake_exchange::FakeExchange::start(fake_exchange::Config::from_toml(text).unwrap())
        .await
        .unwrap();
    let mut c = connect(&ex).await;
    c.bind("administrator@contoso.com", "P@ssw0rd").await;
    let (hits, code, _) = c
        .search(BASE, LdapSearchScope::Subtree, "(mail=*)", &[], None)
        .await;
    assert_eq!((hits.len(), code), (0, LdapResultCode::Success));
}
