//! SEARCH and UID SEARCH over the selected folder.

use std::io;

use chrono::NaiveDate;
use imap_codec::imap_types::response::Data;
use imap_codec::imap_types::search::SearchKey;

use crate::connection::Connection;
use crate::message;
use crate::session::{Done, Session, State, in_set, nz, send_data};
use crate::store::{ANSWERED, DELETED, DRAFT, FLAGGED, Message, SEEN};

struct Candidate {
    seq: u32,
    message: Message,
}

struct Limits {
    max_seq: u32,
    max_uid: u32,
}

pub async fn search(
    s: &mut Session,
    conn: &mut Connection,
    criteria: &[SearchKey<'_>],
    uid: bool,
) -> io::Result<Done> {
    let State::Selected(sel) = &s.state else {
        return Ok(Done::Bad("No mailbox selected".into()));
    };
    let view = sel.uids.clone();
    let candidates = s.shared.store.with_folder(&sel.user, &sel.folder, |f| {
        view.iter()
            .enumerate()
            .filter_map(|(i, &u)| {
                f.get(u).map(|m| Candidate {
                    seq: i as u32 + 1,
                    message: m.clone(),
                })
            })
            .collect::<Vec<_>>()
    });
    let candidates = match candidates {
        Ok(c) => c,
        Err(e) => return Ok(crate::cmd::mailbox::store_error(e)),
    };
    let limits = Limits {
        max_seq: view.len() as u32,
        max_uid: view.last().copied().unwrap_or(0),
    };
    let hits = candidates
        .iter()
        .filter(|c| criteria.iter().all(|k| matches(k, c, &limits)))
        .map(|c| nz(if uid { c.message.uid } else { c.seq }))
        .collect();
    send_data(conn, Data::Search(hits)).await?;
    Ok(Done::ok("SEARCH completed"))
}

fn text(a: &impl AsRef<[u8]>) -> String {
    String::from_utf8_lossy(a.as_ref()).to_lowercase()
}

fn header_contains(m: &Message, name: &str, needle: &str) -> bool {
    match message::header_value(&m.raw, name) {
        Some(v) => needle.is_empty() || v.to_lowercase().contains(needle),
        None => false,
    }
}

fn sent_date(m: &Message) -> Option<NaiveDate> {
    let v = message::header_value(&m.raw, "Date")?;
    chrono::DateTime::parse_from_rfc2822(&v)
        .ok()
        .map(|d| d.date_naive())
}

fn contains(hay: &[u8], needle: &str) -> bool {
    if needle.is_empty() {
        return true;
    }
    let hay = String::from_utf8_lossy(hay).to_lowercase();
    hay.contains(needle)
}

fn matches(key: &SearchKey<'_>, c: &Candidate, l: &Limits) -> bool {
    use SearchKey as K;
    let m = &c.message;
    let has = |f: &str| m.flags.contains(f);
    let internal = m.internal_date.date_naive();
    match key {
        K::All => true,
        K::And(keys) => keys.as_ref().iter().all(|k| matches(k, c, l)),
        K::Or(a, b) => matches(a, c, l) || matches(b, c, l),
        K::Not(k) => !matches(k, c, l),
        K::SequenceSet(set) => in_set(set, c.seq, l.max_seq),
        K::Uid(set) => in_set(set, m.uid, l.max_uid),
        K::Answered => has(ANSWERED),
        K::Unanswered => !has(ANSWERED),
        K::Deleted => has(DELETED),
        K::Undeleted => !has(DELETED),
        K::Draft => has(DRAFT),
        K::Undraft => !has(DRAFT),
        K::Flagged => has(FLAGGED),
        K::Unflagged => !has(FLAGGED),
        K::Seen => has(SEEN),
        K::Unseen => !has(SEEN),
        K::Recent => m.recent,
        K::New => m.recent && !has(SEEN),
        K::Old => !m.recent,
        K::Keyword(k) => has(k.inner()),
        K::Unkeyword(k) => !has(k.inner()),
        K::Larger(n) => m.size() > *n,
        K::Smaller(n) => m.size() < *n,
        K::Since(d) => internal >= *d.as_ref(),
        K::Before(d) => internal < *d.as_ref(),
        K::On(d) => internal == *d.as_ref(),
        K::SentSince(d) => sent_date(m).is_some_and(|s| s >= *d.as_ref()),
        K::SentBefore(d) => sent_date(m).is_some_and(|s| s < *d.as_ref()),
        K::SentOn(d) => sent_date(m).is_some_and(|s| s == *d.as_ref()),
        K::Header(name, value) => {
            header_contains(m, &String::from_utf8_lossy(name.as_ref()), &text(value))
        }
        K::Subject(v) => header_contains(m, "Subject", &text(v)),
        K::From(v) => header_contains(m, "From", &text(v)),
        K::To(v) => header_contains(m, "To", &text(v)),
        K::Cc(v) => header_contains(m, "Cc", &text(v)),
        K::Bcc(v) => header_contains(m, "Bcc", &text(v)),
        K::Body(v) => contains(message::split(&m.raw).1, &text(v)),
        K::Text(v) => contains(&m.raw, &text(v)),
        #[allow(unreachable_patterns)]
        _ => false,
    }
}
