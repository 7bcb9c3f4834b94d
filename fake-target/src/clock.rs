//! Time as the tenant sees it: the clock shared with the engine (system or manual), so a
//! 30-day licence grace or a throttle window passes in microseconds in tests.

pub use mailmig_model::clock::{Clock, ManualClock, SystemClock};
