//! The migration CSV parser, on any bytes: never a panic, and a parsed row always passes the
//! checks it claims to.
#![no_main]

use engine::control::csv::{CsvOptions, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(parsed) = parse(data, &CsvOptions::default()) {
        for row in &parsed.rows {
            assert!(engine::control::csv::is_smtp_address(&row.email_address));
            assert!(!row.password.is_empty() && !row.password.contains('\0'));
        }
        for e in &parsed.errors {
            assert!(
                !e.message.contains('\u{1b}'),
                "a raw escape in {:?}",
                e.message
            );
        }
    }
});
