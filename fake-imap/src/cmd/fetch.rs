//! FETCH and UID FETCH: streamed one message at a time, from the stored bytes, with the
//! fetch-side faults (refused messages, wrong sizes, rewritten headers, expunge mid-fetch,
//! a dropped connection mid-literal).

use std::borrow::Cow;
use std::io;

use bounded_static::IntoBoundedStatic;
use imap_codec::imap_types::core::{IString, Literal, NString, Vec1};
use imap_codec::imap_types::datetime::DateTime;
use imap_codec::imap_types::fetch::{
    MacroOrMessageDataItemNames, MessageDataItem, MessageDataItemName, Part, Section,
};
use imap_codec::imap_types::response::{Code, Data, Response, Status};
use imap_codec::imap_types::sequence::SequenceSet;
use rand::Rng;

use crate::connection::Connection;
use crate::faults::FaultAction;
use crate::session::{Done, Session, State, nz};
use crate::store::{Message, SEEN};
use crate::{message, mime};

/// Messages taken from the store per lock, so a big FETCH neither holds the lock long nor
/// clones the whole folder's metadata at once.
const CHUNK: usize = 256;

pub async fn fetch(
    s: &mut Session,
    conn: &mut Connection,
    set: &SequenceSet,
    items: MacroOrMessageDataItemNames<'static>,
    uid: bool,
    changed_since: Option<u64>,
) -> io::Result<Done> {
    let names: Vec<MessageDataItemName<'static>> = match items {
        MacroOrMessageDataItemNames::Macro(m) => m.expand().into_static(),
        MacroOrMessageDataItemNames::MessageDataItemNames(v) => v,
    };
    if changed_since.is_some() || names.contains(&MessageDataItemName::ModSeq) {
        if !s.shared.extensions.condstore {
            return Ok(Done::Bad("CONDSTORE is not enabled".into()));
        }
        if !s.condstore {
            // The first CONDSTORE-enabling command tells the client where the folder is
            // (RFC 7162 §3.1).
            s.condstore = true;
            if let State::Selected(sel) = &s.state
                && let Ok(h) = s
                    .shared
                    .store
                    .with_folder(&sel.user, &sel.folder, |f| f.highest_modseq)
            {
                let code =
                    Code::HighestModSeq(std::num::NonZeroU64::new(h.max(1)).expect("non-zero"));
                let status = Status::ok(None, Some(code), "Highest").expect("valid");
                conn.send(&Response::Status(status)).await?;
            }
        }
    }
    // Keywords another session added are announced before a FETCH can show them.
    crate::cmd::selected::announce_keywords(s, conn).await?;
    if names.iter().any(|n| {
        matches!(
            n,
            MessageDataItemName::Binary { .. } | MessageDataItemName::BinarySize { .. }
        )
    }) {
        return Ok(Done::Bad("BINARY is not supported by fake-imap".into()));
    }
    let State::Selected(sel) = &s.state else {
        return Ok(Done::Bad("No mailbox selected".into()));
    };
    let (user, folder, read_only) = (sel.user.clone(), sel.folder.clone(), sel.read_only);
    let targets = s.select_messages(set, uid);
    let sets_seen = !read_only
        && names.iter().any(|n| {
            matches!(
                n,
                MessageDataItemName::BodyExt { peek: false, .. }
                    | MessageDataItemName::Rfc822
                    | MessageDataItemName::Rfc822Text
            )
        });

    let wants_body = names.iter().any(|n| {
        matches!(
            n,
            MessageDataItemName::BodyExt { .. }
                | MessageDataItemName::Rfc822
                | MessageDataItemName::Rfc822Text
                | MessageDataItemName::Rfc822Header
        )
    });
    let refused: Vec<u32> = s
        .fault(FaultAction::FetchNo)
        .filter(|_| wants_body)
        .map(|f| f.uids.clone())
        .unwrap_or_default();
    let expunge_halfway = s
        .fault(FaultAction::ExpungeDuringFetch)
        .map(|f| f.count.unwrap_or(1));
    let size_delta = s
        .fault(FaultAction::WrongSize)
        .and_then(|f| f.delta)
        .unwrap_or(0);
    let rewrite = s.fault(FaultAction::RewriteHeaders).is_some();
    let missing_header = s.fault(FaultAction::MissingHeader).is_some();
    let wrong_seq = s.fault(FaultAction::WrongSequence).is_some();
    let drop_mid_literal = s.fault(FaultAction::DropMidLiteral).is_some();

    let mut refused_any = false;
    let mut vanished = false;
    let mut sent = 0usize;
    for chunk in targets.chunks(CHUNK) {
        let messages = s.shared.store.with_folder(&user, &folder, |f| {
            chunk
                .iter()
                .filter_map(|&(seq, u)| {
                    let Some(i) = f.position(u) else {
                        return Some((seq, u, None, false));
                    };
                    if changed_since.is_some_and(|n| f.messages[i].modseq <= n) {
                        return None;
                    }
                    let mut seen_now = false;
                    if sets_seen && !f.messages[i].flags.contains(SEEN) {
                        let mut flags = f.messages[i].flags.clone();
                        flags.insert(SEEN.to_string());
                        seen_now = f.set_flags_at(i, flags);
                    }
                    Some((seq, u, Some(f.messages[i].clone()), seen_now))
                })
                .collect::<Vec<_>>()
        });
        let messages = match messages {
            Ok(m) => m,
            Err(e) => return Ok(crate::cmd::mailbox::store_error(e)),
        };
        for (seq, u, m, seen_now) in messages {
            if let Some(count) = expunge_halfway
                && sent == targets.len() / 2
            {
                // Another session expunges the newest messages while we are halfway.
                let newest: Vec<u32> = targets
                    .iter()
                    .rev()
                    .take(count as usize)
                    .map(|t| t.1)
                    .collect();
                let _ = s.shared.store.expunge_uids(&user, &folder, &newest);
            }
            sent += 1;
            let Some(m) = m else {
                vanished = true;
                continue;
            };
            if seen_now && let State::Selected(sel) = &mut s.state {
                sel.own.insert(m.uid, m.modseq);
            }
            if refused.contains(&u) || !still_there(s, &user, &folder, u) {
                if refused.contains(&u) {
                    refused_any = true;
                } else {
                    vanished = true;
                }
                continue;
            }
            let raw: Cow<'_, [u8]> = if rewrite {
                let stamp = s.rng.random::<u64>();
                let mut v = format!("X-Fetch-Stamp: {stamp:016x}\r\n").into_bytes();
                v.extend_from_slice(&m.raw);
                Cow::Owned(v)
            } else {
                Cow::Borrowed(&m.raw[..])
            };
            let mut items = Vec::with_capacity(names.len() + 1);
            let mut bodies: Vec<Cow<'_, [u8]>> = Vec::new();
            for name in &names {
                let (item, body) = item(s, name, &m, &raw, size_delta, missing_header);
                bodies.extend(body);
                items.push(item);
            }
            let has_literal = !bodies.is_empty();
            if seen_now && !names.contains(&MessageDataItemName::Flags) {
                items.push(crate::cmd::selected::flags_item(s, &m));
            }
            let shows_flags = items.iter().any(|i| matches!(i, MessageDataItem::Flags(_)));
            if (changed_since.is_some() || (s.condstore && shows_flags))
                && !names.contains(&MessageDataItemName::ModSeq)
            {
                items.push(crate::cmd::selected::modseq_item(m.modseq));
            }
            if uid && !names.contains(&MessageDataItemName::Uid) {
                items.insert(0, MessageDataItem::Uid(nz(m.uid)));
            }
            let seq = if wrong_seq { seq + 1 } else { seq };
            let response = Response::Data(Data::Fetch {
                seq: nz(seq),
                items: Vec1::try_from(items).expect("at least one item"),
            });
            let bodies: Vec<&[u8]> = bodies.iter().map(|b| &b[..]).collect();
            let truncate = drop_mid_literal && has_literal;
            conn.send_with_literals(&response, &bodies, truncate)
                .await?;
            if truncate {
                return Ok(Done::Closed);
            }
        }
    }
    if refused_any {
        return Ok(Done::No(
            Some(crate::session::other_code("SERVERBUG")),
            "Error occurred while fetching some messages".into(),
        ));
    }
    if vanished && !uid {
        // RFC 2180 §4.1.3: a sequence FETCH that names expunged messages fails.
        return Ok(Done::no("Some of the requested messages no longer exist"));
    }
    Ok(Done::Ok(None::<Code<'static>>, "FETCH completed".into()))
}

fn still_there(s: &Session, user: &str, folder: &str, uid: u32) -> bool {
    s.shared
        .store
        .with_folder(user, folder, |f| f.position(uid).is_some())
        .unwrap_or(false)
}

/// An empty literal that `send_with_literals` fills with the body bytes.
fn placeholder() -> NString<'static> {
    NString(Some(IString::Literal(Literal::unvalidated(&b""[..]))))
}

/// One FETCH item, and the bytes of its literal if it has one.
fn item<'a>(
    s: &Session,
    name: &MessageDataItemName<'static>,
    m: &Message,
    raw: &'a [u8],
    size_delta: i64,
    missing_header: bool,
) -> (MessageDataItem<'static>, Option<Cow<'a, [u8]>>) {
    use MessageDataItemName as N;
    let plain = |item| (item, None);
    match name {
        N::Uid => plain(MessageDataItem::Uid(nz(m.uid))),
        N::ModSeq => plain(crate::cmd::selected::modseq_item(m.modseq)),
        N::Flags => plain(crate::cmd::selected::flags_item(s, m)),
        N::InternalDate => plain(MessageDataItem::InternalDate(DateTime::unvalidated(
            m.internal_date,
        ))),
        N::Rfc822Size => {
            let size = (i64::from(m.size()) + size_delta).clamp(0, i64::from(u32::MAX));
            plain(MessageDataItem::Rfc822Size(size as u32))
        }
        N::Envelope => plain(MessageDataItem::Envelope(crate::envelope::envelope(
            message::split(raw).0,
        ))),
        N::Body => plain(MessageDataItem::Body(mime::structure(
            raw,
            &mime::parse(raw),
            false,
        ))),
        N::BodyStructure => plain(MessageDataItem::BodyStructure(mime::structure(
            raw,
            &mime::parse(raw),
            true,
        ))),
        N::Rfc822 => (
            MessageDataItem::Rfc822(placeholder()),
            Some(Cow::Borrowed(raw)),
        ),
        N::Rfc822Header => (
            MessageDataItem::Rfc822Header(placeholder()),
            Some(Cow::Borrowed(message::split(raw).0)),
        ),
        N::Rfc822Text => (
            MessageDataItem::Rfc822Text(placeholder()),
            Some(Cow::Borrowed(message::split(raw).1)),
        ),
        N::BodyExt {
            section, partial, ..
        } => {
            let whole: Cow<'_, [u8]> = section_bytes(raw, section.as_ref(), missing_header);
            let (origin, data) = match partial {
                None => (None, whole),
                Some((start, len)) => {
                    let start = (*start as usize).min(whole.len());
                    let end = start.saturating_add(len.get() as usize).min(whole.len());
                    let data = match whole {
                        Cow::Borrowed(b) => Cow::Borrowed(&b[start..end]),
                        Cow::Owned(v) => Cow::Owned(v[start..end].to_vec()),
                    };
                    (Some(start as u32), data)
                }
            };
            (
                MessageDataItem::BodyExt {
                    section: section.clone(),
                    origin,
                    data: placeholder(),
                },
                Some(data),
            )
        }
        // Refused up front in `fetch`.
        _ => plain(MessageDataItem::Rfc822Size(m.size())),
    }
}

fn section_bytes<'a>(
    raw: &'a [u8],
    section: Option<&Section<'_>>,
    missing_header: bool,
) -> Cow<'a, [u8]> {
    let names = |fields: &Vec1<imap_codec::imap_types::core::AString<'_>>| -> Vec<String> {
        fields
            .as_ref()
            .iter()
            .map(|f| String::from_utf8_lossy(f.as_ref()).to_string())
            .collect()
    };
    let path = |part: Option<&Part>| -> Vec<u32> {
        part.map(|p| p.0.as_ref().iter().map(|n| n.get()).collect())
            .unwrap_or_default()
    };
    let Some(section) = section else {
        return Cow::Borrowed(raw);
    };
    if missing_header && matches!(section, Section::HeaderFields(None, _)) {
        return Cow::Borrowed(b"\r\n");
    }
    // The top-level header and text need no MIME parse (the migration's hot path).
    match section {
        Section::Header(None) => return Cow::Borrowed(message::split(raw).0),
        Section::Text(None) => return Cow::Borrowed(message::split(raw).1),
        _ => {}
    }
    let top = mime::parse(raw);
    let slice = |r: &std::ops::Range<usize>| Cow::Borrowed(&raw[r.clone()]);
    let found = match section {
        Section::Part(part) => mime::locate(&top, &path(Some(part))).map(|e| slice(&e.body)),
        Section::Mime(part) => mime::locate(&top, &path(Some(part))).map(|e| slice(&e.header)),
        Section::Header(part) => {
            mime::message_at(&top, &path(part.as_ref())).map(|e| slice(&e.header))
        }
        Section::Text(part) => mime::message_at(&top, &path(part.as_ref())).map(|e| slice(&e.body)),
        Section::HeaderFields(part, fields) => {
            mime::message_at(&top, &path(part.as_ref())).map(|e| {
                Cow::Owned(message::header_fields(
                    &raw[e.header.clone()],
                    &names(fields),
                    false,
                ))
            })
        }
        Section::HeaderFieldsNot(part, fields) => {
            mime::message_at(&top, &path(part.as_ref())).map(|e| {
                Cow::Owned(message::header_fields(
                    &raw[e.header.clone()],
                    &names(fields),
                    true,
                ))
            })
        }
    };
    // A section that does not exist is empty (RFC 3501 leaves it open; Dovecot answers "").
    found.unwrap_or(Cow::Borrowed(b""))
}
