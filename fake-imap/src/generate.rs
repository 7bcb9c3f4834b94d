//! Deterministic generation of realistic messages for fixtures and benchmarks.
//!
//! The same seed, user and folder always give the same bytes. Messages vary the way real mail
//! does where a migration cares: plain and multipart bodies, base64 attachments, some without a
//! Message-ID (typical of Sent and Drafts), some with raw 8-bit bytes or odd MIME.

use chrono::{DateTime, Duration, FixedOffset, TimeZone};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;

use crate::store::{ANSWERED, FLAGGED, SEEN};

/// How generated messages look. Every field has a default, so `[generator]` may be partial.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeneratorConfig {
    /// Smallest message size in bytes (approximate: headers come on top of the body).
    pub min_size: usize,
    /// Largest message size in bytes.
    pub max_size: usize,
    /// Share of messages without a Message-ID header.
    pub missing_message_id: f64,
    /// Share of messages with raw 8-bit bytes in the body.
    pub eight_bit: f64,
    /// Share of multipart messages with a base64 attachment.
    pub attachment: f64,
    /// Share of messages that are \Seen (some of those are also \Answered or \Flagged).
    pub seen: f64,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        Self {
            min_size: 1024,
            max_size: 16 * 1024,
            missing_message_id: 0.1,
            eight_bit: 0.1,
            attachment: 0.15,
            seen: 0.6,
        }
    }
}

/// One generated message: bytes, flags and internal date.
#[derive(Clone, Debug)]
pub struct GeneratedMessage {
    pub raw: Vec<u8>,
    pub flags: Vec<&'static str>,
    pub internal_date: DateTime<FixedOffset>,
}

/// A stable 64-bit seed for a (seed, user, folder) triple (FNV-1a; no randomness in the hash).
pub fn derive_seed(seed: u64, parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

const FIRST: &[&str] = &[
    "Terry",
    "Ana",
    "Björn",
    "Mei",
    "Oluwaseun",
    "Zoë",
    "Raj",
    "Kim",
];
const LAST: &[&str] = &[
    "Adams",
    "Trujillo",
    "Ødegaard",
    "Chen",
    "Okafor",
    "Müller",
    "Patel",
];
const WORDS: &[&str] = &[
    "budget",
    "meeting",
    "report",
    "quarterly",
    "students",
    "exam",
    "schedule",
    "invoice",
    "project",
    "review",
    "draft",
    "minutes",
    "holiday",
    "migration",
    "server",
    "password",
];

/// Generates `count` messages for one folder, oldest first, one day apart.
pub fn generate(
    config: &GeneratorConfig,
    seed: u64,
    user: &str,
    folder: &str,
    count: usize,
) -> Vec<GeneratedMessage> {
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, &[user, folder]));
    let tz = FixedOffset::east_opt(3600).expect("valid offset");
    let start = tz
        .with_ymd_and_hms(2019, 1, 1, 8, 0, 0)
        .single()
        .expect("valid date");
    let sent_like = {
        let f = folder.to_ascii_lowercase();
        f.contains("sent") || f.contains("draft")
    };
    (0..count)
        .map(|i| {
            let date =
                start + Duration::days(i as i64) + Duration::seconds(rng.random_range(0..86_000));
            one(config, &mut rng, user, date, i, sent_like)
        })
        .collect()
}

fn pick<'a>(rng: &mut ChaCha8Rng, list: &[&'a str]) -> &'a str {
    list[rng.random_range(0..list.len())]
}

fn one(
    config: &GeneratorConfig,
    rng: &mut ChaCha8Rng,
    user: &str,
    date: DateTime<FixedOffset>,
    index: usize,
    sent_like: bool,
) -> GeneratedMessage {
    let target = if config.max_size > config.min_size {
        rng.random_range(config.min_size..=config.max_size)
    } else {
        config.min_size
    };
    let from_name = format!("{} {}", pick(rng, FIRST), pick(rng, LAST));
    let from_addr = format!("{}.{}@example.org", pick(rng, FIRST).to_lowercase(), index);
    let subject = format!("{} {} #{index}", pick(rng, WORDS), pick(rng, WORDS));
    let mut h = String::new();
    h.push_str(&format!("Return-Path: <{from_addr}>\r\n"));
    h.push_str(&format!(
        "Received: from mx.example.org (mx.example.org [192.0.2.{}]) by imap.contoso.edu; {}\r\n",
        rng.random_range(1..255),
        date.to_rfc2822()
    ));
    h.push_str(&format!("Date: {}\r\n", date.to_rfc2822()));
    h.push_str(&format!("From: \"{from_name}\" <{from_addr}>\r\n"));
    h.push_str(&format!("To: {user}@contoso.edu\r\n"));
    h.push_str(&format!("Subject: {subject}\r\n"));
    let missing_id = sent_like || rng.random_bool(config.missing_message_id.clamp(0.0, 1.0));
    if !missing_id {
        h.push_str(&format!(
            "Message-ID: <{:016x}.{index}@example.org>\r\n",
            rng.random::<u64>()
        ));
    }
    h.push_str("MIME-Version: 1.0\r\n");

    let eight_bit = rng.random_bool(config.eight_bit.clamp(0.0, 1.0));
    let attachment = rng.random_bool(config.attachment.clamp(0.0, 1.0));
    let body_len = target.saturating_sub(h.len() + 200).max(64);
    let text = filler(
        rng,
        if attachment { body_len / 3 } else { body_len },
        eight_bit,
    );
    let mut raw = h.into_bytes();
    if attachment {
        let boundary = format!("=_b{:08x}", rng.random::<u32>());
        raw.extend_from_slice(
            format!("Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n").as_bytes(),
        );
        raw.extend_from_slice(b"This is a multi-part message in MIME format.\r\n");
        raw.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        raw.extend_from_slice(b"Content-Type: text/plain; charset=utf-8\r\n");
        raw.extend_from_slice(b"Content-Transfer-Encoding: 8bit\r\n\r\n");
        raw.extend_from_slice(&text);
        raw.extend_from_slice(format!("\r\n--{boundary}\r\n").as_bytes());
        raw.extend_from_slice(b"Content-Type: application/octet-stream; name=\"data.bin\"\r\n");
        raw.extend_from_slice(b"Content-Transfer-Encoding: base64\r\n");
        raw.extend_from_slice(b"Content-Disposition: attachment; filename=\"data.bin\"\r\n\r\n");
        let bin: Vec<u8> = (0..body_len / 2).map(|_| rng.random()).collect();
        raw.extend_from_slice(&base64_lines(&bin));
        raw.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    } else if eight_bit {
        // Odd MIME, as old clients write it: 8-bit body with no charset declared.
        raw.extend_from_slice(b"Content-Type: text/plain\r\n\r\n");
        raw.extend_from_slice(&text);
    } else {
        raw.extend_from_slice(b"Content-Type: text/plain; charset=us-ascii\r\n");
        raw.extend_from_slice(b"Content-Transfer-Encoding: 7bit\r\n\r\n");
        raw.extend_from_slice(&text);
    }

    let mut flags = Vec::new();
    if rng.random_bool(config.seen.clamp(0.0, 1.0)) {
        flags.push(SEEN);
        if rng.random_bool(0.2) {
            flags.push(ANSWERED);
        }
    }
    if rng.random_bool(0.05) {
        flags.push(FLAGGED);
    }
    GeneratedMessage {
        raw,
        flags,
        internal_date: date + Duration::seconds(rng.random_range(1..120)),
    }
}

fn filler(rng: &mut ChaCha8Rng, len: usize, eight_bit: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 80);
    let mut line = 0;
    while out.len() < len {
        let word: &[u8] = if eight_bit && rng.random_bool(0.1) {
            // Latin-1 bytes, not UTF-8: what a migration meets in old mail.
            b"caf\xe9 na\xefve"
        } else {
            pick(rng, WORDS).as_bytes()
        };
        out.extend_from_slice(word);
        line += word.len() + 1;
        if line > 70 {
            out.extend_from_slice(b"\r\n");
            line = 0;
        } else {
            out.push(b' ');
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

fn base64_lines(bin: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD.encode(bin);
    let mut out = Vec::with_capacity(text.len() + text.len() / 76 * 2 + 2);
    for chunk in text.as_bytes().chunks(76) {
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_bytes() {
        let c = GeneratorConfig::default();
        let a = generate(&c, 7, "terry", "INBOX", 20);
        let b = generate(&c, 7, "terry", "INBOX", 20);
        assert!(
            a.iter()
                .zip(&b)
                .all(|(x, y)| x.raw == y.raw && x.flags == y.flags)
        );
        let other = generate(&c, 8, "terry", "INBOX", 20);
        assert!(a.iter().zip(&other).any(|(x, y)| x.raw != y.raw));
    }

    #[test]
    fn sizes_follow_the_config_and_variety_is_present() {
        let c = GeneratorConfig {
            min_size: 4000,
            max_size: 4000,
            ..Default::default()
        };
        let msgs = generate(&c, 1, "u", "INBOX", 200);
        for m in &msgs {
            assert!((3000..6000).contains(&m.raw.len()), "size {}", m.raw.len());
        }
        let has = |needle: &[u8]| {
            msgs.iter()
                .filter(|m| m.raw.windows(needle.len()).any(|w| w == needle))
                .count()
        };
        assert!(has(b"Message-ID:") < 200, "some lack a Message-ID");
        assert!(has(b"multipart/mixed") > 0);
        assert!(
            msgs.iter().any(|m| m.raw.iter().any(|&b| b >= 0x80)),
            "some are 8-bit"
        );
    }

    #[test]
    fn sent_folders_have_no_message_id() {
        let msgs = generate(&GeneratorConfig::default(), 1, "u", "Sent", 10);
        assert!(
            msgs.iter()
                .all(|m| !m.raw.windows(11).any(|w| w == b"Message-ID:"))
        );
    }
}
