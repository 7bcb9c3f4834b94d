//! Reading stored messages: header fields, body sections, envelope parts.
//!
//! Only what FETCH, SEARCH and ENVELOPE need, over the raw bytes as stored (never re-encoded),
//! so what a client fetches is byte-identical to what was appended.

/// Splits raw bytes at the empty line; the header part keeps its terminating empty line.
pub fn split(raw: &[u8]) -> (&[u8], &[u8]) {
    // No header fields at all: the empty line comes first.
    if raw.starts_with(b"\r\n") {
        return raw.split_at(2);
    }
    if raw.starts_with(b"\n") {
        return raw.split_at(1);
    }
    if let Some(i) = find(raw, b"\r\n\r\n") {
        return raw.split_at(i + 4);
    }
    if let Some(i) = find(raw, b"\n\n") {
        return raw.split_at(i + 2);
    }
    (raw, &[])
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Header fields as (name, raw lines including folding and line end).
pub fn fields(raw: &[u8]) -> Vec<(String, &[u8])> {
    let (header, _) = split(raw);
    let mut out: Vec<(String, &[u8])> = Vec::new();
    let mut start = 0;
    let mut i = 0;
    let mut name: Option<String> = None;
    while i < header.len() {
        let end = header[i..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|p| i + p + 1)
            .unwrap_or(header.len());
        let line = &header[i..end];
        let continuation = matches!(line.first(), Some(b' ' | b'\t'));
        let blank = line == b"\r\n" || line == b"\n";
        if !continuation {
            if let Some(n) = name.take() {
                out.push((n, &header[start..i]));
            }
            if blank {
                break;
            }
            start = i;
            name = line
                .iter()
                .position(|&b| b == b':')
                .map(|c| String::from_utf8_lossy(&line[..c]).trim().to_string());
        }
        i = end;
    }
    if let Some(n) = name {
        out.push((n, &header[start..i]));
    }
    out
}

/// The unfolded value of the first field with this name.
pub fn header_value(raw: &[u8], name: &str) -> Option<String> {
    fields(raw)
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, lines)| {
            let text = String::from_utf8_lossy(lines);
            let value = text.split_once(':').map(|(_, v)| v).unwrap_or("");
            value
                .split(['\r', '\n'])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
}

/// The unfolded raw value of the first field with this name (line breaks of folding removed,
/// the whitespace after them kept; leading and trailing whitespace trimmed).
pub fn header_bytes(raw: &[u8], name: &str) -> Option<Vec<u8>> {
    header_all(raw, name).into_iter().next()
}

/// The unfolded raw values of every field with this name, in order.
pub fn header_all(raw: &[u8], name: &str) -> Vec<Vec<u8>> {
    fields(raw)
        .into_iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, lines)| {
            let colon = lines.iter().position(|&b| b == b':').map_or(0, |c| c + 1);
            let value: Vec<u8> = lines[colon..]
                .iter()
                .copied()
                .filter(|&b| b != b'\r' && b != b'\n')
                .collect();
            let start = value.iter().position(|b| !b.is_ascii_whitespace());
            let end = value.iter().rposition(|b| !b.is_ascii_whitespace());
            match (start, end) {
                (Some(a), Some(b)) => value[a..=b].to_vec(),
                _ => Vec::new(),
            }
        })
        .collect()
}

/// `BODY[HEADER.FIELDS (..)]` (or `.NOT` with `not`): the matching lines and the empty line.
pub fn header_fields(raw: &[u8], names: &[String], not: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, lines) in fields(raw) {
        let listed = names.iter().any(|n| n.eq_ignore_ascii_case(&name));
        if listed != not {
            out.extend_from_slice(lines);
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"From: \"Adams, Terry\" <terry@contoso.edu>\r\nSubject: long\r\n subject\r\nTo: a@x.org, B <b@y.org>\r\n\r\nbody\r\n";

    #[test]
    fn fields_and_values() {
        assert_eq!(
            header_value(MSG, "subject").as_deref(),
            Some("long subject")
        );
        assert_eq!(header_value(MSG, "Message-ID"), None);
        assert_eq!(
            header_fields(MSG, &["SUBJECT".into()], false),
            b"Subject: long\r\n subject\r\n\r\n"
        );
        let not = header_fields(MSG, &["Subject".into()], true);
        assert!(not.starts_with(b"From:") && !not.windows(7).any(|w| w == b"Subject"));
        assert_eq!(split(MSG).1, b"body\r\n");
    }
}
