//! EWS (Exchange Web Services) at `/EWS/Exchange.asmx`: the SOAP envelope, who acts on which
//! mailbox (own, FullAccess / Receive As / Domain Admins, or `ExchangeImpersonation`),
//! throttling faults, and one module per operation family.
//!
//! Operations: ConvertId, GetFolder, FindFolder, SyncFolderHierarchy (folders.rs);
//! SyncFolderItems, GetItem, ExportItems (items.rs). Every response carries ServerVersionInfo.

mod folders;
mod ids;
mod items;

use crate::faults::EwsDecision;
use crate::org::{OrgState, Principal};
use crate::server::{Reply, Request, Shared};
use mailmig_xml::{self as xml, Element, esc};

pub use ids::{FolderRef, ItemRef};

pub const MESSAGES_NS: &str = "http://schemas.microsoft.com/exchange/services/2006/messages";
pub const TYPES_NS: &str = "http://schemas.microsoft.com/exchange/services/2006/types";
pub const ERRORS_NS: &str = "http://schemas.microsoft.com/exchange/services/2006/errors";
pub const SOAP_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";

/// Who acts, and on whose mailbox by default.
pub struct Context<'a> {
    pub principal: &'a Principal,
    /// What the server counts of its answers (for tests that check how much a client asked).
    pub counters: &'a crate::faults::EwsCounters,
    /// The impersonated mailbox, when the request impersonates.
    pub impersonated: Option<String>,
}

impl Context<'_> {
    /// The mailbox a request means when it names none.
    pub fn default_mailbox(&self) -> String {
        self.impersonated
            .clone()
            .unwrap_or_else(|| self.principal.address().to_string())
    }

    /// Whether the caller may open `mailbox`, and the EWS error when not (or when the mailbox
    /// cannot be opened now).
    pub fn open(&self, state: &OrgState, mailbox: &str) -> Result<String, &'static str> {
        let Some(primary) = state.mailbox_address(mailbox) else {
            return Err("ErrorNonExistentMailbox");
        };
        let allowed = match &self.impersonated {
            Some(i) => i.eq_ignore_ascii_case(&primary),
            None => state.may_open(self.principal, &primary),
        };
        if !allowed {
            return Err("ErrorAccessDenied");
        }
        if state.store_unavailable {
            return Err("ErrorMailboxStoreUnavailable");
        }
        if state.mailbox(&primary).is_some_and(|m| m.moving) {
            return Err("ErrorMailboxMoveInProgress");
        }
        Ok(primary)
    }
}

pub async fn handle(request: &Request, shared: &Shared, principal: &Principal) -> Reply {
    let faults = &shared.faults.ews;
    let decision = shared.ews_counters.decide(faults);
    let version = shared.org.lock().version;
    match decision {
        EwsDecision::Busy => {
            return fault(
                &version,
                "ErrorServerBusy",
                "The server cannot service this request right now. Try again later.",
                &format!(
                    "<t:MessageXml xmlns:t=\"{TYPES_NS}\"><t:Value Name=\"BackOffMilliseconds\">{}</t:Value></t:MessageXml>",
                    faults.back_off_ms
                ),
            );
        }
        EwsDecision::Http503 => {
            return Reply::new(503, "text/html", b"Service Unavailable".to_vec())
                .header("Retry-After", "1");
        }
        EwsDecision::Serve | EwsDecision::CloseMidResponse => {}
    }
    if faults.delay_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(faults.delay_ms)).await;
    }
    let mut reply = dispatch(request, shared, principal);
    if decision == EwsDecision::CloseMidResponse {
        reply.cut = true;
    }
    reply
}

fn dispatch(request: &Request, shared: &Shared, principal: &Principal) -> Reply {
    let state = shared.org.lock();
    let version = state.version;
    let envelope = match xml::parse(&request.body) {
        Ok(e) => e,
        Err(e) => {
            return fault(
                &version,
                "ErrorSchemaValidation",
                &format!("The request failed schema validation: {e}"),
                "",
            );
        }
    };
    let Some(body) = envelope.child("Body") else {
        return fault(
            &version,
            "ErrorSchemaValidation",
            "The request failed schema validation: no SOAP Body.",
            "",
        );
    };
    let Some(op) = body.children.first() else {
        return fault(
            &version,
            "ErrorInvalidRequest",
            "The request is invalid.",
            "",
        );
    };
    let impersonated = match envelope
        .child("Header")
        .and_then(|h| h.child("ExchangeImpersonation"))
    {
        None => None,
        Some(imp) => {
            if !state.may_impersonate(principal) {
                return fault(
                    &version,
                    "ErrorImpersonateUserDenied",
                    "The account does not have permission to impersonate the requested user.",
                    "",
                );
            }
            let sid = imp.child("ConnectingSID");
            let named = sid.and_then(|s| {
                ["PrimarySmtpAddress", "SmtpAddress", "PrincipalName"]
                    .iter()
                    .find_map(|n| s.child_text(n))
            });
            match named.and_then(|n| state.mailbox_address(n)) {
                Some(m) => Some(m),
                None => {
                    return fault(
                        &version,
                        "ErrorNonExistentMailbox",
                        "The SMTP address has no mailbox associated with it.",
                        "",
                    );
                }
            }
        }
    };
    let ctx = Context {
        counters: &shared.ews_counters,
        principal,
        impersonated,
    };
    let inner = match op.name.as_str() {
        "ConvertId" => items::convert_id(&state, &ctx, op),
        "GetFolder" => folders::get_folder(&state, &ctx, op),
        "FindFolder" => folders::find_folder(&state, &ctx, op),
        "SyncFolderHierarchy" => folders::sync_folder_hierarchy(&state, &ctx, op),
        "SyncFolderItems" => items::sync_folder_items(&state, &ctx, op),
        "GetItem" => items::get_item(&state, &ctx, op),
        "ExportItems" => items::export_items(&state, &ctx, op),
        other => {
            return fault(
                &version,
                "ErrorInvalidRequest",
                &format!("The operation {other} is not supported by this server."),
                "",
            );
        }
    };
    envelope_reply(&version, &inner)
}

fn header(version: &crate::org::ExchangeVersion) -> String {
    format!(
        "<s:Header><h:ServerVersionInfo MajorVersion=\"{}\" MinorVersion=\"{}\" MajorBuildNumber=\"{}\" MinorBuildNumber=\"{}\" Version=\"{}\" xmlns:h=\"{TYPES_NS}\" xmlns=\"{TYPES_NS}\" xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"/></s:Header>",
        version.major, version.minor, version.build, version.minor_build, version.schema
    )
}

fn envelope_reply(version: &crate::org::ExchangeVersion, body: &str) -> Reply {
    let text = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><s:Envelope xmlns:s=\"{SOAP_NS}\">{}<s:Body xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\">{body}</s:Body></s:Envelope>",
        header(version)
    );
    Reply::new(200, "text/xml; charset=utf-8", text.into_bytes())
}

/// A SOAP fault (HTTP 500), as EWS sends for request-wide errors.
pub fn fault(
    version: &crate::org::ExchangeVersion,
    code: &str,
    message: &str,
    message_xml: &str,
) -> Reply {
    let text = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><s:Envelope xmlns:s=\"{SOAP_NS}\">{}<s:Body><s:Fault><faultcode xmlns:a=\"{TYPES_NS}\">a:{code}</faultcode><faultstring xml:lang=\"en-US\">{msg}</faultstring><detail><e:ResponseCode xmlns:e=\"{ERRORS_NS}\">{code}</e:ResponseCode><e:Message xmlns:e=\"{ERRORS_NS}\">{msg}</e:Message>{message_xml}</detail></s:Fault></s:Body></s:Envelope>",
        header(version),
        msg = esc(message)
    );
    Reply::new(500, "text/xml; charset=utf-8", text.into_bytes())
}

/// Past the concurrent-connection limit (EWSMaxConcurrency).
pub fn exceeded_connection_count(version: &crate::org::ExchangeVersion) -> Reply {
    fault(
        version,
        "ErrorExceededConnectionCount",
        "You have exceeded the available concurrent connections for your account. Try again once your other requests have completed.",
        "",
    )
}

/// One response message: `<m:{op}ResponseMessage ResponseClass="...">`.
pub fn message_ok(op: &str, inner: &str) -> String {
    format!(
        "<m:{op}ResponseMessage ResponseClass=\"Success\"><m:ResponseCode>NoError</m:ResponseCode>{inner}</m:{op}ResponseMessage>"
    )
}

pub fn message_error(op: &str, code: &str) -> String {
    format!(
        "<m:{op}ResponseMessage ResponseClass=\"Error\"><m:MessageText>{}</m:MessageText><m:ResponseCode>{code}</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey></m:{op}ResponseMessage>",
        esc(error_text(code))
    )
}

pub fn wrap(op: &str, messages: &str) -> String {
    format!(
        "<m:{op}Response xmlns:m=\"{MESSAGES_NS}\" xmlns:t=\"{TYPES_NS}\"><m:ResponseMessages>{messages}</m:ResponseMessages></m:{op}Response>"
    )
}

fn error_text(code: &str) -> &'static str {
    match code {
        "ErrorAccessDenied" => "Access is denied. Check credentials and try again.",
        "ErrorItemNotFound" => "The specified object was not found in the store.",
        "ErrorFolderNotFound" => "The specified folder could not be found in the store.",
        "ErrorNonExistentMailbox" => "The SMTP address has no mailbox associated with it.",
        "ErrorMailboxMoveInProgress" => {
            "The mailbox is being moved. Try again after the move has completed."
        }
        "ErrorMailboxStoreUnavailable" => "The mailbox database is temporarily unavailable.",
        "ErrorInvalidSyncStateData" => {
            "Synchronization state data is corrupt or otherwise invalid."
        }
        "ErrorItemCorrupt" => "The item is corrupt.",
        "ErrorContentConversionFailed" => "Content conversion failed.",
        "ErrorInvalidIdMalformed" => "Id is malformed.",
        "ErrorInvalidArgument" => "The request is invalid.",
        _ => "The request failed.",
    }
}

/// The mailbox a `DistinguishedFolderId` names (its `<Mailbox><EmailAddress>`), if any.
pub fn named_mailbox(e: &Element) -> Option<String> {
    e.child("Mailbox")
        .and_then(|m| m.child_text("EmailAddress"))
        .map(str::to_string)
}
