//! Time for the engine: the system clock, or a manual one so tests drive days in milliseconds.
//! The same clock type as a tenant's (from the neutral model crate), so a scenario moves both
//! with one hand.

pub use mailmig_model::clock::{Clock, ManualClock, SystemClock};
