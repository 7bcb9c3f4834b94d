//! The MIME structure of a stored message, as IMAP sees it: the part tree with byte ranges
//! into the raw message, section numbers (`1.2`, `2.HEADER`, `3.MIME`), BODY and
//! BODYSTRUCTURE.
//!
//! Hand-written on purpose, over the raw bytes: IMAP needs exact byte ranges of every part's
//! header and body (a section fetch is a slice of what was appended), parameter values and
//! header texts as they are written (not RFC 2047/2231-decoded, as a MIME library hands them
//! out) and its own part numbering through message/rfc822. Header fields are read by
//! `message.rs`.

use std::ops::Range;

use imap_codec::imap_types::body::{
    BasicFields, Body, BodyStructure, Disposition, Language, Location, MultiPartExtensionData,
    SinglePartExtensionData, SpecificFields,
};
use imap_codec::imap_types::core::{IString, Literal, NString, Vec1};

use crate::message;

/// Nesting deeper than this is served as an opaque leaf (a hostile message cannot recurse us
/// out of stack).
const MAX_DEPTH: usize = 32;

/// A parsed `Content-Type` (or `Content-Disposition`) value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Typed {
    pub main: String,
    pub sub: String,
    pub params: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Typed {
    fn text_plain() -> Self {
        Self {
            main: "text".into(),
            sub: "plain".into(),
            params: vec![(b"charset".to_vec(), b"us-ascii".to_vec())],
        }
    }

    fn message_rfc822() -> Self {
        Self {
            main: "message".into(),
            sub: "rfc822".into(),
            params: Vec::new(),
        }
    }

    fn is(&self, main: &str, sub: &str) -> bool {
        self.main.eq_ignore_ascii_case(main) && self.sub.eq_ignore_ascii_case(sub)
    }

    fn param(&self, name: &str) -> Option<&[u8]> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| &v[..])
    }
}

/// One MIME entity: the top-level message, a body part, or a message inside message/rfc822.
#[derive(Clone, Debug)]
pub struct Entity {
    /// The header, with the empty line that ends it.
    pub header: Range<usize>,
    pub body: Range<usize>,
    pub ctype: Typed,
    pub kind: Kind,
}

#[derive(Clone, Debug)]
pub enum Kind {
    Leaf,
    Multipart(Vec<Entity>),
    /// message/rfc822: the message it carries.
    Message(Box<Entity>),
}

/// Parses a whole message.
pub fn parse(raw: &[u8]) -> Entity {
    entity(raw, 0..raw.len(), Typed::text_plain(), 0)
}

fn entity(raw: &[u8], range: Range<usize>, default: Typed, depth: usize) -> Entity {
    let bytes = &raw[range.clone()];
    let (head, _) = message::split(bytes);
    let header = range.start..range.start + head.len();
    let body = header.end..range.end;
    let ctype = message::header_bytes(head, "Content-Type")
        .and_then(|v| parse_typed(&v, true))
        .unwrap_or(default);
    let kind = if depth >= MAX_DEPTH {
        Kind::Leaf
    } else if ctype.main.eq_ignore_ascii_case("multipart") {
        let child_default = if ctype.sub.eq_ignore_ascii_case("digest") {
            Typed::message_rfc822()
        } else {
            Typed::text_plain()
        };
        match ctype.param("boundary") {
            Some(boundary) => Kind::Multipart(
                parts(raw, body.clone(), boundary)
                    .into_iter()
                    .map(|r| entity(raw, r, child_default.clone(), depth + 1))
                    .collect(),
            ),
            None => Kind::Multipart(Vec::new()),
        }
    } else if ctype.is("message", "rfc822") {
        Kind::Message(Box::new(entity(
            raw,
            body.clone(),
            Typed::text_plain(),
            depth + 1,
        )))
    } else {
        Kind::Leaf
    };
    Entity {
        header,
        body,
        ctype,
        kind,
    }
}

/// The ranges of a multipart body's parts. A part ends before the line break that precedes
/// the next boundary line (RFC 2046 §5.1.1: that line break belongs to the boundary).
fn parts(raw: &[u8], body: Range<usize>, boundary: &[u8]) -> Vec<Range<usize>> {
    let mut delimiter = b"--".to_vec();
    delimiter.extend_from_slice(boundary);
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut line = body.start;
    while line < body.end {
        let end = raw[line..body.end]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(body.end, |p| line + p + 1);
        let text = &raw[line..end];
        if let Some(rest) = text.strip_prefix(&delimiter[..]) {
            let closing = rest.starts_with(b"--");
            let rest = if closing { &rest[2..] } else { rest };
            if rest.iter().all(|b| b.is_ascii_whitespace()) {
                if let Some(s) = start.take() {
                    out.push(s..before_line_break(raw, s, line));
                }
                if closing {
                    return out;
                }
                start = Some(end);
            }
        }
        line = end;
    }
    if let Some(s) = start {
        out.push(s..body.end);
    }
    out
}

fn before_line_break(raw: &[u8], floor: usize, at: usize) -> usize {
    let mut end = at;
    if end > floor && raw[end - 1] == b'\n' {
        end -= 1;
        if end > floor && raw[end - 1] == b'\r' {
            end -= 1;
        }
    }
    end
}

/// Follows part numbers: `[]` is the message, `[n]` the n-th part of a multipart (or, for a
/// single-part entity, `1` its body); after a message/rfc822 part the numbers go on inside
/// the message it carries.
pub fn locate<'e>(top: &'e Entity, path: &[u32]) -> Option<&'e Entity> {
    let mut current = top;
    for (i, &n) in path.iter().enumerate() {
        let container = if i == 0 {
            current
        } else {
            match &current.kind {
                Kind::Message(inner) => inner,
                Kind::Multipart(_) => current,
                Kind::Leaf => return None,
            }
        };
        current = match &container.kind {
            Kind::Multipart(children) => children.get(n.checked_sub(1)? as usize)?,
            _ if n == 1 => container,
            _ => return None,
        };
    }
    Some(current)
}

/// The message a `n.HEADER` / `n.TEXT` section refers to: the one a message/rfc822 part
/// carries (or the top-level message for an empty path).
pub fn message_at<'e>(top: &'e Entity, path: &[u32]) -> Option<&'e Entity> {
    if path.is_empty() {
        return Some(top);
    }
    match &locate(top, path)?.kind {
        Kind::Message(inner) => Some(inner),
        _ => None,
    }
}

/// BODYSTRUCTURE (`extended`) or BODY of an entity.
pub fn structure(raw: &[u8], e: &Entity, extended: bool) -> BodyStructure<'static> {
    if let Kind::Multipart(children) = &e.kind {
        let bodies: Vec<BodyStructure<'static>> = children
            .iter()
            .map(|c| structure(raw, c, extended))
            .collect();
        // An empty multipart has no parts to show; real servers show one empty text part.
        let bodies = Vec1::try_from(bodies).unwrap_or_else(|_| {
            Vec1::from(leaf(
                raw,
                &Entity {
                    header: e.body.start..e.body.start,
                    body: e.body.start..e.body.start,
                    ctype: Typed::text_plain(),
                    kind: Kind::Leaf,
                },
                extended,
            ))
        });
        let extension_data = extended.then(|| MultiPartExtensionData {
            parameter_list: params(&e.ctype),
            tail: Some(disposition(raw, e)),
        });
        return BodyStructure::Multi {
            bodies,
            subtype: istring(e.ctype.sub.as_bytes()),
            extension_data,
        };
    }
    leaf(raw, e, extended)
}

fn leaf(raw: &[u8], e: &Entity, extended: bool) -> BodyStructure<'static> {
    let head = &raw[e.header.clone()];
    let body = &raw[e.body.clone()];
    let field = |name: &str| message::header_bytes(head, name);
    let encoding = field("Content-Transfer-Encoding")
        .map(|v| String::from_utf8_lossy(&v).trim().to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "7bit".into());
    let mut parameter_list = params(&e.ctype);
    // A text part without a charset is US-ASCII (RFC 2045 §5.2); servers say so.
    if e.ctype.main.eq_ignore_ascii_case("text") && e.ctype.param("charset").is_none() {
        parameter_list.push((istring(b"charset"), istring(b"us-ascii")));
    }
    let basic = BasicFields {
        parameter_list,
        id: nstring(field("Content-ID")),
        description: nstring(field("Content-Description")),
        content_transfer_encoding: istring(encoding.as_bytes()),
        size: u32::try_from(body.len()).unwrap_or(u32::MAX),
    };
    let specific = match &e.kind {
        Kind::Message(inner) => SpecificFields::Message {
            envelope: Box::new(crate::envelope::envelope(&raw[inner.header.clone()])),
            body_structure: Box::new(structure(raw, inner, extended)),
            number_of_lines: lines(body),
        },
        _ if e.ctype.main.eq_ignore_ascii_case("text") => SpecificFields::Text {
            subtype: istring(e.ctype.sub.as_bytes()),
            number_of_lines: lines(body),
        },
        _ => SpecificFields::Basic {
            r#type: istring(e.ctype.main.as_bytes()),
            subtype: istring(e.ctype.sub.as_bytes()),
        },
    };
    let extension_data = extended.then(|| SinglePartExtensionData {
        md5: nstring(field("Content-MD5")),
        tail: Some(disposition(raw, e)),
    });
    BodyStructure::Single {
        body: Body { basic, specific },
        extension_data,
    }
}

fn disposition(raw: &[u8], e: &Entity) -> Disposition<'static> {
    let head = &raw[e.header.clone()];
    let disposition = message::header_bytes(head, "Content-Disposition")
        .and_then(|v| parse_typed(&v, false))
        .map(|d| (istring(d.main.as_bytes()), params(&d)));
    let language = message::header_bytes(head, "Content-Language")
        .map(|v| {
            String::from_utf8_lossy(&v)
                .split(',')
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty())
                .map(|l| istring(l.as_bytes()))
                .collect()
        })
        .unwrap_or_default();
    Disposition {
        disposition,
        tail: Some(Language {
            language,
            tail: Some(Location {
                location: nstring(message::header_bytes(head, "Content-Location")),
                extensions: Vec::new(),
            }),
        }),
    }
}

fn params(t: &Typed) -> Vec<(IString<'static>, IString<'static>)> {
    t.params
        .iter()
        .map(|(n, v)| (istring(n), istring(v)))
        .collect()
}

/// Lines of a body as servers count them: line breaks, plus an unterminated last line.
fn lines(body: &[u8]) -> u32 {
    let breaks = body.iter().filter(|&&b| b == b'\n').count();
    let tail = usize::from(!body.is_empty() && !body.ends_with(b"\n"));
    u32::try_from(breaks + tail).unwrap_or(u32::MAX)
}

/// An IMAP string for any bytes: quoted when it can be, a literal otherwise.
pub fn istring(bytes: &[u8]) -> IString<'static> {
    IString::try_from(String::from_utf8_lossy(bytes).into_owned())
        .ok()
        .filter(|s| matches!(s, IString::Quoted(_)) || std::str::from_utf8(bytes).is_ok())
        .unwrap_or_else(|| IString::Literal(Literal::unvalidated(bytes.to_vec())))
}

pub fn nstring(value: Option<Vec<u8>>) -> NString<'static> {
    NString(value.map(|v| istring(&v)))
}

/// A lexical token of a structured header field (RFC 5322 §3.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Token {
    Atom(Vec<u8>),
    Quoted(Vec<u8>),
    Comment(Vec<u8>),
    Literal(Vec<u8>),
    Special(u8),
}

/// Splits a structured field value into tokens. With `mime`, `/`, `=` and `?` are specials
/// too (RFC 2045's tspecials).
pub fn tokens(value: &[u8], mime: bool) -> Vec<Token> {
    let specials: &[u8] = if mime {
        b"()<>@,;:\\\"/[]?="
    } else {
        b"()<>@,;:\\\".[]"
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < value.len() {
        let b = value[i];
        match b {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'"' => {
                let (text, next) = delimited(value, i + 1, b'"');
                out.push(Token::Quoted(text));
                i = next;
            }
            b'(' => {
                let mut depth = 1;
                let mut text = Vec::new();
                i += 1;
                while i < value.len() && depth > 0 {
                    match value[i] {
                        b'\\' if i + 1 < value.len() => {
                            text.push(value[i + 1]);
                            i += 1;
                        }
                        b'(' => {
                            depth += 1;
                            text.push(b'(');
                        }
                        b')' => {
                            depth -= 1;
                            if depth > 0 {
                                text.push(b')');
                            }
                        }
                        c => text.push(c),
                    }
                    i += 1;
                }
                out.push(Token::Comment(text));
            }
            b'[' if !mime => {
                let (text, next) = delimited(value, i + 1, b']');
                out.push(Token::Literal(text));
                i = next;
            }
            _ if specials.contains(&b) => {
                out.push(Token::Special(b));
                i += 1;
            }
            _ => {
                let start = i;
                while i < value.len()
                    && !specials.contains(&value[i])
                    && !matches!(value[i], b' ' | b'\t' | b'\r' | b'\n')
                {
                    i += 1;
                }
                out.push(Token::Atom(value[start..i].to_vec()));
            }
        }
    }
    out
}

/// Text up to an unescaped `end`; returns it and the index after `end`.
fn delimited(value: &[u8], mut i: usize, end: u8) -> (Vec<u8>, usize) {
    let mut text = Vec::new();
    while i < value.len() {
        match value[i] {
            b'\\' if i + 1 < value.len() => {
                text.push(value[i + 1]);
                i += 2;
            }
            c if c == end => return (text, i + 1),
            b'\r' | b'\n' => i += 1,
            c => {
                text.push(c);
                i += 1;
            }
        }
    }
    (text, i)
}

/// `type/subtype; name=value ...` (Content-Type, `with_subtype`) or `value; name=value ...`
/// (Content-Disposition). None when the value is unreadable.
pub fn parse_typed(value: &[u8], with_subtype: bool) -> Option<Typed> {
    let toks: Vec<Token> = tokens(value, true)
        .into_iter()
        .filter(|t| !matches!(t, Token::Comment(_)))
        .collect();
    let word = |t: Option<&Token>| match t {
        Some(Token::Atom(a)) | Some(Token::Quoted(a)) => Some(String::from_utf8_lossy(a).into()),
        _ => None,
    };
    let main: String = word(toks.first())?;
    let (sub, mut i) = if with_subtype {
        if toks.get(1) != Some(&Token::Special(b'/')) {
            return None;
        }
        (word(toks.get(2))?, 3)
    } else {
        (String::new(), 1)
    };
    let mut params = Vec::new();
    while i < toks.len() {
        if toks[i] != Token::Special(b';') {
            i += 1;
            continue;
        }
        match (toks.get(i + 1), toks.get(i + 2), toks.get(i + 3)) {
            (
                Some(Token::Atom(name)),
                Some(Token::Special(b'=')),
                Some(Token::Atom(v) | Token::Quoted(v)),
            ) => {
                params.push((name.clone(), v.clone()));
                i += 4;
            }
            _ => i += 1,
        }
    }
    Some(Typed { main, sub, params })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NESTED: &[u8] = b"Content-Type: multipart/mixed; boundary=\"a b\"\r\n\r\npre\r\n--a b\r\nContent-Type: text/plain\r\n\r\none\r\n--a b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\nContent-Type: multipart/alternative; boundary=in\r\n\r\n--in\r\n\r\nx\r\n--in\r\nContent-Type: text/html\r\n\r\n<p>y</p>\r\n--in--\r\n\r\n--a b--\r\nepilogue\r\n";

    fn slice<'a>(raw: &'a [u8], r: &Range<usize>) -> &'a [u8] {
        &raw[r.clone()]
    }

    #[test]
    fn parts_and_sections() {
        let top = parse(NESTED);
        let one = locate(&top, &[1]).unwrap();
        assert_eq!(slice(NESTED, &one.body), b"one");
        assert_eq!(
            slice(NESTED, &one.header),
            b"Content-Type: text/plain\r\n\r\n"
        );
        let two = locate(&top, &[2]).unwrap();
        assert!(matches!(two.kind, Kind::Message(_)));
        let inner = message_at(&top, &[2]).unwrap();
        assert!(slice(NESTED, &inner.header).starts_with(b"Subject: inner"));
        assert_eq!(slice(NESTED, &locate(&top, &[2, 1]).unwrap().body), b"x");
        assert_eq!(
            slice(NESTED, &locate(&top, &[2, 2]).unwrap().body),
            b"<p>y</p>"
        );
        assert!(locate(&top, &[3]).is_none());
        assert!(locate(&top, &[1, 1]).is_none(), "a text part has no parts");
    }

    #[test]
    fn single_part_message_is_its_own_part_one() {
        let raw = b"Subject: x\r\n\r\nbody\r\n";
        let top = parse(raw);
        let one = locate(&top, &[1]).unwrap();
        assert_eq!(slice(raw, &one.body), b"body\r\n");
        assert!(locate(&top, &[2]).is_none());
        assert_eq!(top.ctype, Typed::text_plain(), "the RFC 2045 default");
    }

    #[test]
    fn content_type_with_comments_and_quotes() {
        let t = parse_typed(
            b"Text/Plain (a comment); charset=\"utf-8\"; format=flowed",
            true,
        )
        .unwrap();
        assert_eq!((t.main.as_str(), t.sub.as_str()), ("Text", "Plain"));
        assert_eq!(t.param("CHARSET"), Some(&b"utf-8"[..]));
        assert_eq!(t.param("format"), Some(&b"flowed"[..]));
        assert!(parse_typed(b"garbage", true).is_none());
    }

    #[test]
    fn line_counts() {
        assert_eq!(lines(b"a\r\nb\r\n"), 2);
        assert_eq!(lines(b"a\r\nb"), 2);
        assert_eq!(lines(b""), 0);
    }
}
