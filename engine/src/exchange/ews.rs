//! The EWS client: SOAP requests over the endpoint's HTTPS client, as the admin acting on a
//! mailbox by impersonation or by delegate access; SOAP faults and response codes as data
//! ([`ExchangeError::Ews`]), throttling (ErrorServerBusy's BackOffMilliseconds, HTTP 503,
//! ErrorExceededConnectionCount) as [`ExchangeError::Throttled`].

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mailmig_xml::{self as xml, Element, esc};

use super::http::{Basic, HttpClient};
use super::{EwsAccess, ExchangeError};

pub const MESSAGES_NS: &str = "http://schemas.microsoft.com/exchange/services/2006/messages";
pub const TYPES_NS: &str = "http://schemas.microsoft.com/exchange/services/2006/types";
const SOAP_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// How long to wait when a server is busy and says nothing of how long.
const DEFAULT_BACK_OFF: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct Ews {
    pub http: Arc<HttpClient>,
    pub url: String,
    pub auth: Basic,
    pub access: EwsAccess,
}

/// One `...ResponseMessage`: its class, code and the element itself.
#[derive(Debug)]
pub struct Message<'a> {
    pub ok: bool,
    pub code: String,
    pub text: String,
    pub element: &'a Element,
}

impl<'a> Message<'a> {
    pub fn into_result(self) -> Result<&'a Element, ExchangeError> {
        if self.ok {
            Ok(self.element)
        } else {
            Err(ExchangeError::Ews {
                code: self.code,
                message: self.text,
            })
        }
    }
}

/// The response messages of a response body, in order.
pub fn messages(body: &Element) -> Vec<Message<'_>> {
    let Some(list) = body.find("ResponseMessages") else {
        return Vec::new();
    };
    list.children
        .iter()
        .map(|m| Message {
            ok: m.attr("ResponseClass") != Some("Error"),
            code: m.child_text("ResponseCode").unwrap_or("").to_string(),
            text: m.child_text("MessageText").unwrap_or("").to_string(),
            element: m,
        })
        .collect()
}

impl Ews {
    /// A `DistinguishedFolderId`, naming the mailbox for delegate access.
    pub fn distinguished(&self, id: &str, mailbox: &str) -> String {
        match self.access {
            EwsAccess::Delegate => format!(
                "<t:DistinguishedFolderId Id=\"{id}\"><t:Mailbox><t:EmailAddress>{}</t:EmailAddress></t:Mailbox></t:DistinguishedFolderId>",
                esc(mailbox)
            ),
            EwsAccess::Impersonation => format!("<t:DistinguishedFolderId Id=\"{id}\"/>"),
        }
    }

    /// Sends one operation acting on `mailbox`; returns the SOAP Body.
    pub async fn call(&self, mailbox: &str, operation: &str) -> Result<Element, ExchangeError> {
        let impersonation = match self.access {
            EwsAccess::Impersonation => format!(
                "<t:ExchangeImpersonation><t:ConnectingSID><t:PrimarySmtpAddress>{}</t:PrimarySmtpAddress></t:ConnectingSID></t:ExchangeImpersonation>",
                esc(mailbox)
            ),
            EwsAccess::Delegate => String::new(),
        };
        let envelope = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><soap:Envelope xmlns:soap=\"{SOAP_NS}\" xmlns:t=\"{TYPES_NS}\" xmlns:m=\"{MESSAGES_NS}\"><soap:Header><t:RequestServerVersion Version=\"Exchange2010_SP2\"/>{impersonation}</soap:Header><soap:Body>{operation}</soap:Body></soap:Envelope>"
        );
        let r = self
            .http
            .send(
                "POST",
                &self.url,
                Some(&self.auth),
                &[("content-type", "text/xml; charset=utf-8")],
                Bytes::from(envelope),
            )
            .await?;
        match r.status {
            200 | 500 => {}
            401 => {
                return Err(ExchangeError::Unauthorized(format!(
                    "EWS at {} refused the credentials of {} (HTTP 401)",
                    self.url, self.auth.user
                )));
            }
            503 => {
                let wait = r
                    .header("retry-after")
                    .and_then(|s| s.trim().parse::<u64>().ok())
                    .map_or(DEFAULT_BACK_OFF, Duration::from_secs);
                return Err(ExchangeError::Throttled {
                    wait,
                    message: format!("EWS at {} answered HTTP 503", self.url),
                });
            }
            s => {
                return Err(ExchangeError::Transient(format!(
                    "EWS at {} answered HTTP {s}",
                    self.url
                )));
            }
        }
        let doc = xml::parse(&r.body).map_err(|e| {
            ExchangeError::Transient(format!("EWS at {}: an unreadable answer ({e})", self.url))
        })?;
        let body = doc.child("Body").cloned().ok_or_else(|| {
            ExchangeError::Transient(format!("EWS at {}: no SOAP Body in the answer", self.url))
        })?;
        if let Some(fault) = body.child("Fault") {
            return Err(fault_error(fault));
        }
        Ok(body)
    }
}

fn fault_error(fault: &Element) -> ExchangeError {
    let code = fault
        .find("ResponseCode")
        .map(|c| c.text.trim().to_string())
        .or_else(|| {
            fault
                .child_text("faultcode")
                .map(|c| c.rsplit(':').next().unwrap_or(c).to_string())
        })
        .unwrap_or_default();
    let message = fault
        .find("Message")
        .map(|m| m.text.trim().to_string())
        .or_else(|| fault.child_text("faultstring").map(str::to_string))
        .unwrap_or_default();
    match code.as_str() {
        "ErrorServerBusy" => {
            let wait = fault
                .find("MessageXml")
                .into_iter()
                .flat_map(|m| m.children_named("Value"))
                .find(|v| v.attr("Name") == Some("BackOffMilliseconds"))
                .and_then(|v| v.text.trim().parse::<u64>().ok())
                .map_or(DEFAULT_BACK_OFF, Duration::from_millis);
            ExchangeError::Throttled {
                wait,
                message: format!("ErrorServerBusy: {message}"),
            }
        }
        "ErrorExceededConnectionCount" => ExchangeError::Throttled {
            wait: DEFAULT_BACK_OFF,
            message: format!("ErrorExceededConnectionCount: {message}"),
        },
        _ => ExchangeError::Ews { code, message },
    }
}

/// GetFolder of a well-known folder of `mailbox`: whether the admin can open it.
pub async fn probe(ews: &Ews, mailbox: &str) -> Result<(), ExchangeError> {
    let op = format!(
        "<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape><m:FolderIds>{}</m:FolderIds></m:GetFolder>",
        ews.distinguished("inbox", mailbox)
    );
    let body = ews.call(mailbox, &op).await?;
    match messages(&body).into_iter().next() {
        Some(m) => m.into_result().map(|_| ()),
        None => Err(ExchangeError::Transient(format!(
            "EWS at {}: GetFolder answered no message",
            ews.url
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_faults_carry_their_back_off() {
        let doc = xml::parse(format!("<s:Envelope xmlns:s=\"{SOAP_NS}\"><s:Body><s:Fault><faultcode>a:ErrorServerBusy</faultcode><faultstring>busy</faultstring><detail><e:ResponseCode xmlns:e=\"x\">ErrorServerBusy</e:ResponseCode><e:Message xmlns:e=\"x\">The server cannot service this request right now.</e:Message><t:MessageXml xmlns:t=\"y\"><t:Value Name=\"BackOffMilliseconds\">750</t:Value></t:MessageXml></detail></s:Fault></s:Body></s:Envelope>").as_bytes()).unwrap();
        let fault = doc.find("Fault").unwrap();
        match fault_error(fault) {
            ExchangeError::Throttled { wait, .. } => assert_eq!(wait, Duration::from_millis(750)),
            other => panic!("{other:?}"),
        }
    }
}
