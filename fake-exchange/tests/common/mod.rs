//! What the integration tests share: an organisation of their own, a client that trusts its CA
//! and reaches its names through a test resolver (no DNS), SOAP envelopes and a way to read them.

#![allow(dead_code)]

use std::net::SocketAddr;

use fake_exchange::{Config, FakeExchange, RunningExchange};
use mailmig_xml::{self as xml, Element};

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

/// A client that trusts the organisation's CA and reaches its names on the listeners (a test
/// resolver: `https://` names go to the HTTPS port, `http://` names to the plain one).
pub fn client(exchange: &RunningExchange) -> Http {
    Http::new(exchange, exchange.ca_pem())
}

/// A small HTTP/1.1 client (hyper's client side over tokio-rustls), shaped like reqwest's.
#[derive(Clone)]
pub struct Http {
    https: SocketAddr,
    http: SocketAddr,
    tls: std::sync::Arc<rustls::ClientConfig>,
}

impl Http {
    pub fn new(exchange: &RunningExchange, ca_pem: &str) -> Self {
        Self {
            https: exchange.https_addr(),
            http: exchange.http_addr(),
            tls: std::sync::Arc::new(tls_config(ca_pem)),
        }
    }

    pub fn post(&self, url: impl Into<String>) -> Req {
        self.request("POST", url)
    }

    pub fn get(&self, url: impl Into<String>) -> Req {
        self.request("GET", url)
    }

    fn request(&self, method: &str, url: impl Into<String>) -> Req {
        Req {
            http: self.clone(),
            method: method.to_string(),
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }
}

pub struct Req {
    http: Http,
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

#[derive(Debug)]
pub struct Resp {
    status: u16,
    pub headers: std::collections::HashMap<String, String>,
    body: Result<bytes::Bytes, String>,
}

impl Resp {
    pub fn status(&self) -> u16 {
        self.status
    }

    pub async fn bytes(self) -> Result<bytes::Bytes, String> {
        self.body
    }

    pub async fn text(self) -> Result<String, String> {
        self.body.map(|b| String::from_utf8_lossy(&b).into_owned())
    }
}

impl Req {
    pub fn basic_auth(mut self, user: &str, password: Option<&str>) -> Self {
        use base64::Engine as _;
        let token = base64::engine::general_purpose::STANDARD
            .encode(format!("{user}:{}", password.unwrap_or("")));
        self.headers
            .push(("Authorization".into(), format!("Basic {token}")));
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    pub async fn send(self) -> Result<Resp, String> {
        let (scheme, rest) = self.url.split_once("://").ok_or("no scheme")?;
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let host = authority.split(':').next().unwrap_or(authority).to_string();
        let path = if path.is_empty() { "/" } else { path };
        let tcp = |addr| async move {
            tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|e| e.to_string())
        };
        let request = {
            let mut b = hyper::Request::builder()
                .method(self.method.as_str())
                .uri(path)
                .header("Host", &host);
            for (k, v) in &self.headers {
                b = b.header(k.as_str(), v.as_str());
            }
            b.body(http_body_util::Full::new(bytes::Bytes::from(self.body)))
                .map_err(|e| e.to_string())?
        };
        let timeout = std::time::Duration::from_secs(20);
        let exchange = async {
            if scheme == "https" {
                let name = rustls_pki_types::ServerName::try_from(host.clone())
                    .map_err(|e| e.to_string())?;
                let stream = tokio_rustls::TlsConnector::from(self.http.tls.clone())
                    .connect(name, tcp(self.http.https).await?)
                    .await
                    .map_err(|e| format!("TLS: {e:?}"))?;
                round_trip(stream, request).await
            } else {
                round_trip(tcp(self.http.http).await?, request).await
            }
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| "timed out".to_string())?
    }
}

async fn round_trip<S>(
    io: S,
    request: hyper::Request<http_body_util::Full<bytes::Bytes>>,
) -> Result<Resp, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use http_body_util::BodyExt;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = response
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| e.to_string());
    Ok(Resp {
        status,
        headers,
        body,
    })
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
    let status = response.status();
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
