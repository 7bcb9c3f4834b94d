//! fake-target: a fake Exchange Online tenant with a mailbox import API.
//!
//! One tenant, two faces: the in-process [`Tenant`] and an HTTP API ([`http::serve`]) with a
//! typed client ([`http::HttpTenant`]); both implement [`TenantApi`], so the engine can write to
//! either. An import passes these rules, in this order:
//! 1. the address must name a user mailbox (else `NoSuchRecipient`, HTTP 404);
//! 2. the mailbox must be enabled, and licensed or within 30 days of grace (`MailboxDisabled`,
//!    403);
//! 3. the message must fit the maximum size, 35 MiB by default (`TooLarge`, 413);
//! 4. a source key imported before answers `AlreadyPresent` with the same id (200), so retries
//!    and concurrent duplicates never make a second item;
//! 5. the mailbox and tenant token buckets must have room (`Throttled` with a retry-after, 429);
//! 6. a seeded share of imports fails transiently (503);
//! 7. the quota must have room (`QuotaExceeded`, 507);
//! 8. then the item is written (on disk first, for an on-disk tenant) and `Created` (201).

pub mod api;
pub mod clock;
pub mod config;
pub mod directory;
pub mod error;
pub mod http;
pub mod inspect;
pub mod model;
pub mod persist;
pub mod tenant;
pub mod throttle;

pub use api::TenantApi;
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::TenantConfig;
pub use error::Error;
pub use model::*;
pub use tenant::{Settings, Tenant};
