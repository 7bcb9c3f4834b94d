//! `mailmig test-server`: Test-MigrationServerAvailability, for an IMAP server or an
//! on-premises Exchange organisation (Outlook Anywhere, a cutover).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::bail;
use clap::{ArgGroup, Args, ValueEnum};
use engine::exchange::test::{OutlookAnywhereAvailability, TestInput, test as test_exchange};
use engine::exchange::{AdminCredential, ConnectTo, MailboxPermission};
use engine::imap::ImapSettings;
use engine::test_server::{TestResult, test_server};

use super::{AuthenticationArg, EXIT_FAILED, EXIT_OK, PasswordArgs, SecurityArg};

/// Where an IMAP server is and how to reach it (shared by test-server and endpoint new).
#[derive(Args, Debug)]
pub struct ImapServerArgs {
    /// The source is an IMAP server.
    #[arg(long)]
    pub imap: bool,
    /// The server's host name (it must match the certificate's name).
    #[arg(long, required_if_eq("imap", "true"))]
    pub remote_server: Option<String>,
    /// The server's port (143 for none and tls, 993 for ssl, usually).
    #[arg(long, required_if_eq("imap", "true"))]
    pub port: Option<u16>,
    /// How the connection is protected.
    #[arg(long, value_enum, ignore_case = true, required_if_eq("imap", "true"))]
    pub security: Option<SecurityArg>,
    /// A PEM file of CA certificates to trust besides the system's (a private CA).
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Go on when the certificate cannot be verified (Exchange's AcceptUntrustedCertificates);
    /// the result is then a Warning.
    #[arg(long)]
    pub accept_untrusted_certificates: bool,
}

impl ImapServerArgs {
    pub fn settings(&self) -> anyhow::Result<ImapSettings> {
        let (Some(server), Some(port), Some(security)) =
            (&self.remote_server, self.port, self.security)
        else {
            bail!("--imap needs --remote-server, --port and --security");
        };
        let mut s = ImapSettings::new(server, port, security.into());
        s.ca_file = self.ca_file.clone();
        s.accept_untrusted_certificates = self.accept_untrusted_certificates;
        Ok(s)
    }
}

/// `--mailbox-permission`: how the admin opens the mailboxes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MailboxPermissionArg {
    /// Domain Admins or ApplicationImpersonation (impersonation is tried first).
    Admin,
    /// FullAccess or Receive As on the mailboxes.
    FullAccess,
}

impl From<MailboxPermissionArg> for MailboxPermission {
    fn from(m: MailboxPermissionArg) -> Self {
        match m {
            MailboxPermissionArg::Admin => MailboxPermission::Admin,
            MailboxPermissionArg::FullAccess => MailboxPermission::FullAccess,
        }
    }
}

/// An on-premises Exchange organisation, found by Autodiscover or named (the manual form).
#[derive(Args, Debug)]
pub struct ExchangeArgs {
    /// The source is an on-premises Exchange organisation reached through Outlook Anywhere
    /// (a cutover migration).
    #[arg(long)]
    pub exchange_outlook_anywhere: bool,
    /// Find the servers by Autodiscover from --email-address.
    #[arg(
        long,
        requires = "exchange_outlook_anywhere",
        conflicts_with = "exchange_server"
    )]
    pub autodiscover: bool,
    /// The admin's email address (what Autodiscover is asked for).
    #[arg(long)]
    pub email_address: Option<String>,
    /// The manual form: the Exchange (mailbox) server, EWS at https://SERVER/EWS/Exchange.asmx.
    #[arg(long, requires = "exchange_outlook_anywhere")]
    pub exchange_server: Option<String>,
    /// The manual form: the Outlook Anywhere (RPC over HTTP) proxy server.
    #[arg(long, requires = "exchange_server")]
    pub rpc_proxy_server: Option<String>,
    /// The manual form: the directory server (LDAP); the Exchange server when not given.
    #[arg(long, requires = "exchange_server")]
    pub nspi_server: Option<String>,
    /// Connect to ADDR:PORT when HOST:PORT is asked for (curl's form; repeatable). The
    /// certificate is still checked against HOST. The endpoint keeps these.
    #[arg(long = "connect-to", value_name = "HOST:PORT:ADDR:PORT", value_parser = parse_connect_to)]
    pub connect_to: Vec<ConnectTo>,
    /// How the admin account opens the mailboxes (Admin: impersonation, else Domain Admins'
    /// access; FullAccess: the rights on each mailbox).
    #[arg(long, value_enum, ignore_case = true)]
    pub mailbox_permission: Option<MailboxPermissionArg>,
}

fn parse_connect_to(s: &str) -> Result<ConnectTo, String> {
    s.parse()
}

impl ExchangeArgs {
    /// The test's input; `username` defaults to the email address.
    pub fn input(
        &self,
        server: &ImapServerArgs,
        username: Option<&str>,
        password: String,
        timeout: Duration,
    ) -> anyhow::Result<TestInput> {
        if !self.autodiscover && self.exchange_server.is_none() {
            bail!(
                "--exchange-outlook-anywhere needs --autodiscover (with --email-address) or the manual form --exchange-server"
            );
        }
        let Some(email) = self.email_address.clone() else {
            bail!("--exchange-outlook-anywhere needs --email-address (the admin's address)");
        };
        Ok(TestInput {
            credential: AdminCredential {
                user_name: username.map_or(email.clone(), str::to_string),
                password,
            },
            email_address: email,
            exchange_server: self.exchange_server.clone(),
            rpc_proxy_server: self.rpc_proxy_server.clone(),
            nspi_server: self.nspi_server.clone(),
            mailbox_permission: self.mailbox_permission.map(Into::into),
            accept_untrusted_certificates: server.accept_untrusted_certificates,
            ca_file: server.ca_file.clone(),
            connect_to: self.connect_to.clone(),
            timeout,
        })
    }
}

/// Connect, negotiate TLS (certificate checked), and with credentials log in; for Exchange,
/// Autodiscover, the directory and the admin's rights. Prints Exchange's Result and Message.
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("endpoint_type").required(true).args(["imap", "exchange_outlook_anywhere"])))]
pub struct TestServerArgs {
    #[command(flatten)]
    pub server: ImapServerArgs,
    #[command(flatten)]
    pub exchange: ExchangeArgs,
    /// The user name: as in the CSV for IMAP (any admin form); the admin account for Exchange
    /// (default: --email-address).
    #[arg(long)]
    pub username: Option<String>,
    #[command(flatten)]
    pub password: PasswordArgs,
    /// How to log in to an IMAP server with the credentials.
    #[arg(long, value_enum, ignore_case = true, default_value = "basic")]
    pub authentication: AuthenticationArg,
    /// The IMAP server's master-user separator (for `--authentication plain`).
    #[arg(long, default_value_t = '*')]
    pub master_separator: char,
    /// Seconds before giving up on a server (Exchange: 15).
    #[arg(long, default_value_t = 15)]
    pub timeout: u64,
    /// Print the result as JSON (for Exchange, what `endpoint new --connection-settings` reads).
    #[arg(long)]
    pub json: bool,
}

pub async fn run(state_dir: &Path, args: TestServerArgs) -> anyhow::Result<u8> {
    let timeout = Duration::from_secs(args.timeout);
    let password = if args.exchange.exchange_outlook_anywhere || args.username.is_some() {
        args.password.required("The password")?
    } else {
        args.password.read("The password")?
    };
    if args.exchange.exchange_outlook_anywhere {
        let Some(password) = password else {
            bail!(
                "--exchange-outlook-anywhere needs the admin's password: --password-file FILE, --password-env VAR, --password-prompt or --password"
            );
        };
        let input =
            args.exchange
                .input(&args.server, args.username.as_deref(), password, timeout)?;
        let directory_sync = tenant_directory_sync(state_dir).await;
        let r = test_exchange(&input, directory_sync).await;
        print_exchange(&r, args.json)?;
        return Ok(if r.result == TestResult::Failed {
            EXIT_FAILED
        } else {
            EXIT_OK
        });
    }
    let mut settings = args.server.settings()?;
    settings.authentication = args.authentication.into();
    settings.master_separator = args.master_separator;
    let creds = match (&args.username, &password) {
        (Some(u), Some(p)) => Some((u.as_str(), p.as_str())),
        (None, None) => None,
        _ => bail!("--username and a password go together"),
    };
    let r = test_server(&settings, creds, timeout).await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!("Result: {}", r.result);
        println!("Message: {}", r.message);
        if let Some(d) = &r.error_detail {
            println!("ErrorDetail: {d}");
        }
        if !r.capabilities.is_empty() {
            println!("Capabilities: {}", r.capabilities.join(" "));
        }
    }
    Ok(if r.result == TestResult::Failed {
        EXIT_FAILED
    } else {
        EXIT_OK
    })
}

/// The tenant's directory synchronisation, when a target is set up in the state directory
/// and answers; `None` otherwise (the test then says the tenant was not asked).
pub async fn tenant_directory_sync(state_dir: &Path) -> Option<bool> {
    let engine = super::engine(state_dir).ok()?;
    let target = super::target::open(&engine, state_dir).ok()?;
    match target.organization().await {
        Ok(Some(org)) => Some(org.directory_sync),
        _ => None,
    }
}

fn print_exchange(r: &OutlookAnywhereAvailability, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(r)?);
        return Ok(());
    }
    println!("Result             : {}", r.result);
    println!("Message            : {}", r.message);
    if let Some(s) = &r.connection_settings {
        println!("ConnectionSettings :");
        let show = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
        for (k, v) in [
            ("AutodiscoverUrl", show(&s.autodiscover_url)),
            ("HasAutodiscovery", s.has_autodiscovery.to_string()),
            ("HasAdminPrivilege", s.has_admin_privilege.to_string()),
            ("IncomingEmailAddress", s.incoming_email_address.clone()),
            (
                "IncomingRPCProxyServer",
                s.incoming_rpc_proxy_server.clone(),
            ),
            ("IncomingExchangeServer", s.incoming_exchange_server.clone()),
            ("IncomingNSPIServer", s.incoming_nspi_server.clone()),
            ("IncomingDomain", s.incoming_domain.clone()),
            ("IncomingUserName", s.incoming_user_name.clone()),
            ("IncomingAuthentication", s.incoming_authentication.clone()),
            ("ServerVersion", show(&s.server_version)),
            ("SourceMailboxLegDn", show(&s.source_mailbox_leg_dn)),
            ("EwsUrl", s.ews_url.clone()),
            ("MailboxAccess", s.ews_access.to_string()),
        ] {
            println!("    {k:<23}: {v}");
        }
    }
    println!("SupportsCutover    : {}", r.supports_cutover);
    if let (Some(m), Some(n)) = (r.mailboxes, r.recipients) {
        println!("Directory          : {m} mailboxes, {n} recipients to migrate");
    }
    if let Some(d) = &r.error_detail {
        println!("ErrorDetail        : {d}");
    }
    Ok(())
}
