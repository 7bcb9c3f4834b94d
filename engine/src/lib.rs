//! mailmig's reference migration engine, with Exchange Online's semantics.
//!
//! By layer, from the admin down to the wire:
//! - [`control`]: the cmdlets (endpoints, batches, users), the CSV, the status tables, and the
//!   durable state ([`control::state`], SQLite: control rows and the copy's checkpoint);
//! - [`service`]: the loop that schedules per-user syncs within concurrency limits;
//! - [`sync`]: the seam between the two planes: a source-neutral [`sync::SyncJob`] and the
//!   [`sync::UserSync`] trait;
//! - [`pipeline`]: the source-independent copy (folder plan, item cap, size limit, checkpoint,
//!   retries, reconciliation, statistics);
//! - [`source`]: the [`source::MailSource`] trait and its IMAP implementation;
//! - [`target`]: the [`target::Target`] trait and any IMAP server as a target;
//! - [`imap`]: the IMAP client layer both of those use (connections, TLS, checked commands);
//! - [`test_server`], Test-MigrationServerAvailability.
//!
//! Invariant: the engine depends on no test double (`fake-imap`, `fake-target`); its
//! vocabulary is its own or the neutral `mailmig-model`'s.

pub mod clock;
pub mod control;
pub mod error;
pub mod exchange;
pub mod identity;
pub mod imap;
pub mod pipeline;
pub mod provisioning;
pub mod rehearsal;
pub mod service;
pub mod source;
pub mod sync;
pub mod target;
pub mod test_server;
pub mod tls;

pub use control::Engine;
pub use error::Error;
