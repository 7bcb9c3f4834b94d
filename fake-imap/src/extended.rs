//! Command syntax imap-codec does not parse: ESEARCH's `SEARCH RETURN (...)` (RFC 4731),
//! LIST-EXTENDED's selection and return options and pattern lists (RFC 5258, RFC 5819) and
//! MULTIAPPEND's several messages (RFC 3502).
//!
//! Only the extension's own part is read here; every piece that has a base-protocol meaning
//! (search keys, mailbox names, flags, dates, message literals, status items) is handed to
//! imap-codec as a base command, so its validation applies unchanged.

use bounded_static::IntoBoundedStatic;
use imap_codec::CommandCodec;
use imap_codec::decode::Decoder;
use imap_codec::imap_types::command::{Command, CommandBody};
use imap_codec::imap_types::status::StatusDataItemName;

use crate::cmd::search::Return;

/// What a command carries beyond its base-protocol form.
#[derive(Debug)]
pub enum Extra {
    SearchReturn(Return),
    List(ListArgs),
    /// Every message of a MULTIAPPEND (the command itself holds the first).
    MultiAppend(Vec<Command<'static>>),
}

/// LIST-EXTENDED arguments, names still as sent (modified UTF-7).
#[derive(Debug, Default, Clone)]
pub struct ListArgs {
    pub subscribed: bool,
    pub recursive_match: bool,
    pub special_use_only: bool,
    pub reference: String,
    pub patterns: Vec<String>,
    pub return_children: bool,
    pub return_subscribed: bool,
    pub return_special_use: bool,
    pub return_status: Option<Vec<StatusDataItemName>>,
}

/// The outcome of trying the extension syntaxes on a message imap-codec refused.
pub enum Parsed {
    Command(Box<Command<'static>>, Extra),
    /// It is one of these commands, but wrong: BAD with this text.
    Bad(String),
    /// Not an extended command.
    NotOurs,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Atom(String),
    Str(Vec<u8>),
    List(Vec<Tok>),
    /// A literal: its bytes, and the byte range of `{n}\r\n<bytes>` in the line.
    Literal(Vec<u8>),
}

impl Tok {
    fn text(&self) -> Option<String> {
        match self {
            Tok::Atom(a) => Some(a.clone()),
            Tok::Str(s) | Tok::Literal(s) => Some(String::from_utf8_lossy(s).into_owned()),
            Tok::List(_) => None,
        }
    }
}

/// Splits command arguments into tokens; `(...)` nests.
fn tokenize(input: &[u8]) -> Option<(Vec<Tok>, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b' ' => i += 1,
            b'\r' | b'\n' => break,
            b')' => return Some((out, i + 1)),
            b'(' => {
                let (inner, used) = tokenize(&input[i + 1..])?;
                out.push(Tok::List(inner));
                i += 1 + used;
            }
            b'"' => {
                let mut s = Vec::new();
                i += 1;
                loop {
                    match *input.get(i)? {
                        b'\\' => {
                            s.push(*input.get(i + 1)?);
                            i += 2;
                        }
                        b'"' => {
                            i += 1;
                            break;
                        }
                        c => {
                            s.push(c);
                            i += 1;
                        }
                    }
                }
                out.push(Tok::Str(s));
            }
            b'{' | b'~' if input.get(i + usize::from(input[i] == b'~')) == Some(&b'{') => {
                let start = i + usize::from(input[i] == b'~');
                let close = input[start..].iter().position(|&b| b == b'}')? + start;
                let spec = std::str::from_utf8(&input[start + 1..close]).ok()?;
                let n: usize = spec.trim_end_matches(['+', '-']).parse().ok()?;
                let data = close.checked_add(3)?; // "}\r\n"
                let end = data.checked_add(n)?;
                let bytes = input.get(data..end)?.to_vec();
                out.push(Tok::Literal(bytes));
                i = end;
            }
            _ => {
                let start = i;
                while i < input.len() && !matches!(input[i], b' ' | b'(' | b')' | b'\r' | b'\n') {
                    i += 1;
                }
                out.push(Tok::Atom(
                    String::from_utf8_lossy(&input[start..i]).into_owned(),
                ));
            }
        }
    }
    Some((out, i))
}

fn decode(bytes: &[u8]) -> Option<Command<'static>> {
    let (rest, command) = CommandCodec::default().decode(bytes).ok()?;
    rest.is_empty().then(|| command.into_static())
}

/// Quotes a name for a rebuilt base command.
fn quoted(text: &[u8]) -> Vec<u8> {
    let mut out = vec![b'"'];
    for &b in text {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
    out
}

/// Tries the extension syntaxes on a whole command message (line and literals).
pub fn parse(message: &[u8]) -> Parsed {
    let Some(sp) = message.iter().position(|&b| b == b' ') else {
        return Parsed::NotOurs;
    };
    let tag = &message[..sp];
    let rest = &message[sp + 1..];
    let word_end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
    let verb = String::from_utf8_lossy(&rest[..word_end]).to_ascii_uppercase();
    let args = &rest[(word_end + 1).min(rest.len())..];
    match verb.as_str() {
        "SEARCH" => search(tag, b"SEARCH", args),
        "UID" => {
            let next = args.iter().position(|&b| b == b' ').unwrap_or(args.len());
            if String::from_utf8_lossy(&args[..next]).eq_ignore_ascii_case("SEARCH") {
                search(tag, b"UID SEARCH", &args[(next + 1).min(args.len())..])
            } else {
                Parsed::NotOurs
            }
        }
        "LIST" => list(tag, args),
        "APPEND" => multiappend(tag, args),
        _ => Parsed::NotOurs,
    }
}

fn search(tag: &[u8], verb: &[u8], args: &[u8]) -> Parsed {
    if args.len() < 7 || !args[..7].eq_ignore_ascii_case(b"RETURN ") {
        return Parsed::NotOurs;
    }
    let Some((toks, _)) = tokenize(&args[7..]) else {
        return Parsed::Bad("Invalid RETURN options".into());
    };
    let Some(Tok::List(options)) = toks.first() else {
        return Parsed::Bad("RETURN needs a list of options".into());
    };
    let words: Vec<String> = options.iter().filter_map(Tok::text).collect();
    let ret = match Return::parse(&words) {
        Ok(r) => r,
        Err(e) => return Parsed::Bad(e),
    };
    // The criteria follow the option list.
    let close = args[7..].iter().position(|&b| b == b')').map(|p| 7 + p + 1);
    let Some(close) = close else {
        return Parsed::Bad("Invalid RETURN options".into());
    };
    let mut base = tag.to_vec();
    base.push(b' ');
    base.extend_from_slice(verb);
    base.extend_from_slice(&args[close..]);
    match decode(&base) {
        Some(command) => Parsed::Command(Box::new(command), Extra::SearchReturn(ret)),
        None => Parsed::Bad("Error in SEARCH criteria".into()),
    }
}

fn list(tag: &[u8], args: &[u8]) -> Parsed {
    let Some((toks, _)) = tokenize(args) else {
        return Parsed::NotOurs;
    };
    let mut i = 0;
    let mut out = ListArgs::default();
    if let Some(Tok::List(selection)) = toks.first() {
        for opt in selection {
            match opt.text().map(|t| t.to_ascii_uppercase()).as_deref() {
                Some("SUBSCRIBED") => out.subscribed = true,
                Some("REMOTE") => {}
                Some("RECURSIVEMATCH") => out.recursive_match = true,
                Some("SPECIAL-USE") => out.special_use_only = true,
                _ => return Parsed::Bad("Unknown LIST selection option".into()),
            }
        }
        // RFC 5258 §3: RECURSIVEMATCH needs a selection option it can apply to.
        if out.recursive_match && !out.subscribed && !out.special_use_only {
            return Parsed::Bad("RECURSIVEMATCH needs another selection option".into());
        }
        i = 1;
    }
    let Some(reference) = toks.get(i).and_then(Tok::text) else {
        return Parsed::NotOurs;
    };
    out.reference = reference;
    match toks.get(i + 1) {
        Some(Tok::List(patterns)) => {
            out.patterns = patterns.iter().filter_map(Tok::text).collect();
            if out.patterns.is_empty() {
                return Parsed::Bad("Empty pattern list".into());
            }
        }
        Some(t) => out.patterns = vec![t.text().unwrap_or_default()],
        None => return Parsed::NotOurs,
    }
    match (toks.get(i + 2), toks.get(i + 3)) {
        (None, _) => {}
        (Some(Tok::Atom(r)), Some(Tok::List(options))) if r.eq_ignore_ascii_case("RETURN") => {
            let mut j = 0;
            while j < options.len() {
                match options[j].text().map(|t| t.to_ascii_uppercase()).as_deref() {
                    Some("CHILDREN") => out.return_children = true,
                    Some("SUBSCRIBED") => out.return_subscribed = true,
                    Some("SPECIAL-USE") => out.return_special_use = true,
                    Some("STATUS") => {
                        let Some(Tok::List(items)) = options.get(j + 1) else {
                            return Parsed::Bad("STATUS needs a list of items".into());
                        };
                        let words: Vec<String> = items.iter().filter_map(Tok::text).collect();
                        let probe = format!("a STATUS INBOX ({})\r\n", words.join(" "));
                        match decode(probe.as_bytes()).map(|c| c.body) {
                            Some(CommandBody::Status { item_names, .. }) => {
                                out.return_status = Some(item_names.into_owned());
                            }
                            _ => return Parsed::Bad("Invalid STATUS items".into()),
                        }
                        j += 1;
                    }
                    _ => return Parsed::Bad("Unknown LIST return option".into()),
                }
                j += 1;
            }
        }
        _ => return Parsed::Bad("Invalid LIST arguments".into()),
    }
    // The base command: the first pattern, so that labels and faults see a LIST.
    let mut base = tag.to_vec();
    base.extend_from_slice(b" LIST ");
    base.extend_from_slice(&quoted(out.reference.as_bytes()));
    base.push(b' ');
    base.extend_from_slice(&quoted(out.patterns[0].as_bytes()));
    base.extend_from_slice(b"\r\n");
    match decode(&base) {
        Some(command) => Parsed::Command(Box::new(command), Extra::List(out)),
        None => Parsed::Bad("Invalid mailbox name".into()),
    }
}

fn multiappend(tag: &[u8], args: &[u8]) -> Parsed {
    let Some((toks, _)) = tokenize(args) else {
        return Parsed::NotOurs;
    };
    let Some(mailbox) = toks.first().and_then(Tok::text) else {
        return Parsed::NotOurs;
    };
    let mut commands = Vec::new();
    let mut flags: Option<&Vec<Tok>> = None;
    let mut date: Option<String> = None;
    for tok in &toks[1..] {
        match tok {
            Tok::List(f) if flags.is_none() && date.is_none() => flags = Some(f),
            Tok::Str(d) if date.is_none() => date = Some(String::from_utf8_lossy(d).into()),
            Tok::Literal(bytes) => {
                let mut one = tag.to_vec();
                one.extend_from_slice(b" APPEND ");
                one.extend_from_slice(&quoted(mailbox.as_bytes()));
                if let Some(f) = flags.take() {
                    let words: Vec<String> = f.iter().filter_map(Tok::text).collect();
                    one.extend_from_slice(format!(" ({})", words.join(" ")).as_bytes());
                }
                if let Some(d) = date.take() {
                    one.extend_from_slice(format!(" \"{d}\"").as_bytes());
                }
                one.extend_from_slice(format!(" {{{}}}\r\n", bytes.len()).as_bytes());
                one.extend_from_slice(bytes);
                one.extend_from_slice(b"\r\n");
                match decode(&one) {
                    Some(c) => commands.push(c),
                    None => return Parsed::Bad("Invalid APPEND arguments".into()),
                }
            }
            _ => return Parsed::NotOurs,
        }
    }
    if commands.len() < 2 || flags.is_some() || date.is_some() {
        return Parsed::NotOurs;
    }
    let first = commands[0].clone();
    Parsed::Command(Box::new(first), Extra::MultiAppend(commands))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_return() {
        let Parsed::Command(c, Extra::SearchReturn(r)) =
            parse(b"a1 UID SEARCH RETURN (MIN COUNT) SEEN 1:5\r\n")
        else {
            panic!("not parsed");
        };
        assert!(matches!(c.body, CommandBody::Search { uid: true, .. }));
        assert!(r.min && r.count && !r.all);
        assert!(matches!(
            parse(b"a1 SEARCH RETURN (BOGUS) ALL\r\n"),
            Parsed::Bad(_)
        ));
        assert!(matches!(parse(b"a1 SEARCH ALL\r\n"), Parsed::NotOurs));
    }

    #[test]
    fn list_extended() {
        let Parsed::Command(_, Extra::List(l)) = parse(
            b"a LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (\"a/*\" b) RETURN (CHILDREN STATUS (MESSAGES UIDNEXT))\r\n",
        ) else {
            panic!("not parsed");
        };
        assert!(l.subscribed && l.recursive_match && l.return_children);
        assert_eq!(l.patterns, vec!["a/*".to_string(), "b".to_string()]);
        assert_eq!(l.return_status.map(|s| s.len()), Some(2));
        assert!(matches!(
            parse(b"a LIST (RECURSIVEMATCH) \"\" \"\"\r\n"),
            Parsed::Bad(_)
        ));
        assert!(matches!(
            parse(b"a LIST \"\" \"\" RETURN (imaptest)\r\n"),
            Parsed::Bad(_)
        ));
    }

    #[test]
    fn broken_literals_are_not_ours_and_never_panic() {
        for line in [
            &b"a LIST ~}\r\n"[..],
            b"a LIST ~\r\n",
            b"a LIST \"\" {99999999999999999999999}\r\n",
            b"a LIST \"\" {18446744073709551615}\r\nx",
            b"a APPEND INBOX {5}\r\nab",
            b"a SEARCH RETURN (",
            b"a UID",
            b"a LIST (((((",
        ] {
            let _ = parse(line);
        }
        assert!(matches!(
            parse(b"a LIST ~foo \"\"\r\n"),
            Parsed::NotOurs | Parsed::Command(..)
        ));
    }

    #[test]
    fn multiappend_messages() {
        let Parsed::Command(_, Extra::MultiAppend(all)) =
            parse(b"a APPEND INBOX (\\Seen) {3}\r\none {3}\r\ntwo\r\n")
        else {
            panic!("not parsed");
        };
        assert_eq!(all.len(), 2);
        let CommandBody::Append { flags, .. } = &all[0].body else {
            panic!("not an append");
        };
        assert_eq!(flags.len(), 1);
    }
}

#[cfg(test)]
mod robustness {
    use rand::{Rng, SeedableRng};

    /// Random inputs made of the characters these parsers care about never panic them (the
    /// fuzz target `fake_imap_commands` does this at length; this is the quick version).
    #[test]
    fn random_input_never_panics_the_hand_written_parsers() {
        let alphabet = b" ()[]{}<>~+-:;,.@\"\\\r\n0123456789aAsSlLtTuUrRnN%*=/";
        let words: [&[u8]; 8] = [
            b"a LIST ",
            b"a SEARCH RETURN ",
            b"a UID SEARCH RETURN (",
            b"a APPEND INBOX ",
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n",
            b"message/rfc822",
            b"--b--",
            b"From: ",
        ];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        for _ in 0..20_000 {
            let mut input = Vec::new();
            for _ in 0..rng.random_range(0..12) {
                if rng.random_bool(0.3) {
                    input.extend_from_slice(words[rng.random_range(0..words.len())]);
                } else {
                    for _ in 0..rng.random_range(1..6) {
                        input.push(alphabet[rng.random_range(0..alphabet.len())]);
                    }
                }
            }
            let _ = super::parse(&input);
            let top = crate::mime::parse(&input);
            let _ = crate::mime::structure(&input, &top, true);
            let _ = crate::mime::locate(&top, &[1, 2, 1]);
            let _ = crate::envelope::envelope(&input);
            let _ = crate::envelope::parse_list(&input);
        }
    }
}
