//! Authenticated state, mailbox commands: NAMESPACE, LIST, LSUB, STATUS, SELECT, EXAMINE,
//! CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE.

use std::collections::BTreeSet;
use std::io;
use std::num::NonZeroU64;

use imap_codec::imap_types::core::{IString, QuotedChar};
use imap_codec::imap_types::extensions::namespace::Namespace;
use imap_codec::imap_types::mailbox::{ListMailbox, Mailbox};
use imap_codec::imap_types::response::{Code, Data, Response, Status};
use imap_codec::imap_types::status::{StatusDataItem, StatusDataItemName};

use crate::admin::View;
use crate::cmd::selected::send_flag_lists;
use crate::connection::Connection;
use crate::error::Error;
use crate::extended::ListArgs;
use crate::session::{
    Done, Selected, Session, State, decode_mailbox, encode_mailbox, nz, other_code, send_data,
};
use crate::store::{FolderInfo, SEEN, canonical};

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
    // A name that is not modified UTF-7 names no mailbox: NO, as Dovecot answers (a BAD makes
    // many clients drop the connection).
    let name = decode_mailbox(mailbox).map_err(Done::no)?;
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
    /// A placeholder parent, not a mailbox.
    implicit: bool,
    special_use: Option<String>,
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
    let own = |user: &str| store.folders(user).unwrap_or_default();
    let shown = |f: FolderInfo, name: String, shared: bool| Visible {
        name,
        selectable: f.selectable,
        implicit: f.implicit,
        special_use: f.special_use,
        shared,
    };
    match &login.view {
        View::Own { owner } => own(owner)
            .into_iter()
            .map(|f| {
                let name = f.name.clone();
                shown(f, name, false)
            })
            .collect(),
        View::Shared { owner, root } => {
            let delim = s.delimiter();
            let inbox_child = format!("INBOX{delim}");
            let mut out: Vec<Visible> = own(owner)
                .into_iter()
                .map(|f| {
                    let name = f.name.clone();
                    shown(f, name, false)
                })
                .collect();
            for user in store.users() {
                if &user == owner {
                    continue;
                }
                // The account's root is its INBOX; INBOX's children are the root's children
                // (a store folder outside INBOX is shown there too).
                let base = format!("{root}{delim}{}", shared_account_name(&user));
                for f in own(&user) {
                    let name = if f.name.eq_ignore_ascii_case("INBOX") {
                        base.clone()
                    } else {
                        let rest = f.name.strip_prefix(&inbox_child).unwrap_or(&f.name);
                        format!("{base}{delim}{rest}")
                    };
                    out.push(shown(f, name, true));
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

/// What a LIST-style command asks for.
#[derive(Default)]
pub struct ListMode<'a> {
    pub lsub: bool,
    /// LIST-EXTENDED arguments, when the command used that syntax.
    pub ext: Option<&'a ListArgs>,
}

/// One line of a LIST / LSUB answer.
struct Line {
    name: String,
    attrs: Vec<String>,
    childinfo: bool,
    /// Where STATUS (LIST-STATUS) reads from: (owner, folder), for a selectable mailbox.
    status_of: Option<(String, String)>,
}

fn raw_text(pattern: &ListMailbox<'_>) -> String {
    match pattern {
        ListMailbox::Token(t) => String::from_utf8_lossy(t.as_ref()).to_string(),
        ListMailbox::String(st) => String::from_utf8_lossy(st.as_ref()).to_string(),
    }
}

/// A wire name or pattern in Unicode; one that is not modified UTF-7 is taken as it is (it
/// then matches only names spelt so, and LIST answers OK, as Dovecot does).
fn unicode(raw: &str) -> String {
    mutf7::decode(raw).unwrap_or_else(|_| raw.to_string())
}

/// LIST and LSUB in their RFC 3501 form.
pub async fn list(
    s: &mut Session,
    conn: &mut Connection,
    reference: &Mailbox<'_>,
    pattern: &ListMailbox<'_>,
    lsub: bool,
) -> io::Result<Done> {
    let reference = match reference {
        Mailbox::Inbox => "INBOX".to_string(),
        Mailbox::Other(o) => unicode(&String::from_utf8_lossy(o.inner().as_ref())),
    };
    let pattern = raw_text(pattern);
    let mode = ListMode { lsub, ext: None };
    list_with(s, conn, &reference, &[pattern], &mode).await
}

/// LIST with LIST-EXTENDED's options (RFC 5258), LIST-STATUS (RFC 5819) and SPECIAL-USE.
pub async fn list_extended(
    s: &mut Session,
    conn: &mut Connection,
    args: &ListArgs,
) -> io::Result<Done> {
    if !s.shared.extensions.list_extended {
        return Ok(Done::Bad("LIST-EXTENDED is not enabled".into()));
    }
    let reference = unicode(&args.reference);
    let mode = ListMode {
        lsub: false,
        ext: Some(args),
    };
    list_with(s, conn, &reference, &args.patterns, &mode).await
}

async fn list_with(
    s: &mut Session,
    conn: &mut Connection,
    reference: &str,
    raw_patterns: &[String],
    mode: &ListMode<'_>,
) -> io::Result<Done> {
    let delim = s.delimiter();
    let label = if mode.lsub { "LSUB" } else { "LIST" };
    if !mode.lsub && raw_patterns.len() == 1 && raw_patterns[0].is_empty() {
        // LIST "" "": just the hierarchy delimiter.
        let line = format!("* LIST (\\Noselect) {} \"\"\r\n", quoted_delimiter(delim));
        conn.send_raw(line.as_bytes()).await?;
        return Ok(Done::ok("LIST completed"));
    }
    let patterns: Vec<Vec<char>> = raw_patterns
        .iter()
        .map(|p| {
            canonical(&format!("{reference}{}", unicode(p)), delim)
                .chars()
                .collect()
        })
        .collect();
    let lines = list_lines(s, &patterns, mode);
    let status_items = mode.ext.and_then(|e| e.return_status.clone());
    for line in lines {
        let mut text = format!(
            "* {label} ({}) {} ",
            line.attrs.join(" "),
            quoted_delimiter(delim)
        )
        .into_bytes();
        text.extend_from_slice(&wire_name(&line.name));
        if line.childinfo {
            text.extend_from_slice(b" (\"CHILDINFO\" (\"SUBSCRIBED\"))");
        }
        text.extend_from_slice(b"\r\n");
        conn.send_raw(&text).await?;
        if let (Some(items), Some((user, folder))) = (&status_items, &line.status_of)
            && let Ok(Some(values)) = status_values(s, user, folder, items)
        {
            send_data(
                conn,
                Data::Status {
                    mailbox: encode_mailbox(&line.name),
                    items: values.into(),
                },
            )
            .await?;
        }
    }
    Ok(Done::ok(format!("{label} completed")))
}

fn quoted_delimiter(delim: char) -> String {
    format!("\"{delim}\"")
}

/// A name on the wire: modified UTF-7, quoted (or a literal if it cannot be quoted).
fn wire_name(name: &str) -> Vec<u8> {
    let encoded = mutf7::encode(name);
    if encoded.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        let mut out = vec![b'"'];
        for b in encoded.bytes() {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
        out
    } else {
        let mut out = format!("{{{}}}\r\n", encoded.len()).into_bytes();
        out.extend_from_slice(encoded.as_bytes());
        out
    }
}

fn matches_any(patterns: &[Vec<char>], name: &str, delim: char) -> bool {
    let chars: Vec<char> = name.chars().collect();
    patterns.iter().any(|p| wildcard_match(p, &chars, delim))
}

/// The lines a LIST / LSUB answers with, in name order.
fn list_lines(s: &Session, patterns: &[Vec<char>], mode: &ListMode<'_>) -> Vec<Line> {
    let delim = s.delimiter();
    let ext = mode.ext;
    let full: Vec<String> = patterns.iter().map(|p| p.iter().collect()).collect();
    let shared_too = full
        .iter()
        .any(|p| names_shared(p, s.login.as_ref().map(|l| &l.view)));
    let visible: Vec<Visible> = visible_folders(s)
        .into_iter()
        .filter(|v| !v.shared || shared_too)
        .collect();
    let by_name: std::collections::BTreeMap<&str, &Visible> =
        visible.iter().map(|v| (v.name.as_str(), v)).collect();
    let subscriptions: BTreeSet<String> = s
        .owner()
        .and_then(|o| s.shared.store.subscriptions(o).ok())
        .unwrap_or_default();
    let has_children = |name: &str| {
        let prefix = format!("{name}{delim}");
        visible.iter().any(|v| v.name.starts_with(&prefix))
    };
    let special_use = s.shared.extensions.special_use;
    let selected_subscribed = ext.is_some_and(|e| e.subscribed);
    let return_subscribed = ext.is_some_and(|e| e.return_subscribed) || selected_subscribed;
    let mut out: Vec<Line> = Vec::new();
    let mut emitted = BTreeSet::new();
    let mut push = |out: &mut Vec<Line>, line: Line| {
        if emitted.insert(line.name.clone()) {
            out.push(line);
        }
    };
    let attrs_of = |name: &str, lsub: bool| -> (Vec<String>, Option<(String, String)>) {
        let mut attrs = Vec::new();
        let mut status_of = None;
        match by_name.get(name) {
            Some(v) if v.implicit && ext.is_some() => attrs.push("\\NonExistent".to_string()),
            Some(v) if !v.selectable => attrs.push("\\Noselect".to_string()),
            Some(_) => status_of = s.resolve(name),
            None if ext.is_some() => attrs.push("\\NonExistent".to_string()),
            None => {}
        }
        if !lsub && by_name.contains_key(name) {
            attrs.push(if has_children(name) {
                "\\HasChildren".to_string()
            } else {
                "\\HasNoChildren".to_string()
            });
        }
        if special_use
            && !lsub
            && let Some(Some(attr)) = by_name.get(name).map(|v| v.special_use.as_ref())
        {
            attrs.push(attr.clone());
        }
        if return_subscribed && subscriptions.contains(name) {
            attrs.push("\\Subscribed".to_string());
        }
        (attrs, status_of)
    };
    if mode.lsub {
        for name in &subscriptions {
            if matches_any(patterns, name, delim) {
                push(
                    &mut out,
                    Line {
                        name: name.clone(),
                        attrs: attrs_of(name, true).0,
                        childinfo: false,
                        status_of: None,
                    },
                );
                continue;
            }
            // `%` stops at a level: an unsubscribed parent of a subscribed name shows as
            // \Noselect (RFC 3501 §6.3.9).
            let parts: Vec<&str> = name.split(delim).collect();
            for depth in 1..parts.len() {
                let parent = parts[..depth].join(&delim.to_string());
                if !subscriptions.contains(&parent) && matches_any(patterns, &parent, delim) {
                    push(
                        &mut out,
                        Line {
                            name: parent,
                            attrs: vec!["\\Noselect".to_string()],
                            childinfo: false,
                            status_of: None,
                        },
                    );
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        return out;
    }
    // Candidates: what exists, and with SUBSCRIBED what is subscribed (even if deleted) and
    // the parents of subscribed names (for RECURSIVEMATCH).
    let mut names: BTreeSet<String> = visible.iter().map(|v| v.name.clone()).collect();
    if selected_subscribed {
        for sub in &subscriptions {
            names.insert(sub.clone());
            let parts: Vec<&str> = sub.split(delim).collect();
            for depth in 1..parts.len() {
                names.insert(parts[..depth].join(&delim.to_string()));
            }
        }
    }
    for name in &names {
        if !matches_any(patterns, name, delim) {
            continue;
        }
        let (mut attrs, status_of) = attrs_of(name, false);
        let mut childinfo = false;
        if selected_subscribed && !subscriptions.contains(name) {
            // Listed only for a subscribed descendant that the patterns do not list itself.
            let prefix = format!("{name}{delim}");
            let reason = ext.is_some_and(|e| e.recursive_match)
                && subscriptions
                    .iter()
                    .any(|d| d.starts_with(&prefix) && !matches_any(patterns, d, delim));
            if !reason {
                continue;
            }
            childinfo = true;
            attrs.retain(|a| a != "\\NonExistent" || !by_name.contains_key(name.as_str()));
        }
        if ext.is_some_and(|e| e.special_use_only)
            && by_name
                .get(name.as_str())
                .is_none_or(|v| v.special_use.is_none())
        {
            continue;
        }
        push(
            &mut out,
            Line {
                name: name.clone(),
                attrs,
                childinfo,
                status_of,
            },
        );
    }
    out
}

/// STATUS items of a folder (None: not selectable).
fn status_values(
    s: &Session,
    user: &str,
    folder: &str,
    items: &[StatusDataItemName],
) -> Result<Option<Vec<StatusDataItem>>, Error> {
    s.shared.store.with_folder(user, folder, |f| {
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
                    StatusDataItemName::HighestModSeq => {
                        Some(StatusDataItem::HighestModSeq(f.highest_modseq))
                    }
                    _ => None,
                })
                .collect::<Vec<_>>(),
        )
    })
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
    if items.contains(&StatusDataItemName::HighestModSeq) {
        s.condstore = true;
    }
    match status_values(s, &user, &folder, items) {
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
    recent: Vec<u32>,
    first_unseen: Option<u32>,
    keywords: BTreeSet<String>,
    highest_modseq: u64,
}

pub async fn select(
    s: &mut Session,
    conn: &mut Connection,
    mailbox: &Mailbox<'static>,
    read_only: bool,
    condstore: bool,
) -> io::Result<Done> {
    // Selecting anything leaves the selected state first, without expunging (RFC 3501 §6.3.1).
    if matches!(s.state, State::Selected(_)) {
        s.state = State::Authenticated;
        if s.condstore {
            // RFC 7162 §3.2.11: the old mailbox is closed.
            conn.send(&Response::Status(
                Status::ok(None, Some(Code::Closed), "Previous mailbox closed").expect("valid"),
            ))
            .await?;
        }
    }
    if condstore {
        s.condstore = true;
    }
    let (visible, user, folder) = match target(s, mailbox) {
        Ok(t) => t,
        Err(done) => return Ok(done),
    };
    let opened = s.shared.store.with_folder(&user, &folder, |f| {
        if !f.selectable {
            return None;
        }
        // A read-write session is the first to see these: nobody else gets them as \Recent.
        let mut recent = Vec::new();
        for m in &mut f.messages {
            if m.recent {
                recent.push(m.uid);
                if !read_only {
                    m.recent = false;
                }
            }
        }
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
            keywords: f.keywords.clone(),
            highest_modseq: f.highest_modseq,
        })
    });
    let opened = match opened {
        Err(e) => return Ok(store_error(e)),
        Ok(None) => return Ok(Done::no(format!("Mailbox isn't selectable: {visible}"))),
        Ok(Some(o)) => o,
    };
    send_flag_lists(s, conn, &opened.keywords, read_only).await?;
    let untagged_ok = |code: Code<'static>, text: &'static str| {
        Response::Status(Status::ok(None, Some(code), text).expect("valid"))
    };
    send_data(conn, Data::Exists(opened.uids.len() as u32)).await?;
    send_data(conn, Data::Recent(opened.recent.len() as u32)).await?;
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
    if s.condstore {
        conn.send(&untagged_ok(
            Code::HighestModSeq(NonZeroU64::new(opened.highest_modseq.max(1)).expect("non-zero")),
            "Highest",
        ))
        .await?;
    }
    let mut sel = Selected::new(user, folder, visible, read_only);
    sel.uid_validity = opened.uid_validity;
    sel.uids = opened.uids;
    sel.recent = opened.recent.into_iter().collect();
    sel.keywords = opened.keywords;
    sel.known_modseq = opened.highest_modseq;
    s.state = State::Selected(Box::new(sel));
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
    match s.shared.store.create_folder_by_client(&user, &folder) {
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
        return Done::no("Invalid mailbox name");
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
