//! mailmig's shared vocabulary, for the engine and the test doubles alike.
//!
//! - [`import`]: what an importer asks of a target and what it answers (outcomes, rejections
//!   with Exchange's words, item flags);
//! - [`skip`]: why an item or a folder was not migrated;
//! - [`sync`]: the kinds of per-user sync;
//! - [`clock`]: system or manual time, shared by the engine and a fake tenant;
//! - [`directory`]: the kinds of directory object a migration provisions or writes into.
//!
//! Invariant: this crate depends on no other crate of the workspace and on no protocol library.

pub mod clock;
pub mod directory;
pub mod import;
pub mod skip;
pub mod sync;

pub use clock::{Clock, ManualClock, SystemClock};
pub use directory::{
    DirectoryEntry, DirectoryKind, DirectoryLinks, DirectoryObject, DirectoryRefusal,
    MEMBERS_PER_CALL, OrganizationInfo, PersonAttributes, ProvisionOutcome, RecipientKind,
    generate_password,
};
pub use import::{FlagUpdate, ImportOutcome, ImportRequest, ItemFlags, ItemKind, Rejection};
pub use skip::SkipReason;
pub use sync::SyncKind;
