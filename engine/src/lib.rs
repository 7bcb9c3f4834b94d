//! mailmig's reference migration engine, with Exchange Online's semantics.

pub mod csv;
pub mod endpoint;
pub mod error;
pub mod state;
pub mod status;

pub use error::Error;
