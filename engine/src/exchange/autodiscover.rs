//! Autodiscover (POX) as cutover.md §2 describes it: the lookup order for an address,
//! `redirectAddr` / `redirectUrl` (at most 10 redirections, a loop detected), HTTP 401 meaning
//! "try the next URL", and the settings of the EXCH, EXPR and WEB protocol blocks.
//! **Ours:** the last step of the order, DNS SRV, is not taken (no DNS is used anywhere).

use bytes::Bytes;
use mailmig_xml::{self as xml, Element, esc};
use serde::Serialize;

use super::ExchangeError;
use super::http::{Basic, HttpClient};

pub const REQUEST_NS: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006";
pub const OUTLOOK_NS: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a";
pub const MAX_REDIRECTS: usize = 10;

/// What Autodiscover told about one address.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Discovered {
    /// The URL that answered with settings.
    pub url: String,
    /// The address the settings are for (after any redirectAddr).
    pub email_address: String,
    pub display_name: String,
    pub legacy_dn: String,
    /// EXCH: the mailbox server, its version (hex), the mailbox database, the directory server.
    pub exchange_server: String,
    pub server_dn: String,
    pub server_version: String,
    pub mdb_dn: String,
    pub ad_server: String,
    pub ews_url: String,
    /// EXPR: the Outlook Anywhere proxy and its authentication.
    pub rpc_proxy_server: String,
    pub auth_package: String,
}

/// Runs the lookup for `address` with `auth`.
pub async fn discover(
    http: &HttpClient,
    address: &str,
    auth: &Basic,
) -> Result<Discovered, ExchangeError> {
    let mut asked: Vec<String> = vec![address.to_ascii_lowercase()];
    let mut current = address.to_string();
    let mut redirects = 0;
    let mut next_url: Option<String> = None;
    loop {
        let outcome = match next_url.take() {
            Some(url) => post(http, &url, &current, auth).await.map(|a| (url, a)),
            None => lookup(http, &current, auth).await,
        };
        let (url, answer) = outcome?;
        let redirect = match answer {
            Answer::Settings(mut d) => {
                d.url = url;
                if d.email_address.is_empty() {
                    d.email_address = current.clone();
                }
                return Ok(*d);
            }
            Answer::RedirectAddr(to) => {
                if asked.iter().any(|a| a.eq_ignore_ascii_case(&to)) {
                    return Err(ExchangeError::Autodiscover(format!(
                        "Autodiscover at {url} redirected {current} to {to}, an address already asked: a redirection loop"
                    )));
                }
                asked.push(to.to_ascii_lowercase());
                current = to;
                true
            }
            Answer::RedirectUrl(to) => {
                if !to.starts_with("https://") {
                    return Err(ExchangeError::Autodiscover(format!(
                        "Autodiscover at {url} redirected to {to}, which is not an https URL"
                    )));
                }
                next_url = Some(to);
                true
            }
        };
        if redirect {
            redirects += 1;
            if redirects > MAX_REDIRECTS {
                return Err(ExchangeError::Autodiscover(format!(
                    "Autodiscover for {address} was redirected more than {MAX_REDIRECTS} times"
                )));
            }
        }
    }
}

enum Answer {
    Settings(Box<Discovered>),
    RedirectAddr(String),
    RedirectUrl(String),
}

/// The lookup order for one address; the first URL that answers as Autodiscover wins.
async fn lookup(
    http: &HttpClient,
    address: &str,
    auth: &Basic,
) -> Result<(String, Answer), ExchangeError> {
    let Some((_, domain)) = address.rsplit_once('@') else {
        return Err(ExchangeError::Invalid(format!(
            "\"{address}\" is not an email address: Autodiscover needs one"
        )));
    };
    let candidates = [
        format!("https://{domain}/autodiscover/autodiscover.xml"),
        format!("https://autodiscover.{domain}/autodiscover/autodiscover.xml"),
    ];
    let mut tried: Vec<String> = Vec::new();
    let mut worst: Option<ExchangeError> = None;
    let mut keep = |e: ExchangeError, tried: &mut Vec<String>, url: &str| {
        tried.push(format!("{url}: {e}"));
        // A certificate or credentials problem says more than "nothing there".
        let rank = |e: &ExchangeError| match e {
            ExchangeError::Certificate(_) => 3,
            ExchangeError::Unauthorized(_) => 2,
            _ => 1,
        };
        if worst.as_ref().is_none_or(|w| rank(&e) > rank(w)) {
            worst = Some(e);
        }
    };
    for url in &candidates {
        match post(http, url, address, auth).await {
            Ok(answer) => return Ok((url.clone(), answer)),
            Err(e @ (ExchangeError::Autodiscover(_) | ExchangeError::Invalid(_))) => return Err(e),
            Err(e) => keep(e, &mut tried, url),
        }
    }
    // The unauthenticated GET whose redirect is followed only to an Autodiscover https URL.
    let http_url = format!("http://autodiscover.{domain}/autodiscover/autodiscover.xml");
    match http.send("GET", &http_url, None, &[], Bytes::new()).await {
        Ok(r) if (301..=303).contains(&r.status) || r.status == 307 => {
            let location = r.header("location").unwrap_or("").to_string();
            if is_autodiscover_https(&location) {
                match post(http, &location, address, auth).await {
                    Ok(answer) => return Ok((location, answer)),
                    Err(e @ ExchangeError::Autodiscover(_)) => return Err(e),
                    Err(e) => keep(e, &mut tried, &location),
                }
            } else {
                tried.push(format!(
                    "{http_url}: redirected to {location:?}, not an https Autodiscover URL (not followed)"
                ));
            }
        }
        Ok(r) => tried.push(format!("{http_url}: HTTP {} (no redirect)", r.status)),
        Err(e) => keep(e, &mut tried, &http_url),
    }
    let detail = tried.join("; ");
    Err(match worst {
        Some(ExchangeError::Certificate(_)) => ExchangeError::Certificate(detail),
        Some(ExchangeError::Unauthorized(_)) => ExchangeError::Unauthorized(detail),
        _ => ExchangeError::Autodiscover(format!(
            "The migration service couldn't detect the endpoint for {address} using Autodiscover. Tried: {detail}"
        )),
    })
}

fn is_autodiscover_https(location: &str) -> bool {
    let Some(rest) = location.strip_prefix("https://") else {
        return false;
    };
    let path = rest
        .split_once('/')
        .map_or("", |(_, p)| p)
        .to_ascii_lowercase();
    path.starts_with("autodiscover/") && path.ends_with("autodiscover.xml")
}

fn request_body(address: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><Autodiscover xmlns=\"{REQUEST_NS}\"><Request><EMailAddress>{}</EMailAddress><AcceptableResponseSchema>{OUTLOOK_NS}</AcceptableResponseSchema></Request></Autodiscover>",
        esc(address)
    )
}

/// One POST. Err for a URL that is not an Autodiscover endpoint (any non-200) or a definite
/// Autodiscover error (`ExchangeError::Autodiscover`, which stops the lookup).
async fn post(
    http: &HttpClient,
    url: &str,
    address: &str,
    auth: &Basic,
) -> Result<Answer, ExchangeError> {
    let r = http
        .send(
            "POST",
            url,
            Some(auth),
            &[("content-type", "text/xml; charset=utf-8")],
            Bytes::from(request_body(address)),
        )
        .await?;
    match r.status {
        200 => {}
        401 => {
            return Err(ExchangeError::Unauthorized(format!(
                "{url} refused the credentials of {} (HTTP 401)",
                auth.user
            )));
        }
        s => {
            return Err(ExchangeError::Transient(format!(
                "HTTP {s}: not an Autodiscover endpoint"
            )));
        }
    }
    let doc = xml::parse(&r.body).map_err(|e| {
        ExchangeError::Transient(format!("the answer is not Autodiscover XML ({e})"))
    })?;
    parse_answer(&doc, url)
}

fn parse_answer(doc: &Element, url: &str) -> Result<Answer, ExchangeError> {
    if let Some(error) = doc.find("Error") {
        let code = error.child_text("ErrorCode").unwrap_or("?");
        let message = error.child_text("Message").unwrap_or("");
        return Err(ExchangeError::Autodiscover(format!(
            "Autodiscover at {url} answered error {code}: {message}"
        )));
    }
    let account = doc
        .find("Account")
        .ok_or_else(|| ExchangeError::Transient("no Account in the Autodiscover answer".into()))?;
    match account.child_text("Action").unwrap_or("") {
        "redirectAddr" => {
            let to = account.child_text("RedirectAddr").unwrap_or("").to_string();
            return if to.contains('@') {
                Ok(Answer::RedirectAddr(to))
            } else {
                Err(ExchangeError::Autodiscover(format!(
                    "Autodiscover at {url} redirected to \"{to}\", not an address"
                )))
            };
        }
        "redirectUrl" => {
            let to = account.child_text("RedirectUrl").unwrap_or("").to_string();
            return Ok(Answer::RedirectUrl(to));
        }
        _ => {}
    }
    let user = doc.find("User");
    let text = |e: Option<&Element>, n: &str| {
        e.and_then(|e| e.child_text(n))
            .unwrap_or_default()
            .to_string()
    };
    let mut d = Discovered {
        display_name: text(user, "DisplayName"),
        legacy_dn: text(user, "LegacyDN"),
        email_address: text(user, "AutoDiscoverSMTPAddress"),
        ..Discovered::default()
    };
    for p in account.children_named("Protocol") {
        match p.child_text("Type").unwrap_or("") {
            "EXCH" => {
                d.exchange_server = text(Some(p), "Server");
                d.server_dn = text(Some(p), "ServerDN");
                d.server_version = text(Some(p), "ServerVersion");
                d.mdb_dn = text(Some(p), "MdbDN");
                d.ad_server = text(Some(p), "AD");
                if d.ews_url.is_empty() {
                    d.ews_url = text(Some(p), "EwsUrl");
                }
            }
            "EXPR" => {
                d.rpc_proxy_server = text(Some(p), "Server");
                d.auth_package = text(Some(p), "AuthPackage");
                if d.ews_url.is_empty() {
                    d.ews_url = text(Some(p), "EwsUrl");
                }
            }
            _ => {}
        }
    }
    if d.ews_url.is_empty() {
        return Err(ExchangeError::Autodiscover(format!(
            "Autodiscover at {url} named no EWS URL (EwsUrl) for the mailbox"
        )));
    }
    Ok(Answer::Settings(Box::new(d)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_autodiscover_paths_are_followed() {
        assert!(is_autodiscover_https(
            "https://mail.contoso.com/autodiscover/autodiscover.xml"
        ));
        assert!(is_autodiscover_https(
            "https://mail.contoso.com/Autodiscover/x/Autodiscover.xml"
        ));
        assert!(!is_autodiscover_https(
            "http://mail.contoso.com/autodiscover/autodiscover.xml"
        ));
        assert!(!is_autodiscover_https("https://evil.example/owa/"));
    }

    #[test]
    fn error_answers_name_their_code() {
        let doc = xml::parse(br#"<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"><Response><Error Time="1" Id="2"><ErrorCode>500</ErrorCode><Message>The email address can't be found.</Message><DebugData/></Error></Response></Autodiscover>"#).unwrap();
        let Err(e) = parse_answer(&doc, "https://x/autodiscover/autodiscover.xml") else {
            panic!("an error answer");
        };
        assert!(
            e.to_string()
                .contains("error 500: The email address can't be found."),
            "{e}"
        );
    }
}
