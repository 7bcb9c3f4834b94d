//! Authenticated state, mailbox commands: NAMESPACE, LIST, LSUB, STATUS, SELECT, EXAMINE,
//! CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE.

use std::collections::BTreeSet;
use std::io;

use imap_codec::imap_types::core::{IString, QuotedChar};
use imap_codec::imap_types::extensions::namespace::Namespace;
use imap_codec::imap_types::flag::{FlagNameAttribute, FlagPerm};
use imap_codec::imap_types::mailbox::{ListMailbox, Mailbox};
use imap_codec::imap_types::response::{Code, Data, Response, Status};
use imap_codec::imap_types::status::{StatusDataItem, StatusDataItemName};

use crate::admin::View;
use crate::connection::Connection;
use crate::error::Error;
use crate::session::{
    Done, Selected, Session, State, decode_mailbox, encode_mailbox, nz, other_code, send_data,
    to_flag,
};
use crate::store::{ANSWERED, DELETED, DRAFT, FLAGGED, SEEN, canonical};

/// A store error as the reply a real server gives.
pub fn store_error(e: Error) -> Done {
    match e {
        Error::NoSuchFolder(name) | Error::NoSuchUser(name) => Done::No(
            Some(other_code("NONEXISTENT")),
            format!("Mailbox doesn't exist: {name}"),
        ),
        Error::FolderExists(_) => Done::No(
            Some(other_code("ALREADYEXISTS")),
            "Mailbox already exists".into(),
        ),
        Error::NotSelectable(name) => Done::no(format!("Mailbox isn't selectable: {name}")),
        Error::InboxReserved => Done::no("INBOX can't be deleted."),
        other => Done::no(other.to_string()),
    }
}

/// Decodes a mailbox argument and maps it through the session's view.
pub fn target(s: &Session, mailbox: &Mailbox<'_>) -> Result<(String, String, String), Done> {
    let name = decode_mailbox(mailbox).map_err(Done::Bad)?;
    let (user, folder) = s
        .resolve(&name)
        .ok_or_else(|| store_error(Error::NoSuchFolder(name.clone())))?;
    Ok((name, user, folder))
}

fn delimiter_char(s: &Session) -> QuotedChar {
    QuotedChar::try_from(s.delimiter()).expect("/ and . are valid quoted chars")
}

/// A name a session can see.
struct Visible {
    name: String,
    selectable: bool,
    /// In the shared namespace: listed only to a pattern that names it, as Courier does.
    shared: bool,
}

/// How Courier shows an account in its shared namespace: `.` and `/` (which its folder names
/// cannot hold) become spaces, so `terry.adams` is `#shared.terry adams`.
pub fn shared_account_name(user: &str) -> String {
    user.replace(['.', '/'], " ")
}

/// Every name the session can see, with whether it can hold messages.
fn visible_folders(s: &Session) -> Vec<Visible> {
    let Some(login) = &s.login else {
        return Vec::new();
    };
    let store = &s.shared.store;
    let own = |user: &str| {
        store
            .folders(user)
            .map(|fs| fs.into_iter().map(|f| (f.name, f.selectable)).collect())
            .unwrap_or_else(|_| Vec::<(String, bool)>::new())
    };
    let mine = |user: &str| {
        own(user).into_iter().map(|(name, selectable)| Visible {
            name,
            selectable,
            shared: false,
        })
    };
    match &login.view {
        View::Own { owner } => mine(owner).collect(),
        View::Shared { owner, root } => {
            let delim = s.delimiter();
            let inbox_child = format!("INBOX{delim}");
            let mut out: Vec<Visible> = mine(owner).collect();
            for user in store.users() {
                if &user == owner {
                    continue;
                }
                // The account's root is its INBOX; INBOX's children are the root's children
                // (a store folder outside INBOX is shown there too).
                let base = format!("{root}{delim}{}", shared_account_name(&user));
                let folders = own(&user);
                let inbox = folders
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case("INBOX"))
                    .is_some_and(|(_, sel)| *sel);
                out.push(Visible {
                    name: base.clone(),
                    selectable: inbox,
                    shared: true,
                });
                for (name, selectable) in folders {
                    if name.eq_ignore_ascii_case("INBOX") {
                        continue;
                    }
                    let rest = name.strip_prefix(&inbox_child).unwrap_or(&name);
                    out.push(Visible {
                        name: format!("{base}{delim}{rest}"),
                        selectable,
                        shared: true,
                    });
                }
            }
            out
        }
    }
}

/// Whether a LIST pattern reaches into the shared namespace: its literal start (before any
/// wildcard) begins with the shared root. Courier answers `LIST "" "*"` with the login's own
/// folders only.
fn names_shared(pattern: &str, view: Option<&View>) -> bool {
    let Some(View::Shared { root, .. }) = view else {
        return false;
    };
    let literal = pattern.split(['*', '%']).next().unwrap_or("");
    literal.starts_with(root.as_str())
}

/// RFC 3501 LIST wildcards: `*` matches anything, `%` anything but the delimiter.
pub fn wildcard_match(pattern: &[char], name: &[char], delim: char) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some(('*', rest)) => (0..=name.len()).any(|i| wildcard_match(rest, &name[i..], delim)),
        Some(('%', rest)) => {
            let stop = name.iter().position(|&c| c == delim).unwrap_or(name.len());
            (0..=stop).any(|i| wildcard_match(rest, &name[i..], delim))
        }
        Some((&p, rest)) => name.first() == Some(&p) && wildcard_match(rest, &name[1..], delim),
    }
}

pub async fn namespace(s: &mut Session, conn: &mut Connection) -> io::Result<Done> {
    let delim = delimiter_char(s);
    let ns = |prefix: String| Namespace {
        prefix: IString::try_from(prefix).expect("valid prefix"),
        delimiter: Some(delim),
        extensions: Vec::new(),
    };
    let shared = match s.login.as_ref().map(|l| &l.view) {
        Some(View::Shared { root, .. }) => vec![ns(format!("{root}{}", s.delimiter()))],
        _ => Vec::new(),
    };
    send_data(
        conn,
        Data::Namespace {
            personal: vec![ns(String::new())],
            other: Vec::new(),
            shared,
        },
    )
    .await?;
    Ok(Done::ok("NAMESPACE completed"))
}

pub async fn list(
    s: &mut Session,
    conn: &mut Connection,
    reference: &Mailbox<'_>,
    pattern: &ListMailbox<'_>,
    lsub: bool,
) -> io::Result<Done> {
    let reference = match decode_mailbox(reference) {
        Ok(r) => r,
        Err(e) => return Ok(Done::Bad(e)),
    };
    let raw_pattern = match pattern {
        ListMailbox::Token(t) => String::from_utf8_lossy(t.as_ref()).to_string(),
        ListMailbox::String(st) => String::from_utf8_lossy(st.as_ref()).to_string(),
    };
    let pattern = match mutf7::decode(&raw_pattern) {
        Ok(p) => p,
        Err(e) => return Ok(Done::Bad(format!("mailbox pattern: {e}"))),
    };
    let delim = s.delimiter();
    let label = if lsub { "LSUB" } else { "LIST" };
    if pattern.is_empty() && !lsub {
        // LIST "" "": just the hierarchy delimiter.
        send_data(
            conn,
            Data::List {
                items: vec![FlagNameAttribute::Noselect],
                delimiter: Some(delimiter_char(s)),
                mailbox: Mailbox::try_from("").expect("empty name is valid"),
            },
        )
        .await?;
        return Ok(Done::ok("LIST completed"));
    }
    let full = canonical(&format!("{reference}{pattern}"), delim);
    let pattern: Vec<char> = full.chars().collect();
    let subscribed: Option<BTreeSet<String>> = if lsub {
        s.owner()
            .and_then(|o| s.shared.store.subscriptions(o).ok())
            .or_else(|| Some(BTreeSet::new()))
    } else {
        None
    };
    let full_pattern: String = pattern.iter().collect();
    let shared_too = names_shared(&full_pattern, s.login.as_ref().map(|l| &l.view));
    for Visible {
        name,
        selectable,
        shared,
    } in visible_folders(s)
    {
        if shared && !shared_too {
            continue;
        }
        let chars: Vec<char> = name.chars().collect();
        if !wildcard_match(&pattern, &chars, delim) {
            continue;
        }
        if let Some(subs) = &subscribed
            && !subs.contains(&name)
        {
            continue;
        }
        let items = if selectable {
            Vec::new()
        } else {
            vec![FlagNameAttribute::Noselect]
        };
        let mailbox = encode_mailbox(&name);
        let data = if lsub {
            Data::Lsub {
                items,
                delimiter: Some(delimiter_char(s)),
                mailbox,
            }
        } else {
            Data::List {
                items,
                delimiter: Some(delimiter_char(s)),
                mailbox,
            }
        };
        send_data(conn, data).await?;
    }
    Ok(Done::ok(format!("{label} completed")))
}

pub async fn status(
    s: &mut Session,
    conn: &mut Connection,
    mailbox: &Mailbox<'static>,
    items: &[StatusDataItemName],
) -> io::Result<Done> {
    let (_, user, folder) = match target(s, mailbox) {
        Ok(t) => t,
        Err(done) => return Ok(done),
    };
    let values = s.shared.store.with_folder(&user, &folder, |f| {
        if !f.selectable {
            return None;
        }
        Some(
            items
                .iter()
                .filter_map(|item| match item {
                    StatusDataItemName::Messages => {
                        Some(StatusDataItem::Messages(f.messages.len() as u32))
                    }
                    StatusDataItemName::Recent => Some(StatusDataItem::Recent(f.recent())),
                    StatusDataItemName::UidNext => Some(StatusDataItem::UidNext(nz(f.uid_next))),
                    StatusDataItemName::UidValidity => {
                        Some(StatusDataItem::UidValidity(nz(f.uid_validity)))
                    }
                    StatusDataItemName::Unseen => Some(StatusDataItem::Unseen(f.unseen())),
                    _ => None,
                })
                .collect::<Vec<_>>(),
        )
    });
    match values {
        Err(e) => Ok(store_error(e)),
        Ok(None) => Ok(Done::no("Mailbox isn't selectable")),
        Ok(Some(values)) => {
            send_data(
                conn,
                Data::Status {
                    mailbox: mailbox.clone(),
                    items: values.into(),
                },
            )
            .await?;
            Ok(Done::ok("STATUS completed"))
        }
    }
}

struct Opened {
    uids: Vec<u32>,
    uid_validity: u32,
    uid_next: u32,
    recent: u32,
    first_unseen: Option<u32>,
    keywords: BTreeSet<String>,
}

pub async fn select(
    s: &mut Session,
    conn: &mut Connection,
    mailbox: &Mailbox<'static>,
    read_only: bool,
) -> io::Result<Done> {
    // Selecting anything leaves the selected state first, without expunging (RFC 3501 §6.3.1).
    s.state = State::Authenticated;
    let (visible, user, folder) = match target(s, mailbox) {
        Ok(t) => t,
        Err(done) => return Ok(done),
    };
    let opened = s.shared.store.with_folder(&user, &folder, |f| {
        if !f.selectable {
            return None;
        }
        let recent = f.recent();
        if !read_only {
            // This session is the first to see them; nobody else will get them as \Recent.
            for m in &mut f.messages {
                m.recent = false;
            }
        }
        let keywords = f
            .messages
            .iter()
            .flat_map(|m| m.flags.iter())
            .filter(|fl| !fl.starts_with('\\'))
            .cloned()
            .collect();
        Some(Opened {
            uids: f.messages.iter().map(|m| m.uid).collect(),
            uid_validity: f.uid_validity,
            uid_next: f.uid_next,
            recent,
            first_unseen: f
                .messages
                .iter()
                .position(|m| !m.flags.contains(SEEN))
                .map(|i| i as u32 + 1),
            keywords,
        })
    });
    let opened = match opened {
        Err(e) => return Ok(store_error(e)),
        Ok(None) => return Ok(Done::no(format!("Mailbox isn't selectable: {visible}"))),
        Ok(Some(o)) => o,
    };
    let mut keywords = opened.keywords.clone();
    if s.shared.quirks.mdnsent_on_every_message {
        keywords.insert("$MDNSent".into());
    }
    let system = [ANSWERED, FLAGGED, DELETED, SEEN, DRAFT];
    let flags = system
        .iter()
        .map(|f| f.to_string())
        .chain(keywords)
        .filter_map(|f| to_flag(&f))
        .collect::<Vec<_>>();
    send_data(conn, Data::Flags(flags.clone())).await?;
    let untagged_ok = |code: Code<'static>, text: &'static str| {
        Response::Status(Status::ok(None, Some(code), text).expect("valid"))
    };
    let permanent = if read_only {
        Vec::new()
    } else {
        flags
            .into_iter()
            .map(FlagPerm::Flag)
            .chain([FlagPerm::Asterisk])
            .collect()
    };
    conn.send(&untagged_ok(
        Code::PermanentFlags(permanent),
        "Flags permitted.",
    ))
    .await?;
    send_data(conn, Data::Exists(opened.uids.len() as u32)).await?;
    send_data(conn, Data::Recent(opened.recent)).await?;
    if let Some(first) = opened.first_unseen {
        conn.send(&untagged_ok(Code::Unseen(nz(first)), "First unseen."))
            .await?;
    }
    if !(read_only && s.shared.quirks.no_uidvalidity_on_examine) {
        conn.send(&untagged_ok(
            Code::UidValidity(nz(opened.uid_validity)),
            "UIDs valid",
        ))
        .await?;
    }
    conn.send(&untagged_ok(
        Code::UidNext(nz(opened.uid_next)),
        "Predicted next UID",
    ))
    .await?;
    s.state = State::Selected(Selected {
        user,
        folder,
        visible,
        read_only,
        uid_validity: opened.uid_validity,
        uids: opened.uids,
    });
    Ok(if read_only {
        Done::Ok(Some(Code::ReadOnly), "EXAMINE completed".into())
    } else {
        Done::Ok(Some(Code::ReadWrite), "SELECT completed".into())
    })
}

pub fn create(s: &mut Session, mailbox: &Mailbox<'_>) -> Done {
    let (name, user, folder) = match target(s, mailbox) {
        Ok(t) => t,
        Err(done) => return done,
    };
    let delim = s.delimiter();
    let folder = folder.trim_end_matches(delim).to_string();
    let quirks = &s.shared.quirks;
    if quirks
        .reserved_folders
        .iter()
        .any(|r| r.eq_ignore_ascii_case(&folder))
    {
        return Done::no("Folder name is reserved");
    }
    if quirks.case_insensitive_folders
        && let Ok(existing) = s.shared.store.folders(&user)
        && existing
            .iter()
            .any(|f| f.name.eq_ignore_ascii_case(&folder))
    {
        return Done::No(
            Some(other_code("ALREADYEXISTS")),
            "Mailbox already exists".into(),
        );
    }
    if folder.eq_ignore_ascii_case("INBOX") {
        return Done::No(
            Some(other_code("ALREADYEXISTS")),
            "Mailbox already exists".into(),
        );
    }
    match s.shared.store.create_folder(&user, &folder) {
        Ok(()) => Done::ok(format!(
            "CREATE completed: {}",
            name.trim_end_matches(delim)
        )),
        Err(e) => store_error(e),
    }
}

pub fn delete(s: &mut Session, mailbox: &Mailbox<'_>) -> Done {
    let (_, user, folder) = match target(s, mailbox) {
        Ok(t) => t,
        Err(done) => return done,
    };
    if let State::Selected(sel) = &s.state
        && sel.user == user
        && sel.folder == folder
    {
        s.state = State::Authenticated;
    }
    match s.shared.store.delete_folder(&user, &folder) {
        Ok(()) => Done::ok("DELETE completed"),
        Err(e) => store_error(e),
    }
}

pub fn rename(s: &mut Session, from: &Mailbox<'_>, to: &Mailbox<'_>) -> Done {
    let ((_, user, old), (_, to_user, new)) = match (target(s, from), target(s, to)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(d), _) | (_, Err(d)) => return d,
    };
    if user != to_user {
        return Done::no("Can't rename across users");
    }
    match s.shared.store.rename_folder(&user, &old, &new) {
        Ok(()) => Done::ok("RENAME completed"),
        Err(e) => store_error(e),
    }
}

pub fn subscribe(s: &mut Session, mailbox: &Mailbox<'_>, on: bool) -> Done {
    let Ok(name) = decode_mailbox(mailbox) else {
        return Done::Bad("invalid mailbox name".into());
    };
    let Some(owner) = s.owner().map(str::to_string) else {
        return Done::Bad("not logged in".into());
    };
    let name = canonical(&name, s.delimiter());
    match s.shared.store.set_subscribed(&owner, &name, on) {
        Ok(()) if on => Done::ok("SUBSCRIBE completed"),
        Ok(()) => Done::ok("UNSUBSCRIBE completed"),
        Err(e) => store_error(e),
    }
}

#[cfg(test)]
mod tests {
    use super::wildcard_match;

    fn m(p: &str, n: &str) -> bool {
        let p: Vec<char> = p.chars().collect();
        let n: Vec<char> = n.chars().collect();
        wildcard_match(&p, &n, '/')
    }

    #[test]
    fn list_wildcards() {
        assert!(m("*", "Archive/2019"));
        assert!(m("%", "Archive") && !m("%", "Archive/2019"));
        assert!(m("Archive/%", "Archive/2019"));
        assert!(!m("Archive/%", "Archive"));
        assert!(m("A*9", "Archive/2019"));
        assert!(m("INBOX", "INBOX") && !m("INBOX", "INBOX/x"));
    }
}
