//! Selected state: CLOSE, UNSELECT, EXPUNGE, UID EXPUNGE, STORE, COPY, and the EXISTS/EXPUNGE
//! updates that keep a session's sequence numbers in step with the store.

use std::collections::HashSet;
use std::io;

use imap_codec::imap_types::core::Vec1;
use imap_codec::imap_types::extensions::uidplus::{UidElement, UidSet};
use imap_codec::imap_types::fetch::MessageDataItem;
use imap_codec::imap_types::flag::{Flag, FlagFetch, StoreResponse, StoreType};
use imap_codec::imap_types::mailbox::Mailbox;
use imap_codec::imap_types::response::{Code, Data};
use imap_codec::imap_types::sequence::SequenceSet;

use crate::cmd::mailbox::{store_error, target};
use crate::connection::Connection;
use crate::error::Error;
use crate::session::{Done, Session, State, flag_set, nz, send_data, to_flag};
use crate::store::{DELETED, Message};

/// FLAGS as a FETCH item.
pub fn flags_item(s: &Session, m: &Message) -> MessageDataItem<'static> {
    let mut flags: Vec<FlagFetch<'static>> = m
        .flags
        .iter()
        .filter_map(|f| to_flag(f))
        .map(FlagFetch::Flag)
        .collect();
    if s.shared.quirks.mdnsent_on_every_message && !m.flags.contains("$MDNSent") {
        flags.extend(to_flag("$MDNSent").map(FlagFetch::Flag));
    }
    MessageDataItem::Flags(flags)
}

/// Reports messages other sessions added or removed since the client last heard.
pub async fn sync_view(s: &mut Session, conn: &mut Connection) -> io::Result<()> {
    let State::Selected(sel) = &s.state else {
        return Ok(());
    };
    let Ok(current) = s.shared.store.with_folder(&sel.user, &sel.folder, |f| {
        (
            f.uid_validity,
            f.messages.iter().map(|m| m.uid).collect::<Vec<u32>>(),
        )
    }) else {
        return Ok(());
    };
    let (uid_validity, current) = current;
    let State::Selected(sel) = &mut s.state else {
        return Ok(());
    };
    if uid_validity != sel.uid_validity {
        // The folder was rebuilt under us; real servers drop such sessions.
        crate::session::bye(conn, "Mailbox UIDVALIDITY changed, please reselect").await?;
        return Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "uidvalidity changed",
        ));
    }
    if current == sel.uids {
        return Ok(());
    }
    let present: HashSet<u32> = current.iter().copied().collect();
    for i in (0..sel.uids.len()).rev() {
        if !present.contains(&sel.uids[i]) {
            sel.uids.remove(i);
            send_data(conn, Data::Expunge(nz(i as u32 + 1))).await?;
        }
    }
    let last = sel.uids.last().copied().unwrap_or(0);
    let new: Vec<u32> = current.into_iter().filter(|&u| u > last).collect();
    if !new.is_empty() {
        sel.uids.extend(new);
        send_data(conn, Data::Exists(sel.uids.len() as u32)).await?;
    }
    Ok(())
}

pub fn close(s: &mut Session, expunge: bool) -> Done {
    if let State::Selected(sel) = &s.state
        && expunge
        && !sel.read_only
    {
        let _ = s.shared.store.with_folder(&sel.user, &sel.folder, |f| {
            f.messages.retain(|m| !m.flags.contains(DELETED));
        });
    }
    s.state = State::Authenticated;
    Done::ok(if expunge {
        "CLOSE completed"
    } else {
        "UNSELECT completed"
    })
}

pub async fn expunge(
    s: &mut Session,
    conn: &mut Connection,
    only: Option<&SequenceSet>,
) -> io::Result<Done> {
    let chosen: Option<HashSet<u32>> = only.map(|set| {
        s.select_messages(set, true)
            .into_iter()
            .map(|(_, u)| u)
            .collect()
    });
    let State::Selected(sel) = &mut s.state else {
        return Ok(Done::Bad("No mailbox selected".into()));
    };
    if sel.read_only {
        return Ok(Done::no("Mailbox is read-only"));
    }
    let removed = s.shared.store.with_folder(&sel.user, &sel.folder, |f| {
        let mut removed = HashSet::new();
        f.messages.retain(|m| {
            let gone =
                m.flags.contains(DELETED) && chosen.as_ref().is_none_or(|c| c.contains(&m.uid));
            if gone {
                removed.insert(m.uid);
            }
            !gone
        });
        removed
    });
    let removed = match removed {
        Ok(r) => r,
        Err(e) => return Ok(store_error(e)),
    };
    for i in (0..sel.uids.len()).rev() {
        if removed.contains(&sel.uids[i]) {
            sel.uids.remove(i);
            send_data(conn, Data::Expunge(nz(i as u32 + 1))).await?;
        }
    }
    Ok(Done::ok("EXPUNGE completed"))
}

pub async fn store(
    s: &mut Session,
    conn: &mut Connection,
    set: &SequenceSet,
    kind: StoreType,
    response: StoreResponse,
    flags: &[Flag<'_>],
    uid: bool,
) -> io::Result<Done> {
    let targets = s.select_messages(set, uid);
    let State::Selected(sel) = &s.state else {
        return Ok(Done::Bad("No mailbox selected".into()));
    };
    if sel.read_only {
        return Ok(Done::no("Mailbox is read-only"));
    }
    let change = flag_set(flags);
    let updated = s.shared.store.with_folder(&sel.user, &sel.folder, |f| {
        let mut out = Vec::new();
        for &(seq, uid) in &targets {
            if let Some(m) = f.get_mut(uid) {
                match kind {
                    StoreType::Replace => m.flags = change.clone(),
                    StoreType::Add => m.flags.extend(change.iter().cloned()),
                    StoreType::Remove => m.flags.retain(|fl| !change.contains(fl)),
                }
                out.push((seq, m.clone()));
            }
        }
        out
    });
    let updated = match updated {
        Ok(u) => u,
        Err(e) => return Ok(store_error(e)),
    };
    if response == StoreResponse::Answer {
        for (seq, m) in updated {
            let mut items = vec![flags_item(s, &m)];
            if uid {
                items.push(MessageDataItem::Uid(nz(m.uid)));
            }
            send_data(
                conn,
                Data::Fetch {
                    seq: nz(seq),
                    items: Vec1::try_from(items).expect("not empty"),
                },
            )
            .await?;
        }
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
