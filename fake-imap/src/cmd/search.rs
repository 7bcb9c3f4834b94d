//! SEARCH and UID SEARCH over the selected folder, with ESEARCH's RETURN options (RFC 4731)
//! and CONDSTORE's MODSEQ key (RFC 7162).

use std::io;
use std::num::NonZeroU64;

use chrono::NaiveDate;
use imap_codec::imap_types::core::{Charset, Tag};
use imap_codec::imap_types::response::Data;
use imap_codec::imap_types::search::SearchKey;

use crate::connection::Connection;
use crate::session::{Done, Session, State, in_set, nz, other_code, send_data};
use crate::store::{ANSWERED, DELETED, DRAFT, FLAGGED, Message, SEEN};
use crate::{envelope, message};

/// ESEARCH result options (`SEARCH RETURN (MIN MAX COUNT ALL)`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Return {
    pub min: bool,
    pub max: bool,
    pub count: bool,
    pub all: bool,
}

impl Return {
    /// Reads the option words; `RETURN ()` means ALL (RFC 4731 §3.1).
    pub fn parse(words: &[String]) -> Result<Self, String> {
        let mut r = Self::default();
        for w in words {
            match w.to_ascii_uppercase().as_str() {
                "MIN" => r.min = true,
                "MAX" => r.max = true,
                "COUNT" => r.count = true,
                "ALL" => r.all = true,
                "SAVE" => return Err("SEARCHRES is not supported".into()),
                other => return Err(format!("unknown RETURN option {other}")),
            }
        }
        if r == Self::default() {
            r.all = true;
        }
        Ok(r)
    }
}

struct Candidate {
    seq: u32,
    recent: bool,
    message: Message,
}

struct Limits {
    max_seq: u32,
    max_uid: u32,
}

/// Charsets the server understands in search strings.
const CHARSETS: [&str; 2] = ["US-ASCII", "UTF-8"];

pub async fn search(
    s: &mut Session,
    conn: &mut Connection,
    tag: &Tag<'_>,
    charset: Option<&Charset<'_>>,
    criteria: &[SearchKey<'_>],
    uid: bool,
    esearch: Option<Return>,
) -> io::Result<Done> {
    if let Some(cs) = charset {
        let name = match cs {
            Charset::Atom(a) => a.inner().to_string(),
            Charset::Quoted(q) => q.inner().to_string(),
        };
        if !CHARSETS.iter().any(|c| c.eq_ignore_ascii_case(&name)) {
            return Ok(Done::No(
                Some(other_code("BADCHARSET (US-ASCII UTF-8)")),
                format!("Unsupported charset {name}"),
            ));
        }
    }
    if criteria.iter().any(uses_modseq) {
        s.condstore = true;
    }
    let State::Selected(sel) = &s.state else {
        return Ok(Done::Bad("No mailbox selected".into()));
    };
    let view = sel.uids.clone();
    let recent = sel.recent.clone();
    let candidates = s.shared.store.with_folder(&sel.user, &sel.folder, |f| {
        view.iter()
            .enumerate()
            .filter_map(|(i, &u)| {
                f.get(u).map(|m| Candidate {
                    seq: i as u32 + 1,
                    recent: recent.contains(&u),
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
    let hits: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| criteria.iter().all(|k| matches(k, c, &limits)))
        .collect();
    let number = |c: &Candidate| if uid { c.message.uid } else { c.seq };
    // With MODSEQ in the criteria, the highest MODSEQ of what is returned (RFC 7162 §3.1.5).
    let with_modseq = criteria.iter().any(uses_modseq);
    let highest = |items: &[&Candidate]| {
        with_modseq
            .then(|| items.iter().map(|c| c.message.modseq).max())
            .flatten()
            .and_then(NonZeroU64::new)
    };
    match esearch {
        None => {
            let modseq = highest(&hits);
            let numbers = hits.iter().map(|c| nz(number(c))).collect();
            send_data(conn, Data::Search(numbers, modseq)).await?;
        }
        Some(ret) => {
            let mut line = format!("* ESEARCH (TAG \"{}\")", tag.inner());
            if uid {
                line.push_str(" UID");
            }
            let mut returned: Vec<&Candidate> = Vec::new();
            if !hits.is_empty() {
                if ret.min {
                    line.push_str(&format!(" MIN {}", number(hits[0])));
                    returned.push(hits[0]);
                }
                if ret.max {
                    let last = hits[hits.len() - 1];
                    line.push_str(&format!(" MAX {}", number(last)));
                    returned.push(last);
                }
                if ret.all {
                    let numbers: Vec<u32> = hits.iter().map(|c| number(c)).collect();
                    line.push_str(&format!(" ALL {}", compress(&numbers)));
                    returned.extend(hits.iter().copied());
                }
            }
            if ret.count {
                line.push_str(&format!(" COUNT {}", hits.len()));
                if !ret.min && !ret.max && !ret.all {
                    returned.extend(hits.iter().copied());
                }
            }
            if let Some(modseq) = highest(&returned) {
                line.push_str(&format!(" MODSEQ {modseq}"));
            }
            line.push_str("\r\n");
            conn.send_raw(line.as_bytes()).await?;
        }
    }
    Ok(Done::ok("SEARCH completed"))
}

/// `1:3,5,7:9` for sorted numbers.
pub fn compress(numbers: &[u32]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < numbers.len() {
        let start = numbers[i];
        let mut end = start;
        while i + 1 < numbers.len() && numbers[i + 1] == end + 1 {
            i += 1;
            end = numbers[i];
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}:{end}")
        });
        i += 1;
    }
    out.join(",")
}

fn uses_modseq(key: &SearchKey<'_>) -> bool {
    use SearchKey as K;
    match key {
        K::ModSequence { .. } => true,
        K::And(keys) => keys.as_ref().iter().any(uses_modseq),
        K::Or(a, b) => uses_modseq(a) || uses_modseq(b),
        K::Not(k) => uses_modseq(k),
        _ => false,
    }
}

fn text(a: &impl AsRef<[u8]>) -> String {
    String::from_utf8_lossy(a.as_ref()).to_lowercase()
}

/// HEADER name value: any field of that name (they may repeat) containing the value; an
/// empty value asks whether the field is there at all.
fn header_contains(m: &Message, name: &str, needle: &str) -> bool {
    let header = message::split(&m.raw).0;
    message::header_all(header, name)
        .iter()
        .any(|v| needle.is_empty() || String::from_utf8_lossy(v).to_lowercase().contains(needle))
}

/// FROM/TO/CC/BCC: the addresses as `Name <local@host>`, comments and groups read.
fn address_contains(m: &Message, field: &str, needle: &str) -> bool {
    let header = message::split(&m.raw).0;
    envelope::search_text(header, field).is_some_and(|t| t.contains(needle))
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
        // \Recent is the session's, not the message's (RFC 3501 §2.3.2).
        K::Recent => c.recent,
        K::New => c.recent && !has(SEEN),
        K::Old => !c.recent,
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
        K::From(v) => address_contains(m, "From", &text(v)),
        K::To(v) => address_contains(m, "To", &text(v)),
        K::Cc(v) => address_contains(m, "Cc", &text(v)),
        K::Bcc(v) => address_contains(m, "Bcc", &text(v)),
        K::Body(v) => contains(message::split(&m.raw).1, &text(v)),
        K::Text(v) => contains(&m.raw, &text(v)),
        K::ModSequence { modseq, .. } => m.modseq >= *modseq,
        #[allow(unreachable_patterns)]
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_are_compressed() {
        assert_eq!(compress(&[1, 2, 3, 5, 7, 8]), "1:3,5,7:8");
        assert_eq!(compress(&[]), "");
    }

    #[test]
    fn return_options() {
        assert_eq!(
            Return::parse(&[]).unwrap(),
            Return {
                all: true,
                ..Return::default()
            }
        );
        assert!(
            Return::parse(&["min".into(), "COUNT".into()])
                .unwrap()
                .count
        );
        assert!(Return::parse(&["FOO".into()]).is_err());
    }
}
