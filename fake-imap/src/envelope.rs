//! ENVELOPE and address lists (RFC 3501 §7.4.2 over RFC 5322 §3.4 with the obsolete route
//! syntax of RFC 822), and the normalised address text that SEARCH FROM/TO/CC/BCC match.
//!
//! Strings are the header's own bytes, never decoded (RFC 3501 wants them as sent). A
//! display name is the phrase before `<...>`, else the last comment (`user@host (Name)`, as
//! Dovecot reads it); groups are `(NIL NIL "name" NIL) ... (NIL NIL NIL NIL)`.

use imap_codec::imap_types::core::NString;
use imap_codec::imap_types::envelope::{Address, Envelope};

use crate::message;
use crate::mime::{Token, istring, nstring, tokens};

/// One entry of an address list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    Mailbox {
        name: Option<Vec<u8>>,
        route: Option<Vec<u8>>,
        local: Vec<u8>,
        host: Vec<u8>,
    },
    GroupStart(Vec<u8>),
    GroupEnd,
}

/// Parses an address-list field value leniently: what cannot be read is left out.
pub fn parse_list(value: &[u8]) -> Vec<Entry> {
    let toks = tokens(value, false);
    let mut out = Vec::new();
    let mut item: Vec<Token> = Vec::new();
    let mut in_group = false;
    let mut angle = false;
    for tok in toks {
        match tok {
            Token::Special(b'<') => {
                angle = true;
                item.push(tok);
            }
            Token::Special(b'>') => {
                angle = false;
                item.push(tok);
            }
            Token::Special(b':') if !angle && !in_group => {
                let name = phrase(&item);
                item.clear();
                out.push(Entry::GroupStart(name));
                in_group = true;
            }
            Token::Special(b',') if !angle => out.extend(mailbox(std::mem::take(&mut item))),
            Token::Special(b';') if !angle => {
                out.extend(mailbox(std::mem::take(&mut item)));
                if in_group {
                    out.push(Entry::GroupEnd);
                    in_group = false;
                }
            }
            other => item.push(other),
        }
    }
    out.extend(mailbox(item));
    if in_group {
        out.push(Entry::GroupEnd);
    }
    out
}

/// Words of a phrase joined by single spaces (comments dropped, quotes removed).
fn phrase(toks: &[Token]) -> Vec<u8> {
    let words: Vec<&[u8]> = toks
        .iter()
        .filter_map(|t| match t {
            Token::Atom(a) | Token::Quoted(a) => Some(&a[..]),
            Token::Special(b'.') => Some(&b"."[..]),
            _ => None,
        })
        .collect();
    words.join(&b' ')
}

/// `local@domain` text from addr-spec tokens (comments dropped).
fn spec_text(toks: &[Token]) -> Vec<u8> {
    let mut out = Vec::new();
    for t in toks {
        match t {
            Token::Atom(a) => out.extend_from_slice(a),
            Token::Quoted(q) => {
                out.push(b'"');
                out.extend_from_slice(q);
                out.push(b'"');
            }
            Token::Literal(l) => {
                out.push(b'[');
                out.extend_from_slice(l);
                out.push(b']');
            }
            Token::Special(c) => out.push(*c),
            Token::Comment(_) => {}
        }
    }
    out
}

fn split_spec(toks: &[Token]) -> (Vec<u8>, Vec<u8>) {
    match toks.iter().rposition(|t| *t == Token::Special(b'@')) {
        Some(at) => (spec_text(&toks[..at]), spec_text(&toks[at + 1..])),
        None => (spec_text(toks), Vec::new()),
    }
}

fn mailbox(item: Vec<Token>) -> Option<Entry> {
    if item.iter().all(|t| matches!(t, Token::Comment(_))) {
        return None;
    }
    if let Some(open) = item.iter().position(|t| *t == Token::Special(b'<')) {
        let close = item[open..]
            .iter()
            .position(|t| *t == Token::Special(b'>'))
            .map_or(item.len(), |c| open + c);
        let inside = &item[open + 1..close];
        // An obsolete source route: `<@a,@b:user@host>`.
        let (route, spec) = match inside.iter().position(|t| *t == Token::Special(b':')) {
            Some(colon) if inside.first() == Some(&Token::Special(b'@')) => {
                (Some(spec_text(&inside[..colon])), &inside[colon + 1..])
            }
            _ => (None, inside),
        };
        let (local, host) = split_spec(spec);
        let name = phrase(&item[..open]);
        return Some(Entry::Mailbox {
            name: (!name.is_empty()).then_some(name),
            route,
            local,
            host,
        });
    }
    let name = item.iter().rev().find_map(|t| match t {
        Token::Comment(c) if !c.is_empty() => Some(c.clone()),
        _ => None,
    });
    let (local, host) = split_spec(&item);
    Some(Entry::Mailbox {
        name,
        route: None,
        local,
        host,
    })
}

fn imap_addresses(entries: &[Entry]) -> Vec<Address<'static>> {
    entries
        .iter()
        .map(|e| match e {
            Entry::Mailbox {
                name,
                route,
                local,
                host,
            } => Address {
                name: nstring(name.clone()),
                adl: nstring(route.clone()),
                mailbox: NString(Some(istring(local))),
                host: NString(Some(istring(host))),
            },
            Entry::GroupStart(name) => Address {
                name: NString(None),
                adl: NString(None),
                mailbox: NString(Some(istring(name))),
                host: NString(None),
            },
            Entry::GroupEnd => Address {
                name: NString(None),
                adl: NString(None),
                mailbox: NString(None),
                host: NString(None),
            },
        })
        .collect()
}

/// The ENVELOPE of a message (or of the message inside a message/rfc822 part), from its
/// header.
pub fn envelope(header: &[u8]) -> Envelope<'static> {
    let field = |name: &str| message::header_bytes(header, name);
    let list = |name: &str| field(name).map(|v| parse_list(&v)).unwrap_or_default();
    let from = list("From");
    // RFC 3501: Sender and Reply-To default to From when absent or empty.
    let or_from = |entries: Vec<Entry>| {
        if entries.is_empty() {
            from.clone()
        } else {
            entries
        }
    };
    let sender = or_from(list("Sender"));
    let reply_to = or_from(list("Reply-To"));
    Envelope {
        date: nstring(field("Date")),
        subject: nstring(field("Subject")),
        from: imap_addresses(&from),
        sender: imap_addresses(&sender),
        reply_to: imap_addresses(&reply_to),
        to: imap_addresses(&list("To")),
        cc: imap_addresses(&list("Cc")),
        bcc: imap_addresses(&list("Bcc")),
        in_reply_to: nstring(field("In-Reply-To")),
        message_id: nstring(field("Message-ID")),
    }
}

/// The text SEARCH FROM/TO/CC/BCC look in: every address of every such field as
/// `Name <local@host>`, group names included, lower case.
pub fn search_text(header: &[u8], field: &str) -> Option<String> {
    let values = message::header_all(header, field);
    if values.is_empty() {
        return None;
    }
    let mut out = String::new();
    for value in values {
        for entry in parse_list(&value) {
            let text = match entry {
                Entry::Mailbox {
                    name, local, host, ..
                } => {
                    let spec = if host.is_empty() {
                        String::from_utf8_lossy(&local).into_owned()
                    } else {
                        format!(
                            "{}@{}",
                            String::from_utf8_lossy(&local),
                            String::from_utf8_lossy(&host)
                        )
                    };
                    match name {
                        Some(n) => format!("{} <{spec}>", String::from_utf8_lossy(&n)),
                        None => spec,
                    }
                }
                Entry::GroupStart(name) => format!("{}:", String::from_utf8_lossy(&name)),
                Entry::GroupEnd => ";".into(),
            };
            out.push_str(&text);
            out.push_str(", ");
        }
    }
    Some(out.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mb(name: Option<&str>, local: &str, host: &str) -> Entry {
        Entry::Mailbox {
            name: name.map(|n| n.as_bytes().to_vec()),
            route: None,
            local: local.as_bytes().to_vec(),
            host: host.as_bytes().to_vec(),
        }
    }

    #[test]
    fn names_comments_and_quotes() {
        assert_eq!(
            parse_list(b"\"Adams, Terry\" <terry@contoso.edu>, b@y.org (Bee)"),
            vec![
                mb(Some("Adams, Terry"), "terry", "contoso.edu"),
                mb(Some("Bee"), "b", "y.org")
            ]
        );
        assert_eq!(
            parse_list(b"<user (c)@ (c) domain.org>"),
            vec![mb(None, "user", "domain.org")]
        );
    }

    #[test]
    fn groups_and_routes() {
        assert_eq!(
            parse_list(b"group: g1@d1.org;, empty:;"),
            vec![
                Entry::GroupStart(b"group".to_vec()),
                mb(None, "g1", "d1.org"),
                Entry::GroupEnd,
                Entry::GroupStart(b"empty".to_vec()),
                Entry::GroupEnd,
            ]
        );
        assert_eq!(
            parse_list(b"<@route:user@domain>"),
            vec![Entry::Mailbox {
                name: None,
                route: Some(b"@route".to_vec()),
                local: b"user".to_vec(),
                host: b"domain".to_vec()
            }]
        );
        assert!(parse_list(b"  ").is_empty());
    }

    #[test]
    fn search_text_is_normalised() {
        let h = b"From: <user-from (comment)@ (comment) domain.org>\r\nTo: a@b\r\nTo: RealTo <c@d>\r\n\r\n";
        assert_eq!(
            search_text(h, "from").as_deref(),
            Some("user-from@domain.org, ")
        );
        assert!(search_text(h, "to").unwrap().contains("realto <c@d>"));
        assert_eq!(search_text(h, "cc"), None);
    }
}
