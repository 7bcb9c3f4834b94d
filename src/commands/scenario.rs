//! `mailmig scenario run`: scenario files run in-process, each checked against what Exchange's
//! service would show.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use super::{EXIT_FAILED, EXIT_OK};

#[derive(Subcommand, Debug)]
pub enum ScenarioCommand {
    /// Runs scenario files (folders: every *.toml in them). Exit 0 iff all pass.
    Run {
        /// Scenario files or folders of them.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Seeds every scenario (overrides the files' own seeds).
        #[arg(long)]
        seed: Option<u64>,
        /// Writes JUnit XML here.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Writes the outcomes as JSON here.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
    },
}

pub async fn run(command: ScenarioCommand) -> anyhow::Result<u8> {
    let ScenarioCommand::Run {
        paths,
        seed,
        junit,
        json,
    } = command;
    let files = scenarios::collect(&paths).map_err(anyhow::Error::msg)?;
    let mut outcomes = Vec::new();
    for f in &files {
        let o = scenarios::run_file(f, seed).await;
        println!(
            "{:<6} {:>6.2}s  {}  ({})",
            if o.passed { "PASS" } else { "FAIL" },
            o.seconds,
            o.name,
            f.display()
        );
        if let Some(why) = &o.failure {
            for line in why.lines() {
                println!("         {line}");
            }
        }
        outcomes.push(o);
    }
    let failed = outcomes.iter().filter(|o| !o.passed).count();
    println!(
        "scenarios: {} passed, {failed} failed",
        outcomes.len() - failed
    );
    if let Some(path) = junit {
        std::fs::write(&path, scenarios::junit(&outcomes))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = json {
        std::fs::write(&path, serde_json::to_vec_pretty(&outcomes)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(if failed == 0 { EXIT_OK } else { EXIT_FAILED })
}
