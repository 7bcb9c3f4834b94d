//! What the integration tests share: an organisation of their own, a client that trusts its CA
//! and reaches its names through a test resolver (no DNS), SOAP envelopes and a way to read them.

#![allow(dead_code)]

use std::net::SocketAddr;

use fake_exchange::xml::{self, Element};
use fake_exchange::{Config, FakeExchange, RunningExchange};

pub const ORG: &str = r#"
[organisation]
name = "Contoso"
primary_domain = "contoso.com"
seed = 7

[[servers]]
name = "mail.contoso.com"
roles = ["ews"]
[[servers]]
name = "dc01.contoso.com"
roles = ["ldap"]

[[databases]]
name = "DB01"
[[databases]]
name = "DB02"

[[admins]]
address = "administrator@contoso.com"
password = "P@ssw0rd"
domain_admins = true
impersonation = true
[[admins]]
address = "helpdesk@contoso.com"
password = "Help1234!"
full_access = ["alice@contoso.com"]
[[admins]]
address = "dbadmin@contoso.com"
password = "Db1234!"
receive_as = ["DB02"]

[[recipients]]
kind = "user-mailbox"
address = "alice@contoso.com"
display_name = "Alice Anders"
content = { inbox = 6, sent_items = 2, user_folders = ["Projects", "Projects/2026"], per_user_folder = 1, calendar = 2, contacts = 2 }
[[recipients]]
kind = "user-mailbox"
address = "bob@contoso.com"
display_name = "Bob Brown"
database = "DB02"
[[recipients]]
kind = "mail-user"
address = "frank@contoso.com"
target_address = "SMTP:frank@fabrikam.com"
[[recipients]]
kind = "mail-contact"
address = "grace@fabrikam.com"
"#;

pub fn config(extra: &str) -> Config {
    Config::from_toml(&format!("{ORG}\n{extra}")).expect("the test organisation")
}

pub async fn start(extra: &str) -> RunningExchange {
    FakeExchange::start(config(extra)).await.expect("starts")
}

/// A client that trusts the organisation's CA and resolves its names to the listener.
pub fn client(exchange: &RunningExchange) -> reqwest::Client {
    let https: SocketAddr = exchange.https_addr();
    let mut builder = reqwest::Client::builder()
        .tls_backend_preconfigured(tls_config(exchange.ca_pem()))
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(20));
    for name in [
        "contoso.com",
        "autodiscover.contoso.com",
        "mail.contoso.com",
    ] {
        builder = builder.resolve(name, https);
    }
    builder.build().unwrap()
}

/// rustls (ring) trusting only `ca_pem`.
pub fn tls_config(ca_pem: &str) -> rustls::ClientConfig {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

pub fn envelope(header: &str, body: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types" xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"><soap:Header><t:RequestServerVersion Version="Exchange2013_SP1"/>{header}</soap:Header><soap:Body>{body}</soap:Body></soap:Envelope>"#
    )
}

pub fn impersonating(address: &str) -> String {
    format!(
        "<t:ExchangeImpersonation><t:ConnectingSID><t:PrimarySmtpAddress>{address}</t:PrimarySmtpAddress></t:ConnectingSID></t:ExchangeImpersonation>"
    )
}

/// POSTs a SOAP request as `user`; (HTTP status, parsed envelope).
pub async fn ews(
    exchange: &RunningExchange,
    user: (&str, &str),
    header: &str,
    body: &str,
) -> (u16, Element) {
    let response = client(exchange)
        .post("https://mail.contoso.com/EWS/Exchange.asmx")
        .basic_auth(user.0, Some(user.1))
        .header("Content-Type", "text/xml; charset=utf-8")
        .body(envelope(header, body))
        .send()
        .await
        .expect("EWS answers");
    let status = response.status().as_u16();
    let text = response.bytes().await.expect("a whole body");
    let doc =
        xml::parse(&text).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&text)));
    (status, doc)
}

pub const ADMIN: (&str, &str) = ("administrator@contoso.com", "P@ssw0rd");
pub const HELPDESK: (&str, &str) = ("helpdesk@contoso.com", "Help1234!");
pub const DBADMIN: (&str, &str) = ("dbadmin@contoso.com", "Db1234!");

/// The ResponseCode of every response message, in order.
pub fn codes(doc: &Element) -> Vec<String> {
    let mut out = Vec::new();
    collect(doc, &mut out);
    out
}

fn collect(e: &Element, out: &mut Vec<String>) {
    if e.name.ends_with("ResponseMessage") {
        out.push(e.child_text("ResponseCode").unwrap_or("").to_string());
        return;
    }
    for c in &e.children {
        collect(c, out);
    }
}

/// Every element named `name` below `e`.
pub fn all<'a>(e: &'a Element, name: &str) -> Vec<&'a Element> {
    let mut out = Vec::new();
    fn walk<'a>(e: &'a Element, name: &str, out: &mut Vec<&'a Element>) {
        for c in &e.children {
            if c.name == name {
                out.push(c);
            }
            walk(c, name, out);
        }
    }
    walk(e, name, &mut out);
    out
}

pub fn fault_code(doc: &Element) -> Option<String> {
    doc.find("Fault")
        .and_then(|f| f.find("ResponseCode"))
        .map(|c| c.text.trim().to_string())
}

pub fn distinguished(id: &str, mailbox: Option<&str>) -> String {
    match mailbox {
        Some(m) => format!(
            "<t:DistinguishedFolderId Id=\"{id}\"><t:Mailbox><t:EmailAddress>{m}</t:EmailAddress></t:Mailbox></t:DistinguishedFolderId>"
        ),
        None => format!("<t:DistinguishedFolderId Id=\"{id}\"/>"),
    }
}

pub fn get_folder(ids: &str) -> String {
    format!(
        "<m:GetFolder><m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape><m:FolderIds>{ids}</m:FolderIds></m:GetFolder>"
    )
}

pub fn sync_items(folder: &str, state: Option<&str>, max: usize) -> String {
    let state = state
        .map(|s| format!("<m:SyncState>{s}</m:SyncState>"))
        .unwrap_or_default();
    format!(
        "<m:SyncFolderItems><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:SyncFolderId>{folder}</m:SyncFolderId>{state}<m:MaxChangesReturned>{max}</m:MaxChangesReturned></m:SyncFolderItems>"
    )
}

pub fn get_item(ids: &[String], mime: bool) -> String {
    let ids: String = ids
        .iter()
        .map(|i| format!("<t:ItemId Id=\"{i}\"/>"))
        .collect();
    format!(
        "<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:IncludeMimeContent>{mime}</t:IncludeMimeContent></m:ItemShape><m:ItemIds>{ids}</m:ItemIds></m:GetItem>"
    )
}
