//! One module per command family. Each handler writes its untagged responses to the
//! connection and returns how the command ended; the session sends the tagged reply.

pub mod any;
pub mod append;
pub mod auth;
pub mod extensions;
pub mod fetch;
pub mod mailbox;
pub mod search;
pub mod selected;
