//! Autodiscover (POX, [MS-OXDISCO]): `POST /autodiscover/autodiscover.xml` with Basic
//! authentication answers an address's settings (EXCH, EXPR and WEB protocol blocks), a
//! `redirectAddr` or `redirectUrl`, or an `<Error>` with Exchange's codes; the plain-HTTP GET
//! answers the 302 redirect of the lookup order's third step.

use chrono::Utc;

use crate::faults::{AutodiscoverAction, AutodiscoverFault};
use crate::org::{OrgState, Principal};
use crate::server::{Reply, Request};
use mailmig_xml::{self as xml, esc};

pub const REQUEST_NS: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006";
pub const RESPONSE_NS: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006";
pub const OUTLOOK_NS: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a";

/// The unauthenticated GET on the plain-HTTP listener: a 302 to the HTTPS Autodiscover URL.
pub fn http_redirect(state: &OrgState) -> Reply {
    let location = format!(
        "https://{}/autodiscover/autodiscover.xml",
        state.ews_server()
    );
    Reply::new(
        302,
        "text/html",
        b"<html><body>Moved</body></html>".to_vec(),
    )
    .header("Location", &location)
}

/// `/autodiscover/autodiscover.xml` over HTTPS.
pub fn handle(
    state: &OrgState,
    faults: &[AutodiscoverFault],
    request: &Request,
    principal: Option<&Principal>,
) -> Reply {
    let host = request.host.to_ascii_lowercase();
    // Faults keyed on the host alone act before authentication (a URL that is not an
    // Autodiscover endpoint, or one that refuses every credential).
    let body = xml::parse(&request.body).ok();
    let asked = body
        .as_ref()
        .and_then(|b| b.find("EMailAddress"))
        .map(|e| e.text.trim().to_string());
    let fault = faults.iter().find(|f| {
        f.host
            .as_deref()
            .is_none_or(|h| h.eq_ignore_ascii_case(&host))
            && f.address.as_deref().is_none_or(|a| {
                asked
                    .as_deref()
                    .is_some_and(|asked| matches_chain(asked, a))
            })
    });
    match fault.map(|f| f.action) {
        Some(AutodiscoverAction::NotFound) => {
            return Reply::new(404, "text/html", b"<html>404 Not Found</html>".to_vec());
        }
        Some(AutodiscoverAction::Unauthorized) => return unauthorized(state),
        _ => {}
    }
    if principal.is_none() {
        return unauthorized(state);
    }
    if request.method != "POST" {
        return error_reply(600, "Invalid Request", RESPONSE_NS);
    }
    let Some(body) = body else {
        return error_reply(600, "Invalid Request", RESPONSE_NS);
    };
    let schema = body
        .find("AcceptableResponseSchema")
        .map(|e| e.text.trim().to_string());
    if body.name != "Autodiscover" || body.find("Request").is_none() {
        return error_reply(600, "Invalid Request", RESPONSE_NS);
    }
    if schema.as_deref() != Some(OUTLOOK_NS) {
        return error_reply(601, "Provider is not available.", RESPONSE_NS);
    }
    let Some(asked) = asked else {
        return error_reply(600, "Invalid Request", RESPONSE_NS);
    };
    if let Some(f) = fault {
        match f.action {
            AutodiscoverAction::Error => {
                let code = f.code.unwrap_or(603);
                return error_reply(code, message_of(code), OUTLOOK_NS);
            }
            AutodiscoverAction::RedirectAddr => {
                return redirect(
                    "redirectAddr",
                    "RedirectAddr",
                    f.to.as_deref().unwrap_or(""),
                );
            }
            AutodiscoverAction::RedirectUrl => {
                return redirect("redirectUrl", "RedirectUrl", f.to.as_deref().unwrap_or(""));
            }
            AutodiscoverAction::RedirectLoop => {
                return redirect("redirectAddr", "RedirectAddr", &asked);
            }
            AutodiscoverAction::RedirectChain => {
                let hops = f.hops.unwrap_or(11);
                let (hop, original) = split_hop(&asked);
                if hop < hops {
                    let (local, domain) = original.split_once('@').unwrap_or((&original, ""));
                    let next = format!("hop{}.{local}@{domain}", hop + 1);
                    return redirect("redirectAddr", "RedirectAddr", &next);
                }
                return settings_or_error(state, &original);
            }
            AutodiscoverAction::NotFound | AutodiscoverAction::Unauthorized => {}
        }
    }
    settings_or_error(state, &asked)
}

/// Whether `asked` is `address` or one of its `hopN.` aliases of a redirect chain.
fn matches_chain(asked: &str, address: &str) -> bool {
    split_hop(asked).1.eq_ignore_ascii_case(address)
}

/// `hop3.alice@contoso.com` -> (3, `alice@contoso.com`); no prefix -> (0, the address).
fn split_hop(address: &str) -> (u32, String) {
    if let Some(rest) = address.strip_prefix("hop")
        && let Some((n, original)) = rest.split_once('.')
        && let Ok(n) = n.parse::<u32>()
    {
        return (n, original.to_string());
    }
    (0, address.to_string())
}

fn unauthorized(state: &OrgState) -> Reply {
    Reply::new(401, "text/html", b"401 - Unauthorized".to_vec()).header(
        "WWW-Authenticate",
        &format!("Basic realm=\"{}\"", state.ews_server()),
    )
}

fn message_of(code: u32) -> &'static str {
    match code {
        500 => "The email address can't be found.",
        501 => "Bad Address",
        600 => "Invalid Request",
        601 => "Provider is not available.",
        602 => "The e-mail address cannot be found.",
        _ => "An internal server error occurred. The operation failed.",
    }
}

fn settings_or_error(state: &OrgState, asked: &str) -> Reply {
    if !asked.contains('@') {
        return error_reply(501, message_of(501), OUTLOOK_NS);
    }
    // An admin account has a mailbox of its own on a real server (the walkthrough asks
    // Autodiscover for administrator@...): its settings are the organisation's.
    if let Some(admin) = state
        .admins
        .iter()
        .find(|a| a.address.eq_ignore_ascii_case(asked))
    {
        let alias = admin.address.split('@').next().unwrap_or("admin");
        let legacy = format!(
            "/o={}/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn={alias}",
            state.name
        );
        let db = state.databases.first().map(|d| d.name.clone());
        return settings(state, alias, &legacy, &admin.address, db);
    }
    let Some(r) = state.recipient(asked) else {
        return error_reply(500, message_of(500), OUTLOOK_NS);
    };
    if !r.kind.is_mailbox() {
        // A mail user's mailbox lives elsewhere: send the client there.
        let target = r
            .target_address
            .as_deref()
            .map(|t| t.trim_start_matches("SMTP:").trim_start_matches("smtp:"));
        if r.kind == crate::config::RecipientKind::MailUser
            && let Some(target) = target.filter(|t| !t.eq_ignore_ascii_case(asked))
        {
            return redirect("redirectAddr", "RedirectAddr", target);
        }
        return error_reply(500, message_of(500), OUTLOOK_NS);
    }
    settings(
        state,
        &r.display_name,
        &r.legacy_dn,
        r.address.as_deref().unwrap_or(""),
        r.database.clone(),
    )
}

/// The settings answer for one mailbox.
fn settings(
    state: &OrgState,
    display_name: &str,
    legacy_dn: &str,
    smtp: &str,
    database: Option<String>,
) -> Reply {
    let server = state.ews_server();
    let ews = format!("https://{server}/EWS/Exchange.asmx");
    // The domain controller the mailbox uses: where a client reads the directory.
    let ad = state.ldap_server();
    let db = database.unwrap_or_default();
    let server_dn = format!(
        "/o={}/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Configuration/cn=Servers/cn={}",
        state.name,
        server
            .split('.')
            .next()
            .unwrap_or(server)
            .to_ascii_uppercase()
    );
    let body = format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="{RESPONSE_NS}">
  <Response xmlns="{OUTLOOK_NS}">
    <User>
      <DisplayName>{display}</DisplayName>
      <LegacyDN>{legacy}</LegacyDN>
      <AutoDiscoverSMTPAddress>{smtp}</AutoDiscoverSMTPAddress>
      <DeploymentId>{deployment}</DeploymentId>
    </User>
    <Account>
      <AccountType>email</AccountType>
      <Action>settings</Action>
      <MicrosoftOnline>False</MicrosoftOnline>
      <Protocol>
        <Type>EXCH</Type>
        <Server>{server}</Server>
        <ServerDN>{server_dn}</ServerDN>
        <ServerVersion>{version}</ServerVersion>
        <MdbDN>{server_dn}/cn=Microsoft Private MDB/cn={db}</MdbDN>
        <AD>{ad}</AD>
        <AuthPackage>Basic</AuthPackage>
        <ASUrl>{ews}</ASUrl>
        <EwsUrl>{ews}</EwsUrl>
        <OOFUrl>{ews}</OOFUrl>
        <OABUrl>https://{server}/OAB/</OABUrl>
      </Protocol>
      <Protocol>
        <Type>EXPR</Type>
        <Server>{server}</Server>
        <SSL>On</SSL>
        <AuthPackage>Basic</AuthPackage>
        <ASUrl>{ews}</ASUrl>
        <EwsUrl>{ews}</EwsUrl>
        <OOFUrl>{ews}</OOFUrl>
        <OABUrl>https://{server}/OAB/</OABUrl>
      </Protocol>
      <Protocol>
        <Type>WEB</Type>
        <Internal>
          <OWAUrl AuthenticationMethod="Basic, Fba">https://{server}/owa/</OWAUrl>
          <Protocol>
            <Type>EXCH</Type>
            <ASUrl>{ews}</ASUrl>
          </Protocol>
        </Internal>
      </Protocol>
    </Account>
  </Response>
</Autodiscover>
"#,
        display = esc(display_name),
        legacy = esc(legacy_dn),
        smtp = esc(smtp),
        deployment = deployment_id(&state.name),
        server_dn = esc(&server_dn),
        version = state.version.packed_hex(),
        db = esc(&db),
    );
    Reply::new(200, "text/xml; charset=utf-8", body.into_bytes())
}

/// A stable GUID-shaped id for the organisation.
fn deployment_id(name: &str) -> String {
    let h = crate::generate::derive_seed(0, &["deployment", name]);
    let h2 = crate::generate::derive_seed(1, &["deployment", name]);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        h >> 32,
        (h >> 16) & 0xffff,
        h & 0xffff,
        h2 >> 48,
        h2 & 0xffff_ffff_ffff
    )
}

fn redirect(action: &str, element: &str, to: &str) -> Reply {
    let body = format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="{RESPONSE_NS}">
  <Response xmlns="{OUTLOOK_NS}">
    <Account>
      <AccountType>email</AccountType>
      <Action>{action}</Action>
      <{element}>{to}</{element}>
    </Account>
  </Response>
</Autodiscover>
"#,
        to = esc(to)
    );
    Reply::new(200, "text/xml; charset=utf-8", body.into_bytes())
}

/// An Autodiscover error: HTTP 200 with `<Error>` (as Exchange answers).
fn error_reply(code: u32, message: &str, ns: &str) -> Reply {
    let now = Utc::now();
    let body = format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="{RESPONSE_NS}">
  <Response xmlns="{ns}">
    <Error Time="{time}" Id="{id}">
      <ErrorCode>{code}</ErrorCode>
      <Message>{message}</Message>
      <DebugData />
    </Error>
  </Response>
</Autodiscover>
"#,
        time = now.format("%H:%M:%S%.6f"),
        id = now.timestamp() as u32,
        message = esc(message)
    );
    Reply::new(200, "text/xml; charset=utf-8", body.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_addresses_name_their_original() {
        assert_eq!(
            split_hop("hop3.alice@contoso.com"),
            (3, "alice@contoso.com".into())
        );
        assert_eq!(
            split_hop("alice@contoso.com"),
            (0, "alice@contoso.com".into())
        );
        assert_eq!(
            split_hop("hopper@contoso.com"),
            (0, "hopper@contoso.com".into())
        );
        assert!(matches_chain(
            "hop11.alice@contoso.com",
            "ALICE@contoso.com"
        ));
    }
}
