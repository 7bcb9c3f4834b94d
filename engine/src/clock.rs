//! Time for the engine: the system clock, or a manual one so tests drive days in milliseconds.
//! The same clock type as the fake tenant's, so a scenario moves both with one hand.

pub use fake_target::clock::{Clock, ManualClock, SystemClock};
