//! How a message is known: the source key the target's import is idempotent by, and the
//! content fingerprint that survives a renumbering of the source folder.

/// The key a message is imported under: `email|folder|UIDVALIDITY|UID`.
pub fn source_key(email: &str, folder: &str, uid_validity: u32, uid: u32) -> String {
    keyed(&source_key_prefix(email, folder, uid_validity), uid)
}

/// What the source keys of one folder's messages share (`email|folder|UIDVALIDITY|`): made
/// once per folder, as a key was three formatted strings per message.
pub fn source_key_prefix(email: &str, folder: &str, uid_validity: u32) -> String {
    format!("{}|{folder}|{uid_validity}|", email.to_ascii_lowercase())
}

/// The source key of the message `uid` under a [`source_key_prefix`].
pub fn keyed(prefix: &str, uid: u32) -> String {
    use std::fmt::Write;
    let mut key = String::with_capacity(prefix.len() + 10);
    key.push_str(prefix);
    let _ = write!(key, "{uid}");
    key
}

/// Message-ID, Date and size: the identity that survives a UIDVALIDITY change.
pub fn fingerprint(raw: &[u8]) -> String {
    fingerprint_of(raw, raw.len())
}

/// [`fingerprint`] of a message of `size` bytes from its header block alone (what a target
/// returns for `BODY.PEEK[HEADER]`), so a copy is recognised without downloading it.
pub fn fingerprint_of(header: &[u8], size: usize) -> String {
    let header_end = memchr::memmem::find(header, b"\r\n\r\n").unwrap_or(header.len());
    let block = &header[..header_end];
    // One pass over the header's lines (a line ends at LF, a CR before it dropped), the
    // first of each field kept; only the values found are decoded (lossily: a header may
    // hold any bytes). Stored fingerprints must not change: `reference` in the tests is the
    // earlier form this one must agree with.
    const NAMES: [&[u8]; 3] = [b"message-id", b"date", b"subject"];
    let mut values: [Option<&[u8]>; 3] = [None; 3];
    let mut rest = Some(block);
    while let Some(text) = rest
        && values.iter().any(Option::is_none)
    {
        let line = match memchr::memchr(b'\n', text) {
            Some(i) => {
                rest = Some(&text[i + 1..]);
                text[..i].strip_suffix(b"\r").unwrap_or(&text[..i])
            }
            None => {
                rest = None;
                text
            }
        };
        for (name, value) in NAMES.iter().zip(values.iter_mut()) {
            if value.is_none()
                && line.len() > name.len()
                && line[name.len()] == b':'
                && line[..name.len()].eq_ignore_ascii_case(name)
            {
                *value = Some(&line[name.len() + 1..]);
            }
        }
    }
    let field = |v: Option<&[u8]>| {
        v.map(|v| String::from_utf8_lossy(v).trim().to_string())
            .unwrap_or_default()
    };
    let id = field(values[0]);
    let subject = if id.is_empty() {
        field(values[2])
    } else {
        String::new()
    };
    let date = field(values[1]);
    let mut print = String::with_capacity(id.len() + date.len() + subject.len() + 24);
    for part in [&id, "|", &date, "|", &subject, "|"] {
        print.push_str(part);
    }
    use std::fmt::Write;
    let _ = write!(print, "{size}");
    print
}

/// The size of `raw` once every bare LF is a CRLF: what a server that stores line ends as
/// CRLF (Dovecot) counts as its RFC822.SIZE. Only a message with a bare LF in its first 8 KiB
/// is counted whole: the others are taken to end every line with CRLF (a whole scan of each
/// large message would cost a tenth of its copy; mixed line ends that start with CRLFs are
/// left to the size as it is).
pub fn wire_size(raw: &[u8]) -> u64 {
    let bare = |part: &[u8]| {
        memchr::memchr_iter(b'\n', part)
            .filter(|&i| i == 0 || part[i - 1] != b'\r')
            .count()
    };
    if bare(&raw[..raw.len().min(8 << 10)]) == 0 {
        return raw.len() as u64;
    }
    (raw.len() + bare(raw)) as u64
}

/// `fingerprint` as it would read for a message of `size` bytes (the same header fields).
pub fn resized(fingerprint: &str, size: u64) -> String {
    match fingerprint.rsplit_once('|') {
        Some((fields, _)) => format!("{fields}|{size}"),
        None => fingerprint.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The fingerprint as mailmig first computed it (what checkpoints hold).
    fn reference(raw: &[u8], size: usize) -> String {
        let header_end = memchr::memmem::find(raw, b"\r\n\r\n").unwrap_or(raw.len());
        let header = String::from_utf8_lossy(&raw[..header_end]);
        let field = |name: &str| {
            header
                .lines()
                .find(|l| {
                    l.get(..name.len())
                        .is_some_and(|p| p.eq_ignore_ascii_case(name))
                        && l.as_bytes().get(name.len()) == Some(&b':')
                })
                .map(|l| l[name.len() + 1..].trim().to_string())
                .unwrap_or_default()
        };
        format!(
            "{}|{}|{}|{}",
            field("Message-ID"),
            field("Date"),
            if field("Message-ID").is_empty() {
                field("Subject")
            } else {
                String::new()
            },
            size
        )
    }

    /// Header-like bytes: field names (in any case), separators, line ends and stray bytes.
    fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just(b"Message-ID:".to_vec()),
            Just(b"message-id:".to_vec()),
            Just(b"Date:".to_vec()),
            Just(b"DATE :".to_vec()),
            Just(b"Subject:".to_vec()),
            Just(b"Subject".to_vec()),
            Just(b"\r\n".to_vec()),
            Just(b"\n".to_vec()),
            Just(b"\r".to_vec()),
            Just(b"\r\n\r\n".to_vec()),
            Just(b" \t".to_vec()),
            Just(b"<1@x>".to_vec()),
            Just("é\u{a0}".as_bytes().to_vec()),
            Just(vec![0xff, 0xc3]),
            proptest::collection::vec(any::<u8>(), 0..4),
        ];
        proptest::collection::vec(piece, 0..24).prop_map(|p| p.concat())
    }

    proptest! {
        #[test]
        fn fingerprints_agree_with_the_stored_form(raw in header_bytes(), size in 0usize..1 << 20) {
            prop_assert_eq!(fingerprint_of(&raw, size), reference(&raw, size));
        }
    }

    #[test]
    fn a_bare_lf_message_is_known_by_its_crlf_size_too() {
        let lf = b"Message-ID: <1@x>\nDate: Mon\n\nbody\n";
        let crlf = b"Message-ID: <1@x>\r\nDate: Mon\r\n\r\nbody\r\n";
        assert_eq!(wire_size(lf), crlf.len() as u64);
        assert_eq!(wire_size(crlf), crlf.len() as u64);
        assert_eq!(wire_size(b"\na\r\nb\n\r\r\n"), 11);
        let mut long = b"a\r\n".repeat(3000);
        long.extend_from_slice(b"b\n");
        assert_eq!(
            wire_size(&long),
            long.len() as u64,
            "past 8 KiB of CRLFs the rest is not counted"
        );
        long.insert(0, b'\n');
        assert_eq!(wire_size(&long), long.len() as u64 + 2);
        assert_eq!(resized(&fingerprint(lf), wire_size(lf)), fingerprint(crlf));
    }

    #[test]
    fn fingerprints_never_panic_on_non_ascii() {
        let raw = "From: \"Zoë\" <z@x>\r\nSubjéct: é\r\nMessage-ID: <1@x>\r\n\r\nbody".as_bytes();
        assert!(fingerprint(raw).starts_with("<1@x>|"));
    }

    #[test]
    fn a_header_block_and_a_size_give_the_whole_message_s_fingerprint() {
        let raw = b"Message-ID: <1@x>\r\nDate: Mon\r\n\r\nbody";
        let header = &raw[..raw.len() - 4];
        assert_eq!(fingerprint_of(header, raw.len()), fingerprint(raw));
    }

    #[test]
    fn fingerprints_ignore_other_headers() {
        let a = b"Received: x\r\nMessage-ID: <1@x>\r\nDate: Mon\r\n\r\nbody";
        let b = b"Received: y\r\nMessage-ID: <1@x>\r\nDate: Mon\r\n\r\nbody";
        assert_eq!(fingerprint(a), fingerprint(b));
        let c = b"Message-ID: <2@x>\r\nDate: Mon\r\n\r\nbody";
        assert_ne!(fingerprint(a), fingerprint(c));
    }

    #[test]
    fn source_keys_lower_case_the_address_only() {
        assert_eq!(
            source_key("Terry@Contoso.edu", "INBOX", 7, 42),
            "terry@contoso.edu|INBOX|7|42"
        );
    }
}
