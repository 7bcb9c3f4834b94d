//! Scenario files and their in-process runner: a source server, a target tenant, an endpoint,
//! a CSV and a timeline on a virtual clock, with expectations about what Exchange's migration
//! service would show. The format is documented in scenarios/README.md.

pub mod format;
pub mod runner;

pub use format::Scenario;
pub use runner::{Outcome, collect, junit, run_file};
