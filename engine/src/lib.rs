//! mailmig's reference migration engine, with Exchange Online's semantics.
//!
//! - `csv`, `endpoint`: the admin's inputs; `status`: the batch and user transition tables;
//! - `state`: the durable state (SQLite); `control`: the cmdlets (endpoints, batches, users);
//! - `service`: the loop that schedules per-user syncs within concurrency limits;
//! - `sync`: the `UserSync` trait the data plane implements; `target`: the `Target` trait.

pub mod clock;
pub mod control;
pub mod copy;
pub mod csv;
pub mod endpoint;
pub mod error;
pub mod folders;
pub mod imap;
pub mod imap_target;
pub mod service;
pub mod state;
pub mod status;
pub mod sync;
pub mod target;
pub mod test_server;

pub use control::Engine;
pub use error::Error;
