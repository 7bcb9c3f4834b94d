//! Autodiscover (POX) as a client meets it: the names of the lookup order reached through a
//! test resolver, Basic authentication, settings, redirections, errors, faults, certificates.

mod common;

use common::*;
use mailmig_xml::Element;

fn request(address: &str, schema: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"><Request><EMailAddress>{address}</EMailAddress><AcceptableResponseSchema>{schema}</AcceptableResponseSchema></Request></Autodiscover>"#
    )
}

const SCHEMA: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a";

async fn ask(
    ex: &fake_exchange::RunningExchange,
    host: &str,
    address: &str,
) -> (u16, Option<Element>) {
    let r = client(ex)
        .post(format!("https://{host}/autodiscover/autodiscover.xml"))
        .basic_auth(ADMIN.0, Some(ADMIN.1))
        .header("Content-Type", "text/xml")
        .body(request(address, SCHEMA))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body = r.bytes().await.unwrap();
    (status, mailmig_xml::parse(&body).ok())
}

fn error_code(doc: &Element) -> Option<String> {
    doc.find("ErrorCode").map(|e| e.text.clone())
}

fn action(doc: &Element) -> Option<(String, Option<String>)> {
    let account = doc.find("Account")?;
    let action = account.child_text("Action")?.to_string();
    let to = account
        .child_text("RedirectAddr")
        .or(account.child_text("RedirectUrl"))
        .map(str::to_string);
    Some((action, to))
}

#[tokio::test]
async fn settings_name_the_servers_with_the_real_namespaces() {
    let ex = start("").await;
    let (status, doc) = ask(&ex, "autodiscover.contoso.com", "alice@contoso.com").await;
    assert_eq!(status, 200);
    let doc = doc.unwrap();
    assert_eq!(
        doc.ns.as_deref(),
        Some("http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006")
    );
    assert_eq!(doc.child("Response").unwrap().ns.as_deref(), Some(SCHEMA));
    assert_eq!(action(&doc), Some(("settings".into(), None)));
    let user = doc.find("User").unwrap();
    assert_eq!(user.child_text("DisplayName"), Some("Alice Anders"));
    assert!(
        user.child_text("LegacyDN")
            .unwrap()
            .starts_with("/o=Contoso/")
    );
    let protocols: Vec<&Element> = doc
        .find("Account")
        .unwrap()
        .children_named("Protocol")
        .collect();
    let kinds: Vec<&str> = protocols
        .iter()
        .map(|p| p.child_text("Type").unwrap())
        .collect();
    assert_eq!(kinds, ["EXCH", "EXPR", "WEB"]);
    assert_eq!(
        protocols[0].child_text("EwsUrl"),
        Some("https://mail.contoso.com/EWS/Exchange.asmx")
    );
    assert_eq!(protocols[1].child_text("Server"), Some("mail.contoso.com"));
    assert_eq!(protocols[1].child_text("AuthPackage"), Some("Basic"));
    assert!(
        protocols[0]
            .child_text("ServerVersion")
            .unwrap()
            .starts_with("73C1")
    );
    // A proxy address finds the same mailbox; the root-domain URL answers too.
    let (_, doc) = ask(&ex, "contoso.com", "ALICE@contoso.com").await;
    assert_eq!(action(&doc.unwrap()).unwrap().0, "settings");
}

#[tokio::test]
async fn unknown_addresses_bad_requests_and_other_schemas_are_autodiscover_errors() {
    let ex = start("").await;
    let (status, doc) = ask(&ex, "autodiscover.contoso.com", "nobody@contoso.com").await;
    assert_eq!(status, 200);
    assert_eq!(error_code(&doc.unwrap()).as_deref(), Some("500"));
    let (_, doc) = ask(&ex, "autodiscover.contoso.com", "no-at-sign").await;
    assert_eq!(error_code(&doc.unwrap()).as_deref(), Some("501"));
    let (_, doc) = ask(&ex, "autodiscover.contoso.com", "grace@fabrikam.com").await;
    assert_eq!(
        error_code(&doc.unwrap()).as_deref(),
        Some("500"),
        "a contact has no mailbox"
    );
    let c = client(&ex);
    let url = "https://autodiscover.contoso.com/autodiscover/autodiscover.xml";
    let send = |body: String| {
        c.post(url)
            .basic_auth(ADMIN.0, Some(ADMIN.1))
            .body(body)
            .send()
    };
    let other = send(request("alice@contoso.com", "http://example.com/schema"))
        .await
        .unwrap();
    let doc = mailmig_xml::parse(&other.bytes().await.unwrap()).unwrap();
    assert_eq!(error_code(&doc).as_deref(), Some("601"));
    let broken = send("<Autodiscover><oops".into()).await.unwrap();
    let doc = mailmig_xml::parse(&broken.bytes().await.unwrap()).unwrap();
    assert_eq!(error_code(&doc).as_deref(), Some("600"));
    // Without credentials: 401 with a Basic challenge.
    let anonymous = c
        .post(url)
        .body(request("alice@contoso.com", SCHEMA))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert!(anonymous.headers["www-authenticate"].starts_with("Basic"));
}

#[tokio::test]
async fn a_mail_user_redirects_to_its_target_address() {
    let ex = start("").await;
    let (_, doc) = ask(&ex, "autodiscover.contoso.com", "frank@contoso.com").await;
    assert_eq!(
        action(&doc.unwrap()),
        Some(("redirectAddr".into(), Some("frank@fabrikam.com".into())))
    );
}

#[tokio::test]
async fn scripted_faults_redirect_loop_chain_and_refuse() {
    let ex = start(
        r#"
[[faults.autodiscover]]
host = "contoso.com"
action = "unauthorized"
[[faults.autodiscover]]
address = "alice@contoso.com"
action = "redirect-loop"
[[faults.autodiscover]]
address = "bob@contoso.com"
action = "redirect-chain"
hops = 11
[[faults.autodiscover]]
address = "frank@contoso.com"
action = "redirect-url"
to = "https://mail.contoso.com/autodiscover/autodiscover.xml"
[[faults.autodiscover]]
address = "grace@fabrikam.com"
action = "error"
code = 603
"#,
    )
    .await;
    // 401 on the first URL of the lookup order only.
    let (status, _) = ask(&ex, "contoso.com", "bob@contoso.com").await;
    assert_eq!(status, 401);
    let (_, doc) = ask(&ex, "autodiscover.contoso.com", "alice@contoso.com").await;
    assert_eq!(
        action(&doc.unwrap()),
        Some(("redirectAddr".into(), Some("alice@contoso.com".into())))
    );
    // Eleven hops: a client that follows ten gives up before the settings.
    let mut address = "bob@contoso.com".to_string();
    let mut hops = 0;
    loop {
        let (_, doc) = ask(&ex, "autodiscover.contoso.com", &address).await;
        match action(&doc.unwrap()).unwrap() {
            (a, Some(to)) if a == "redirectAddr" => {
                hops += 1;
                address = to;
            }
            (a, _) => {
                assert_eq!(a, "settings");
                break;
            }
        }
        assert!(hops <= 11);
    }
    assert_eq!(hops, 11);
    let (_, doc) = ask(&ex, "autodiscover.contoso.com", "frank@contoso.com").await;
    assert_eq!(
        action(&doc.unwrap()),
        Some((
            "redirectUrl".into(),
            Some("https://mail.contoso.com/autodiscover/autodiscover.xml".into())
        ))
    );
    let (_, doc) = ask(&ex, "autodiscover.contoso.com", "grace@fabrikam.com").await;
    assert_eq!(error_code(&doc.unwrap()).as_deref(), Some("603"));
}

#[tokio::test]
async fn the_plain_http_get_answers_a_redirect_to_https() {
    let ex = start("").await;
    let r = client(&ex)
        .get("http://autodiscover.contoso.com/autodiscover/autodiscover.xml")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(
        r.headers["location"],
        "https://mail.contoso.com/autodiscover/autodiscover.xml"
    );
}

#[tokio::test]
async fn a_self_signed_certificate_chains_to_no_ca() {
    let trusted = start("").await;
    let mut config = config("");
    config.organisation.certificate = fake_exchange::CertificateKind::SelfSigned;
    let ex = fake_exchange::FakeExchange::start(config).await.unwrap();
    // Pinned, the certificate itself works (what accepting an untrusted certificate means) ...
    assert_eq!(
        ask(&ex, "mail.contoso.com", "alice@contoso.com").await.0,
        200
    );
    // ... but no CA vouches for it: a client trusting a CA refuses the handshake.
    let c = Http::new(&ex, trusted.ca_pem());
    let err = c
        .post("https://mail.contoso.com/autodiscover/autodiscover.xml")
        .basic_auth(ADMIN.0, Some(ADMIN.1))
        .body(request("alice@contoso.com", SCHEMA))
        .send()
        .await
        .unwrap_err();
    assert!(err.contains("UnknownIssuer"), "{err}");
    // In trusted mode, the leaf chains to the CA the server hands out.
    assert_eq!(
        ask(&trusted, "mail.contoso.com", "alice@contoso.com")
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn connect_to_lines_cover_every_name() {
    let ex = start("").await;
    let lines = ex.connect_to();
    let https = ex.https_addr().port();
    for expected in [
        format!("contoso.com:443:127.0.0.1:{https}"),
        format!("autodiscover.contoso.com:443:127.0.0.1:{https}"),
        format!(
            "autodiscover.contoso.com:80:127.0.0.1:{}",
            ex.http_addr().port()
        ),
        format!("mail.contoso.com:443:127.0.0.1:{https}"),
        format!(
            "dc01.contoso.com:389:127.0.0.1:{}",
            ex.ldap_addr().unwrap().port()
        ),
    ] {
        assert!(lines.contains(&expected), "{expected} not in {lines:?}");
    }
}

#[tokio::test]
async fn a_url_that_is_no_autodiscover_endpoint_answers_404() {
    let ex =
        start("[[faults.autodiscover]]\nhost = \"contoso.com\"\naction = \"not-found\"\n").await;
    let (status, _) = ask(&ex, "contoso.com", "alice@contoso.com").await;
    assert_eq!(status, 404);
    // The next URL of the lookup order still answers.
    let (status, doc) = ask(&ex, "autodiscover.contoso.com", "alice@contoso.com").await;
    assert_eq!(status, 200);
    assert_eq!(action(&doc.unwrap()).unwrap().0, "settings");
}
