//! `mailmig test-server`: Test-MigrationServerAvailability.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use engine::imap::ImapSettings;
use engine::test_server::{TestResult, test_server};

use super::{AuthenticationArg, EXIT_FAILED, EXIT_OK, SecurityArg};

/// Where an IMAP server is and how to reach it (shared by test-server and endpoint new).
#[derive(Args, Debug)]
pub struct ImapServerArgs {
    /// The source is an IMAP server (the only endpoint type for now).
    #[arg(long, required = true)]
    pub imap: bool,
    /// The server's host name (it must match the certificate's name).
    #[arg(long)]
    pub remote_server: String,
    /// The server's port (143 for none and tls, 993 for ssl, usually).
    #[arg(long)]
    pub port: u16,
    /// How the connection is protected.
    #[arg(long, value_enum, ignore_case = true)]
    pub security: SecurityArg,
    /// A PEM file of CA certificates to trust besides the system's (a private CA).
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Go on when the certificate cannot be verified (Exchange's AcceptUntrustedCertificates);
    /// the result is then a Warning.
    #[arg(long)]
    pub accept_untrusted_certificates: bool,
}

impl ImapServerArgs {
    pub fn settings(&self) -> ImapSettings {
        let mut s = ImapSettings::new(&self.remote_server, self.port, self.security.into());
        s.ca_file = self.ca_file.clone();
        s.accept_untrusted_certificates = self.accept_untrusted_certificates;
        s
    }
}

/// Connect, negotiate TLS (certificate checked), ask for CAPABILITY, and log in if given
/// credentials; prints Exchange's Result and Message.
#[derive(Args, Debug)]
pub struct TestServerArgs {
    #[command(flatten)]
    pub server: ImapServerArgs,
    /// The user name as in the CSV (any admin form).
    #[arg(long, requires = "password")]
    pub username: Option<String>,
    /// The password (visible to other local users on the command line).
    #[arg(long, requires = "username")]
    pub password: Option<String>,
    /// How to log in with the credentials.
    #[arg(long, value_enum, ignore_case = true, default_value = "basic")]
    pub authentication: AuthenticationArg,
    /// The server's master-user separator (for `--authentication plain`).
    #[arg(long, default_value_t = '*')]
    pub master_separator: char,
    /// Seconds before giving up (Exchange: 15).
    #[arg(long, default_value_t = 15)]
    pub timeout: u64,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: TestServerArgs) -> anyhow::Result<u8> {
    let mut settings = args.server.settings();
    settings.authentication = args.authentication.into();
    settings.master_separator = args.master_separator;
    let creds = args.username.as_deref().zip(args.password.as_deref());
    let r = test_server(&settings, creds, Duration::from_secs(args.timeout)).await;
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
