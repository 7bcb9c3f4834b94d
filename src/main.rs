//! The `mailmig` command line: parse, call a library, print. Each command family lives in its
//! own module under `commands/`, with its arguments and its execution together.

mod commands;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use commands::EXIT_FAILED;

#[derive(Parser, Debug)]
#[command(
    name = "mailmig",
    version,
    about = "Rehearse and verify mailbox migrations into Exchange Online",
    after_help = "Exit codes:\n  0  success (test-server: Success or Warning)\n  1  failure: refused, \
                  rejected, unreachable (test-server: Failed; csv check: file rejected;\n     \
                  scenario run: a scenario failed)\n  \
                  2  usage error\n  3  csv check: some rows have errors\n\n\
                  Environment:\n  MAILMIG_STATE_DIR  the state directory (as --state-dir)\n  \
                  MAILMIG_LOG        log filter for standard error: info, debug, engine=trace, ...\n                     \
                  (passwords are never logged, at any level)"
)]
struct Cli {
    /// Where mailmig keeps its state (endpoints, batches, users, passwords: keep it private).
    #[arg(
        long,
        global = true,
        env = "MAILMIG_STATE_DIR",
        default_value = ".mailmig"
    )]
    state_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Test-MigrationServerAvailability: an IMAP server (connect, TLS, CAPABILITY, a login if
    /// given) or an Exchange organisation (Autodiscover, directory, the admin's rights).
    TestServer(commands::test_server::TestServerArgs),
    /// The migration CSV.
    Csv {
        #[command(subcommand)]
        command: commands::csv::CsvCommand,
    },
    /// The tenant the batches write to.
    Target {
        #[command(subcommand)]
        command: commands::target::TargetCommand,
    },
    /// Migration endpoints (the source servers).
    Endpoint {
        #[command(subcommand)]
        command: commands::endpoint::EndpointCommand,
    },
    /// Migration batches.
    Batch {
        #[command(subcommand)]
        command: commands::batch::BatchCommand,
    },
    /// Migration users (Get-MigrationUser).
    User {
        #[command(subcommand)]
        command: commands::user::UserCommand,
    },
    /// The migration service: processes batches and schedules incremental syncs.
    Run(commands::run::RunArgs),
    /// Rehearses a migration read-only against the real source: every row checked, every
    /// mailbox surveyed, the migration forecast; writes report.json, users.csv, report.html.
    Rehearse(commands::rehearse::RehearseArgs),
    /// Scenario files: a migration situation run in-process, checked against expectations.
    Scenario {
        #[command(subcommand)]
        command: commands::scenario::ScenarioCommand,
    },
    /// The fake on-premises Exchange organisation (Autodiscover, LDAP, EWS), run standalone.
    #[command(name = "fake-exchange")]
    FakeExchange {
        #[command(subcommand)]
        command: commands::fake_exchange::FakeExchangeCommand,
    },
    /// The in-process fake IMAP server, run standalone.
    #[command(name = "fake-imap")]
    FakeImap {
        #[command(subcommand)]
        command: commands::fake_imap::FakeImapCommand,
    },
    /// The fake Exchange Online tenant, served over HTTP.
    #[command(name = "fake-target")]
    FakeTarget {
        #[command(subcommand)]
        command: commands::fake_target::FakeTargetCommand,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("MAILMIG_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<u8> {
    let dir = cli.state_dir;
    match cli.command {
        Command::TestServer(args) => commands::test_server::run(&dir, args).await,
        Command::Csv { command } => commands::csv::run(command),
        Command::Target { command } => commands::target::run(&dir, command).await,
        Command::Endpoint { command } => commands::endpoint::run(&dir, command).await,
        Command::Batch { command } => commands::batch::run(&dir, command).await,
        Command::User { command } => commands::user::run(&dir, command),
        Command::Run(args) => commands::run::run(&dir, args).await,
        Command::Rehearse(args) => commands::rehearse::run(&dir, args).await,
        Command::Scenario { command } => commands::scenario::run(command).await,
        Command::FakeExchange { command } => commands::fake_exchange::run(command).await,
        Command::FakeImap { command } => commands::fake_imap::run(command).await,
        Command::FakeTarget { command } => commands::fake_target::run(command).await,
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Every subcommand says what it does and every argument has a help line: `--help` is the
    /// documentation people read first.
    #[test]
    fn every_command_and_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let here = format!("{path} {}", cmd.get_name()).trim().to_string();
            if !path.is_empty() && cmd.get_about().is_none() {
                missing.push(format!("`{here}` has no description"));
            }
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() {
                    missing.push(format!("`{here}`: argument {id} has no help"));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_name() != "help" {
                    walk(sub, &here, missing);
                }
            }
        }
        let cli = Cli::command();
        cli.clone().debug_assert();
        let mut missing = Vec::new();
        walk(&cli, "", &mut missing);
        assert!(missing.is_empty(), "{missing:#?}");
        let help = cli.clone().render_help().to_string();
        assert!(
            help.contains("MAILMIG_LOG"),
            "the log filter is documented: {help}"
        );
    }
}
