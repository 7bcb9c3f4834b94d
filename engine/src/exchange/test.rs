//! Test-MigrationServerAvailability -ExchangeOutlookAnywhere (cutover.md §3): Autodiscover (or
//! the manual form), the certificate, the directory bind, the admin's rights over the
//! mailboxes (impersonation, else delegate access), and whether the tenant allows a cutover.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::autodiscover::{self, Discovered};
use super::directory::{self, Plan};
use super::ews::{self, Ews};
use super::http::{Basic, HttpClient};
use super::{
    AdminCredential, CONNECT_FAILED, ConnectTo, EwsAccess, ExchangeError, ExchangeSettings,
    MailboxPermission,
};
use crate::test_server::TestResult;

/// What the admin gives the test (and New-MigrationEndpoint).
#[derive(Clone, Debug)]
pub struct TestInput {
    pub email_address: String,
    pub credential: AdminCredential,
    /// The manual form: the mailbox server (EWS on it) and the RPC proxy.
    pub exchange_server: Option<String>,
    pub rpc_proxy_server: Option<String>,
    /// The manual form's directory server (defaults to the Exchange server).
    pub nspi_server: Option<String>,
    pub mailbox_permission: Option<MailboxPermission>,
    pub accept_untrusted_certificates: bool,
    pub ca_file: Option<std::path::PathBuf>,
    pub connect_to: Vec<ConnectTo>,
    pub timeout: Duration,
}

/// ConnectionSettings, with Exchange's names (cutover.md §3) and ours after them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConnectionSettings {
    pub autodiscover_url: Option<String>,
    pub has_autodiscovery: bool,
    pub has_admin_privilege: bool,
    pub incoming_email_address: String,
    #[serde(rename = "IncomingRPCProxyServer")]
    pub incoming_rpc_proxy_server: String,
    pub incoming_exchange_server: String,
    #[serde(rename = "IncomingNSPIServer")]
    pub incoming_nspi_server: String,
    pub incoming_domain: String,
    pub incoming_user_name: String,
    pub incoming_authentication: String,
    pub server_version: Option<String>,
    pub source_mailbox_leg_dn: Option<String>,
    /// Ours: what the engine needs beyond Exchange's fields.
    pub ews_url: String,
    pub mailbox_permission: MailboxPermission,
    pub ews_access: EwsAccess,
    pub accept_untrusted_certificates: bool,
    pub ca_file: Option<std::path::PathBuf>,
    pub connect_to: Vec<ConnectTo>,
}

impl ConnectionSettings {
    /// The endpoint's settings, with the admin's password (never in this struct).
    pub fn endpoint_settings(&self, password: &str) -> ExchangeSettings {
        ExchangeSettings {
            email_address: self.incoming_email_address.clone(),
            credential: AdminCredential {
                user_name: self.incoming_user_name.clone(),
                password: password.to_string(),
            },
            use_auto_discover: self.has_autodiscovery,
            autodiscover_url: self.autodiscover_url.clone(),
            exchange_server: self.incoming_exchange_server.clone(),
            rpc_proxy_server: self.incoming_rpc_proxy_server.clone(),
            ews_url: self.ews_url.clone(),
            nspi_server: self.incoming_nspi_server.clone(),
            ldap_port: 389,
            ldaps: false,
            server_version: self.server_version.clone(),
            mailbox_permission: self.mailbox_permission,
            ews_access: self.ews_access,
            accept_untrusted_certificates: self.accept_untrusted_certificates,
            ca_file: self.ca_file.clone(),
            connect_to: self.connect_to.clone(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct OutlookAnywhereAvailability {
    pub result: TestResult,
    pub message: String,
    pub connection_settings: Option<ConnectionSettings>,
    pub supports_cutover: bool,
    pub error_detail: Option<String>,
    /// Ours: how many mailboxes and recipients a cutover batch would take.
    pub mailboxes: Option<usize>,
    pub recipients: Option<usize>,
}

impl OutlookAnywhereAvailability {
    fn failed(message: &str, detail: impl Into<String>) -> Self {
        Self {
            result: TestResult::Failed,
            message: message.to_string(),
            connection_settings: None,
            supports_cutover: false,
            error_detail: Some(detail.into()),
            mailboxes: None,
            recipients: None,
        }
    }
}

const AUTODISCOVER_FAILED: &str =
    "The migration service couldn't detect the migration endpoint using Autodiscover.";
const SIGN_IN_FAILED: &str = "The credentials of the admin account were refused. Confirm that you're using the correct user name and password.";

/// Runs the test. `directory_sync` is the tenant's (None: the tenant was not asked).
pub async fn test(input: &TestInput, directory_sync: Option<bool>) -> OutlookAnywhereAvailability {
    let http = match HttpClient::new(
        input.ca_file.as_deref(),
        input.accept_untrusted_certificates,
        input.connect_to.clone(),
        input.timeout,
    ) {
        Ok(h) => Arc::new(h),
        Err(e) => return OutlookAnywhereAvailability::failed(CONNECT_FAILED, e.to_string()),
    };
    let auth = Basic {
        user: input.credential.user_name.clone(),
        password: input.credential.password.clone(),
    };
    if !auth.user.is_ascii() || !auth.password.is_ascii() {
        return OutlookAnywhereAvailability::failed(
            SIGN_IN_FAILED,
            "the migration service takes only ASCII user names and passwords (Basic authentication)",
        );
    }
    let discovered = match &input.exchange_server {
        Some(server) => Discovered {
            email_address: input.email_address.clone(),
            exchange_server: server.clone(),
            rpc_proxy_server: input.rpc_proxy_server.clone().unwrap_or(server.clone()),
            ews_url: format!("https://{server}/EWS/Exchange.asmx"),
            ad_server: input.nspi_server.clone().unwrap_or(server.clone()),
            auth_package: "Basic".into(),
            ..Discovered::default()
        },
        None => match autodiscover::discover(&http, &input.email_address, &auth).await {
            Ok(d) => d,
            Err(e) => return failure(e, AUTODISCOVER_FAILED),
        },
    };
    let mut settings = ConnectionSettings {
        autodiscover_url: (!discovered.url.is_empty()).then(|| discovered.url.clone()),
        has_autodiscovery: input.exchange_server.is_none(),
        has_admin_privilege: false,
        incoming_email_address: input.email_address.clone(),
        incoming_rpc_proxy_server: discovered.rpc_proxy_server.clone(),
        incoming_exchange_server: discovered.exchange_server.clone(),
        incoming_nspi_server: if discovered.ad_server.is_empty() {
            discovered.exchange_server.clone()
        } else {
            discovered.ad_server.clone()
        },
        incoming_domain: input
            .email_address
            .rsplit_once('@')
            .map(|(_, d)| d.to_string())
            .unwrap_or_default(),
        incoming_user_name: input.credential.user_name.clone(),
        incoming_authentication: if discovered.auth_package.is_empty() {
            "Basic".into()
        } else {
            discovered.auth_package.clone()
        },
        server_version: (!discovered.server_version.is_empty())
            .then(|| discovered.server_version.clone()),
        source_mailbox_leg_dn: (!discovered.legacy_dn.is_empty())
            .then(|| discovered.legacy_dn.clone()),
        ews_url: discovered.ews_url.clone(),
        mailbox_permission: input.mailbox_permission.unwrap_or_default(),
        ews_access: EwsAccess::Delegate,
        accept_untrusted_certificates: input.accept_untrusted_certificates,
        ca_file: input.ca_file.clone(),
        connect_to: input.connect_to.clone(),
    };
    let directory = match directory::read(&http, &settings.endpoint_settings(&auth.password)).await
    {
        Ok(d) => d,
        Err(e) => return failure(e, CONNECT_FAILED),
    };
    settings.has_admin_privilege = directory.admin_is_domain_admin;
    let plan = directory::plan(&directory);
    match rights(&http, &auth, &mut settings, &plan).await {
        Ok(()) => {}
        Err(detail) => {
            let mut out = OutlookAnywhereAvailability::failed(
                "The admin account can't open the mailboxes. Give it FullAccess (or Receive As) on them, or the ApplicationImpersonation role, and try again.",
                detail,
            );
            out.connection_settings = Some(settings);
            return out;
        }
    }
    let supports_cutover = directory_sync == Some(false);
    let (result, message, detail) = if directory_sync == Some(true) {
        (
            TestResult::Warning,
            "The connection to the server succeeded, but directory synchronization is turned on for the tenant: a cutover migration isn't supported until it is turned off.".to_string(),
            None,
        )
    } else if http.accepted_untrusted() {
        (
            TestResult::Warning,
            "The connection succeeded, but the server's certificate isn't trusted (accepted because untrusted certificates are accepted).".to_string(),
            None,
        )
    } else if directory_sync.is_none() {
        (
            TestResult::Warning,
            "The connection to the server succeeded; the tenant wasn't asked whether it allows a cutover migration (no target).".to_string(),
            None,
        )
    } else {
        (
            TestResult::Success,
            format!(
                "The connection to the server succeeded: signed in as {} and read the directory ({} mailboxes, {} recipients) and a mailbox by {}.",
                input.credential.user_name,
                plan.mailboxes(),
                plan.recipients.len(),
                settings.ews_access
            ),
            None,
        )
    };
    OutlookAnywhereAvailability {
        result,
        message,
        connection_settings: Some(settings),
        supports_cutover,
        error_detail: detail,
        mailboxes: Some(plan.mailboxes()),
        recipients: Some(plan.recipients.len()),
    }
}

/// The message for a failure, by kind: the certificate and the connection share Exchange's
/// connect message; refused credentials have their own.
fn failure(e: ExchangeError, otherwise: &str) -> OutlookAnywhereAvailability {
    let message = match &e {
        ExchangeError::Certificate(_) | ExchangeError::Unreachable(_) => CONNECT_FAILED,
        ExchangeError::Unauthorized(_) => SIGN_IN_FAILED,
        _ => otherwise,
    };
    OutlookAnywhereAvailability::failed(message, e.to_string())
}

/// Opens a mailbox of the organisation the way the permission says: impersonation first for
/// Admin, delegate access otherwise (or when impersonation is denied).
async fn rights(
    http: &Arc<HttpClient>,
    auth: &Basic,
    settings: &mut ConnectionSettings,
    plan: &Plan,
) -> Result<(), String> {
    let Some(probe) = plan
        .recipients
        .iter()
        .find(|p| p.kind.has_mailbox() && p.failure.is_none())
        .map(|p| p.identity.clone())
    else {
        // No mailbox to open: nothing to migrate, and nothing to prove.
        return Ok(());
    };
    let mut tried = Vec::new();
    let order: &[EwsAccess] = match settings.mailbox_permission {
        MailboxPermission::Admin => &[EwsAccess::Impersonation, EwsAccess::Delegate],
        MailboxPermission::FullAccess => &[EwsAccess::Delegate],
    };
    for access in order {
        let client = Ews {
            http: http.clone(),
            url: settings.ews_url.clone(),
            auth: auth.clone(),
            access: *access,
        };
        match ews::probe(&client, &probe).await {
            Ok(()) => {
                settings.ews_access = *access;
                return Ok(());
            }
            Err(e) => tried.push(format!("{probe} by {access}: {e}")),
        }
    }
    Err(tried.join("; "))
}
