//! Selected state: CLOSE, UNSELECT, EXPUNGE, UID EXPUNGE, STORE, COPY, and the EXISTS/EXPUNGE
//! updates that keep a session's sequence numbers in step with the store.

use std::collections::{BTreeSet, HashSet};
use std::io;
use std::num::NonZeroU64;

use imap_codec::imap_types::core::Vec1;
use imap_codec::imap_types::extensions::uidplus::{UidElement, UidSet};
use imap_codec::imap_types::fetch::MessageDataItem;
use imap_codec::imap_types::flag::{Flag, FlagFetch, FlagPerm, StoreResponse, StoreType};
use imap_codec::imap_types::mailbox::Mailbox;
use imap_codec::imap_types::response::{Code, Data, Response, Status};
use imap_codec::imap_types::sequence::SequenceSet;

use crate::cmd::mailbox::{store_error, target};
use crate::connection::Connection;
use crate::error::Error;
use crate::session::{Done, Session, State, flag_set, nz, send_data, to_flag};
use crate::store::{ANSWERED, DELETED, DRAFT, FLAGGED, Message, SEEN};

/// FLAGS as a FETCH item (with \Recent where this session holds it).
pub fn flags_item(s: &Session, m: &Message) -> MessageDataItem<'static> {
    let mut flags: Vec<FlagFetch<'static>> = Vec::with_capacity(m.flags.len() + 1);
    if let State::Selected(sel) = &s.state
        && sel.recent.contains(&m.uid)
    {
        flags.push(FlagFetch::Recent);
    }
    flags.extend(
        m.flags
            .iter()
            .filter_map(|f| to_flag(f))
            .map(FlagFetch::Flag),
    );
    if s.shared.quirks.mdnsent_on_every_message && !m.flags.contains("$MDNSent") {
        flags.extend(to_flag("$MDNSent").map(FlagFetch::Flag));
    }
    MessageDataItem::Flags(flags)
}

/// The FLAGS and PERMANENTFLAGS of a folder with these keywords.
pub async fn send_flag_lists(
    s: &Session,
    conn: &mut Connection,
    keywords: &BTreeSet<String>,
    read_only: bool,
) -> io::Result<()> {
    let mut keywords = keywords.clone();
    if s.shared.quirks.mdnsent_on_every_message {
        keywords.insert("$MDNSent".into());
    }
    let flags = [ANSWERED, FLAGGED, DELETED, SEEN, DRAFT]
        .iter()
        .map(|f| f.to_string())
        .chain(keywords)
        .filter_map(|f| to_flag(&f))
        .collect::<Vec<_>>();
    send_data(conn, Data::Flags(flags.clone())).await?;
    let permanent = if read_only {
        Vec::new()
    } else {
        flags
            .into_iter()
            .map(FlagPerm::Flag)
            .chain([FlagPerm::Asterisk])
            .collect()
    };
    let status = Status::ok(
        None,
        Some(Code::PermanentFlags(permanent)),
        "Flags permitted.",
    )
    .expect("valid");
    conn.send(&Response::Status(status)).await
}

/// Tells the session of keywords that appeared in its folder since it was last told, before
/// any FETCH shows one (clients reject flags they were not told of).
pub async fn announce_keywords(s: &mut Session, conn: &mut Connection) -> io::Result<()> {
    let State::Selected(sel) = &s.state else {
        return Ok(());
    };
    let Ok(keywords) = s.shared.store.with_folder(&sel.user, &sel.folder, |f| {
        (f.keywords.len() != sel.keywords.len()).then(|| f.keywords.clone())
    }) else {
        return Ok(());
    };
    let Some(keywords) = keywords else {
        return Ok(());
    };
    let read_only = sel.read_only;
    send_flag_lists(s, conn, &keywords, read_only).await?;
    if let State::Selected(sel) = &mut s.state {
        sel.keywords = keywords;
    }
    Ok(())
}

/// What changed in a folder since a session last looked.
struct News {
    uid_validity: u32,
    highest_modseq: u64,
    keywords: BTreeSet<String>,
    /// Every message: UID, MODSEQ, flags when they changed since the session looked.
    messages: Vec<(u32, u64, Option<Message>)>,
    /// New messages this session takes \Recent for.
    claimed: Vec<u32>,
}

/// Reports what other sessions did to the selected folder since the client last heard:
/// EXPUNGE (when `expunges`), FETCH FLAGS for changed flags, EXISTS and RECENT for new mail,
/// FLAGS for new keywords.
pub async fn sync_view(s: &mut Session, conn: &mut Connection, expunges: bool) -> io::Result<()> {
    let State::Selected(sel) = &s.state else {
        return Ok(());
    };
    let known = sel.known_modseq;
    let last = sel.uids.last().copied().unwrap_or(0);
    let read_only = sel.read_only;
    let pending = sel.pending_expunge && expunges;
    let news = s.shared.store.with_folder(&sel.user, &sel.folder, |f| {
        if f.highest_modseq == known && !pending {
            return None;
        }
        let mut claimed = Vec::new();
        let messages = f
            .messages
            .iter_mut()
            .map(|m| {
                if m.uid > last && m.recent {
                    claimed.push(m.uid);
                    if !read_only {
                        m.recent = false;
                    }
                }
                let changed = (m.modseq > known && m.uid <= last).then(|| m.clone());
                (m.uid, m.modseq, changed)
            })
            .collect();
        Some(News {
            uid_validity: f.uid_validity,
            highest_modseq: f.highest_modseq,
            keywords: f.keywords.clone(),
            messages,
            claimed,
        })
    });
    let Ok(Some(news)) = news else {
        return Ok(());
    };
    if news.uid_validity != sel.uid_validity {
        // The folder was rebuilt under us; real servers drop such sessions.
        crate::session::bye(conn, "Mailbox UIDVALIDITY changed, please reselect").await?;
        return Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "uidvalidity changed",
        ));
    }
    if news.keywords.len() != sel.keywords.len() {
        send_flag_lists(s, conn, &news.keywords, read_only).await?;
    }
    let condstore = s.condstore;
    let State::Selected(sel) = &mut s.state else {
        return Ok(());
    };
    sel.keywords = news.keywords;
    let present: HashSet<u32> = news.messages.iter().map(|m| m.0).collect();
    let mut held_back = false;
    for i in (0..sel.uids.len()).rev() {
        if !present.contains(&sel.uids[i]) {
            if expunges {
                sel.recent.remove(&sel.uids[i]);
                sel.uids.remove(i);
                send_data(conn, Data::Expunge(nz(i as u32 + 1))).await?;
            } else {
                held_back = true;
            }
        }
    }
    sel.pending_expunge = held_back;
    let mut changed = Vec::new();
    for (uid, modseq, m) in &news.messages {
        if let Some(m) = m
            && sel.own.get(uid) != Some(modseq)
            && let Ok(i) = sel.uids.binary_search(uid)
        {
            changed.push((i as u32 + 1, m.clone()));
        }
    }
    let new: Vec<u32> = news
        .messages
        .iter()
        .map(|m| m.0)
        .filter(|&u| u > last)
        .collect();
    sel.recent.extend(news.claimed.iter().copied());
    sel.own.clear();
    sel.known_modseq = news.highest_modseq;
    for (seq, m) in changed {
        let mut items = vec![flags_item(s, &m)];
        if condstore {
            items.push(modseq_item(m.modseq));
        }
        send_fetch(conn, seq, items).await?;
    }
    let State::Selected(sel) = &mut s.state else {
        return Ok(());
    };
    if !new.is_empty() {
        sel.uids.extend(new);
        send_data(conn, Data::Exists(sel.uids.len() as u32)).await?;
        let recent = sel.recent.len() as u32;
        send_data(conn, Data::Recent(recent)).await?;
    }
    Ok(())
}

/// An untagged FETCH of these (non-empty) items.
async fn send_fetch(
    conn: &mut Connection,
    seq: u32,
    items: Vec<MessageDataItem<'static>>,
) -> io::Result<()> {
    let items = Vec1::try_from(items).expect("at least one item");
    send_data(
        conn,
        Data::Fetch {
            seq: nz(seq),
            items,
        },
    )
    .await
}

pub fn modseq_item(modseq: u64) -> MessageDataItem<'static> {
    MessageDataItem::ModSeq(NonZeroU64::new(modseq.max(1)).expect("non-zero"))
}

pub fn close(s: &mut Session, expunge: bool) -> Done {
    if let State::Selected(sel) = &s.state
        && expunge
        && !sel.read_only
    {
        let _ = s.shared.store.with_folder(&sel.user, &sel.folder, |f| {
            f.expunge_where(|m| m.flags.contains(DELETED))
        });
    }
    s.state = State::Authenticated;
    Done::ok(if expunge {
        "CLOSE completed"
    } else {
        "UNSELECT completed"
    })
}

pub fn expunge(s: &mut Session, only: Option<&SequenceSet>) -> Done {
    let chosen: Option<HashSet<u32>> = only.map(|set| {
        s.select_messages(set, true)
            .into_iter()
            .map(|(_, u)| u)
            .collect()
    });
    let State::Selected(sel) = &mut s.state else {
        return Done::Bad("No mailbox selected".into());
    };
    if sel.read_only {
        return Done::no("Mailbox is read-only");
    }
    let removed = s.shared.store.with_folder(&sel.user, &sel.folder, |f| {
        f.expunge_where(|m| {
            m.flags.contains(DELETED) && chosen.as_ref().is_none_or(|c| c.contains(&m.uid))
        })
    });
    if let Err(e) = removed {
        return store_error(e);
    }
    // What this session and others removed is reported by the sync that follows.
    Done::ok("EXPUNGE completed")
}

/// STORE's flag operation on one message's flags.
fn apply(
    kind: StoreType,
    current: &BTreeSet<String>,
    change: &BTreeSet<String>,
) -> BTreeSet<String> {
    match kind {
        StoreType::Replace => change.clone(),
        StoreType::Add => current.union(change).cloned().collect(),
        StoreType::Remove => current.difference(change).cloned().collect(),
    }
}

#[allow(clippy::too_many_arguments)]
pub async fn store(
    s: &mut Session,
    conn: &mut Connection,
    set: &SequenceSet,
    kind: StoreType,
    response: StoreResponse,
    flags: &[Flag<'_>],
    uid: bool,
    unchanged_since: Option<u64>,
) -> io::Result<Done> {
    let targets = s.select_messages(set, uid);
    let State::Selected(sel) = &s.state else {
        return Ok(Done::Bad("No mailbox selected".into()));
    };
    if sel.read_only {
        return Ok(Done::no("Mailbox is read-only"));
    }
    if unchanged_since.is_some() {
        s.condstore = true;
    }
    let change = flag_set(flags);
    let updated = s.shared.store.with_folder(&sel.user, &sel.folder, |f| {
        let mut out = Vec::new();
        let mut modified = Vec::new();
        for &(seq, u) in &targets {
            let Some(i) = f.position(u) else {
                continue;
            };
            if unchanged_since.is_some_and(|n| f.messages[i].modseq > n) {
                modified.push(if uid { u } else { seq });
                continue;
            }
            let new = apply(kind, &f.messages[i].flags, &change);
            let changed = f.set_flags_at(i, new);
            out.push((seq, changed, f.messages[i].clone()));
        }
        (out, modified)
    });
    let (updated, modified) = match updated {
        Ok(u) => u,
        Err(e) => return Ok(store_error(e)),
    };
    announce_keywords(s, conn).await?;
    let condstore = s.condstore;
    if let State::Selected(sel) = &mut s.state {
        for (_, changed, m) in &updated {
            if *changed {
                sel.own.insert(m.uid, m.modseq);
            }
        }
    }
    for (seq, changed, m) in updated {
        // .SILENT still reports a MODSEQ change to a CONDSTORE client (RFC 7162 §3.2).
        if response == StoreResponse::Silent && !(condstore && changed) {
            continue;
        }
        let mut items = Vec::new();
        if response == StoreResponse::Answer {
            items.push(flags_item(s, &m));
        }
        if uid {
            items.push(MessageDataItem::Uid(nz(m.uid)));
        }
        if condstore {
            items.push(modseq_item(m.modseq));
        }
        send_fetch(conn, seq, items).await?;
    }
    if !modified.is_empty() {
        let set = SequenceSet::try_from(
            modified
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",")
                .as_str(),
        )
        .expect("numbers make a set");
        return Ok(Done::Ok(
            Some(Code::Modified(set)),
            "Conditional STORE failed".into(),
        ));
    }
    Ok(Done::ok("STORE completed"))
}

pub fn copy(s: &mut Session, set: &SequenceSet, mailbox: &Mailbox<'_>, uid: bool) -> Done {
    let targets = s.select_messages(set, uid);
    let (_, to_user, to_folder) = match target(s, mailbox) {
        Ok(t) => t,
        Err(done) => return done,
    };
    let State::Selected(sel) = &s.state else {
        return Done::Bad("No mailbox selected".into());
    };
    let store = &s.shared.store;
    let messages: Vec<Message> = match store.with_folder(&sel.user, &sel.folder, |f| {
        targets
            .iter()
            .filter_map(|&(_, u)| f.get(u).cloned())
            .collect()
    }) {
        Ok(m) => m,
        Err(e) => return store_error(e),
    };
    if let Err(e) = store.folder_info(&to_user, &to_folder) {
        return match e {
            Error::NoSuchFolder(name) => Done::No(
                Some(Code::TryCreate),
                format!("Mailbox doesn't exist: {name}"),
            ),
            e => store_error(e),
        };
    }
    let (mut source, mut dest) = (Vec::new(), Vec::new());
    let mut uid_validity = 0;
    for m in messages {
        let flags: Vec<&str> = m.flags.iter().map(String::as_str).collect();
        match store.append(&to_user, &to_folder, m.raw.clone(), &flags, m.internal_date) {
            Ok((uv, new_uid)) => {
                uid_validity = uv;
                source.push(UidElement::Single(nz(m.uid)));
                dest.push(UidElement::Single(nz(new_uid)));
            }
            Err(e) => return store_error(e),
        }
    }
    match (Vec1::try_from(source), Vec1::try_from(dest)) {
        (Ok(source), Ok(destination)) => Done::Ok(
            Some(Code::CopyUid {
                uid_validity: nz(uid_validity),
                source: UidSet(source),
                destination: UidSet(destination),
            }),
            "COPY completed".into(),
        ),
        _ => Done::ok("COPY completed"),
    }
}
