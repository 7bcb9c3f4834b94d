//! `mailmig csv check`: the migration CSV, validated as New-MigrationBatch would.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use engine::control::csv::{CsvOptions, RowError, parse};

use super::{EXIT_FAILED, EXIT_OK, EXIT_ROW_ERRORS};

#[derive(Subcommand, Debug)]
pub enum CsvCommand {
    /// Validates a CSV: exit 0 when every row is valid, 1 when the file is rejected, 3 when
    /// some rows have errors.
    Check(CheckArgs),
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The CSV file (EmailAddress, UserName, Password, and optionally UserRoot).
    pub file: PathBuf,
    /// Accept columns the migration service does not know (they are ignored).
    #[arg(long)]
    pub allow_unknown_columns: bool,
    /// The source's master-user separator (for recognising Dovecot forms).
    #[arg(long, default_value_t = '*')]
    pub master_separator: char,
    /// Print the parsed rows and errors as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(command: CsvCommand) -> anyhow::Result<u8> {
    let CsvCommand::Check(args) = command;
    check(&args)
}

fn check(args: &CheckArgs) -> anyhow::Result<u8> {
    let path = &args.file;
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let options = CsvOptions {
        allow_unknown_columns: args.allow_unknown_columns,
        separator: args.master_separator,
        ..Default::default()
    };
    let parsed = match parse(&bytes, &options) {
        Ok(parsed) => parsed,
        Err(rejection) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "file": path.display().to_string(), "rejected": rejection
                    }))?
                );
            } else {
                eprintln!(
                    "{}: the file is rejected: {}",
                    path.display(),
                    rejection.message
                );
            }
            return Ok(EXIT_FAILED);
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&parsed)?);
    } else {
        println!(
            "{:<6} {:<40} {:<10} UserName / error",
            "Line", "EmailAddress", "Form"
        );
        // One table in the file's order, valid rows and errors together.
        let mut lines: Vec<(u64, String)> = parsed
            .rows
            .iter()
            .map(|r| {
                (
                    r.line,
                    format!(
                        "{:<6} {:<40} {:<10} {}",
                        r.line,
                        r.email_address,
                        r.form.name(),
                        r.user_name
                    ),
                )
            })
            .chain(parsed.errors.iter().map(|e| {
                (
                    e.line,
                    format!(
                        "{:<6} {:<40} {:<10} {}",
                        e.line, e.email_address, "ERROR", e.message
                    ),
                )
            }))
            .collect();
        lines.sort_by_key(|(line, _)| *line);
        for (_, text) in lines {
            println!("{text}");
        }
        println!(
            "{} valid rows, {} rows with errors.",
            parsed.rows.len(),
            parsed.errors.len()
        );
    }
    Ok(if parsed.errors.is_empty() {
        EXIT_OK
    } else {
        EXIT_ROW_ERRORS
    })
}

/// Row errors of a CSV that a batch took, one line each, naming the file.
pub fn print_row_errors(errors: &[RowError], file: &Path) {
    for e in errors {
        eprintln!("{}: {}", file.display(), e.message);
    }
}
