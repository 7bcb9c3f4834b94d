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

/// The top-level MIME parts of a multipart message (`BODY[n]`), or the body as part 1.
pub fn part(raw: &[u8], number: u32) -> Option<&[u8]> {
    let (_, body) = split(raw);
    let boundary = header_value(raw, "Content-Type").and_then(|ct| {
        if !ct.to_ascii_lowercase().starts_with("multipart/") {
            return None;
        }
        let lower = ct.to_ascii_lowercase();
        let at = lower.find("boundary=")? + "boundary=".len();
        let rest = &ct[at..];
        let b = if let Some(q) = rest.strip_prefix('"') {
            q.split('"').next()?
        } else {
            rest.split([';', ' ']).next()?
        };
        Some(format!("--{b}"))
    });
    let Some(boundary) = boundary else {
        return (number == 1).then_some(body);
    };
    let mut parts = Vec::new();
    let mut rest = body;
    while let Some(pos) = find(rest, boundary.as_bytes()) {
        let after = &rest[pos + boundary.len()..];
        if after.starts_with(b"--") {
            break;
        }
        let after = after
            .strip_prefix(b"\r\n")
            .or_else(|| after.strip_prefix(b"\n"))
            .unwrap_or(after);
        let end = find(after, boundary.as_bytes()).unwrap_or(after.len());
        // The CRLF before a boundary belongs to the boundary.
        let mut content = &after[..end];
        content = content
            .strip_suffix(b"\r\n")
            .or_else(|| content.strip_suffix(b"\n"))
            .unwrap_or(content);
        parts.push(content);
        rest = &after[end..];
    }
    // A part's content is what follows its own MIME header.
    parts
        .get(number.checked_sub(1)? as usize)
        .map(|p| split(p).1)
}

/// One address of an address-list header: (display name, local part, domain).
pub type ParsedAddress = (Option<String>, String, String);

/// Parses an address-list header leniently (names, angle brackets, quoted commas).
pub fn addresses(value: &str) -> Vec<ParsedAddress> {
    let mut items = Vec::new();
    let mut current = String::new();
    let (mut quoted, mut angle) = (false, false);
    for c in value.chars() {
        match c {
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => {
                items.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    items.push(current);
    items
        .into_iter()
        .filter_map(|item| {
            let item = item.trim();
            if item.is_empty() {
                return None;
            }
            let (name, addr) = match (item.find('<'), item.rfind('>')) {
                (Some(a), Some(b)) if a < b => {
                    let name = item[..a].trim().trim_matches('"').trim();
                    (
                        (!name.is_empty()).then(|| name.to_string()),
                        &item[a + 1..b],
                    )
                }
                _ => (None, item),
            };
            let (local, host) = addr.rsplit_once('@').unwrap_or((addr, ""));
            Some((name, local.trim().to_string(), host.trim().to_string()))
        })
        .collect()
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

    #[test]
    fn address_lists() {
        let from = addresses(&header_value(MSG, "From").unwrap());
        assert_eq!(
            from,
            vec![(
                Some("Adams, Terry".into()),
                "terry".into(),
                "contoso.edu".into()
            )]
        );
        assert_eq!(addresses(&header_value(MSG, "To").unwrap()).len(), 2);
    }

    #[test]
    fn multipart_parts() {
        let m = b"Content-Type: multipart/mixed; boundary=\"XX\"\r\n\r\npre\r\n--XX\r\nContent-Type: text/plain\r\n\r\none\r\n--XX\r\n\r\ntwo\r\n--XX--\r\n";
        assert_eq!(part(m, 1), Some(&b"one"[..]));
        assert_eq!(part(m, 2), Some(&b"two"[..]));
        assert_eq!(part(m, 3), None);
        assert_eq!(part(MSG, 1), Some(&b"body\r\n"[..]));
    }
}
