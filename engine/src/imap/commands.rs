//! The IMAP commands the source and the target send, each read to its tagged reply: a NO is
//! data ([`Done::No`]), a damaged untagged reply is handed back, never a shorter list.

use std::collections::HashSet;

use bytes::Bytes;
use imap_codec::imap_types::core::NString;
use imap_codec::imap_types::fetch::MessageDataItem;
use imap_codec::imap_types::flag::{FlagFetch, FlagNameAttribute};
use imap_codec::imap_types::mailbox::Mailbox;
use imap_codec::imap_types::response::{Code, Data, Response, Status};
use imap_codec::imap_types::status::StatusDataItem;

use super::client::{Client, ClientError, Done, Part, Untagged, first_line, uid_in};

/// One FETCH reply, owned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fetched {
    pub uid: Option<u32>,
    pub flags: Vec<String>,
    pub size: Option<u32>,
    pub date: Option<chrono::DateTime<chrono::Utc>>,
    pub body: Option<Bytes>,
}

/// A FETCH reply the client could not read, and the message it was about when it says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damaged {
    pub uid: Option<u32>,
    /// Its first line, shortened: what went wrong, in the server's bytes.
    pub reply: String,
}

/// What a UID FETCH brought: the replies read, the damaged ones, and how it ended (`None` when
/// the connection broke first, with `broke` saying why).
#[derive(Debug, Default)]
pub struct FetchReply {
    pub fetched: Vec<Fetched>,
    pub damaged: Vec<Damaged>,
    pub done: Option<Done>,
    pub broke: Option<ClientError>,
}

/// A LIST entry: the name as sent (modified UTF-7, or raw when the server breaks the rules),
/// its delimiter, and whether it can be selected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub wire: String,
    pub delimiter: Option<char>,
    pub selectable: bool,
    /// The SPECIAL-USE attributes (RFC 6154) it was listed with, lowercase: `\\sent`, ...
    pub special_use: Vec<String>,
}

/// What a LIST brought: the entries, the replies that could not be read, the tagged status.
#[derive(Debug)]
pub struct ListReply {
    pub listed: Vec<Listed>,
    pub unreadable: Vec<String>,
    pub done: Done,
}

/// An IMAP quoted string.
pub fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A string argument (a mailbox name, a login): quoted, or a literal when quoting cannot carry
/// it (8-bit or control characters, as some servers send).
pub(crate) fn astring(name: &str) -> Astring {
    if name
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) || b == b'\t')
    {
        Astring::Quoted(quoted(name))
    } else {
        Astring::Literal(name.as_bytes().to_vec())
    }
}

pub(crate) enum Astring {
    Quoted(String),
    Literal(Vec<u8>),
}

impl Astring {
    pub(crate) fn part(&self) -> Part<'_> {
        match self {
            Astring::Quoted(q) => Part::Text(q),
            Astring::Literal(l) => Part::Literal(l),
        }
    }
}

fn mailbox_name(m: &Mailbox<'_>) -> String {
    match m {
        Mailbox::Inbox => "INBOX".to_string(),
        Mailbox::Other(o) => String::from_utf8_lossy(o.as_ref()).into_owned(),
    }
}

fn nstring_bytes(n: &NString<'_>) -> Option<Bytes> {
    n.0.as_ref().map(|s| Bytes::copy_from_slice(s.as_ref()))
}

fn flag_text(f: &FlagFetch<'_>) -> Option<String> {
    match f {
        FlagFetch::Flag(flag) => Some(flag.to_string()),
        FlagFetch::Recent => None,
    }
}

/// The SPECIAL-USE attributes of RFC 6154, as [`Listed::special_use`] holds them.
pub const SPECIAL_USE: [&str; 7] = [
    "\\all",
    "\\archive",
    "\\drafts",
    "\\flagged",
    "\\junk",
    "\\sent",
    "\\trash",
];

/// `LIST "" <pattern>`; `pattern` goes as given (already in modified UTF-7).
pub async fn list(c: &mut Client, pattern: &str) -> Result<ListReply, ClientError> {
    list_with(c, &format!("LIST \"\" {}", quoted(pattern))).await
}

/// `LIST "" "*" RETURN (SPECIAL-USE)` (RFC 6154): every folder, with its special use.
pub async fn list_special_use(c: &mut Client) -> Result<ListReply, ClientError> {
    list_with(c, "LIST \"\" \"*\" RETURN (SPECIAL-USE)").await
}

async fn list_with(c: &mut Client, command: &str) -> Result<ListReply, ClientError> {
    let mut listed = Vec::new();
    let mut unreadable = Vec::new();
    let done = c
        .run(&[Part::Text(command)], |r| match r {
            Untagged::Decoded(Response::Data(Data::List {
                items,
                delimiter,
                mailbox,
            })) => listed.push(Listed {
                wire: mailbox_name(mailbox),
                delimiter: delimiter.as_ref().map(|d| d.inner()),
                selectable: !items.contains(&FlagNameAttribute::Noselect),
                special_use: items
                    .iter()
                    .map(|a| a.to_string().to_ascii_lowercase())
                    .filter(|a| SPECIAL_USE.contains(&a.as_str()))
                    .collect(),
            }),
            Untagged::Raw(raw) if raw.starts_with(b"* LIST") => unreadable.push(first_line(raw)),
            _ => {}
        })
        .await?;
    Ok(ListReply {
        listed,
        unreadable,
        done,
    })
}

/// `UID FETCH <set> <items>`. A connection that breaks during the command still gives what
/// came before (in [`FetchReply::broke`]): a damaged reply can desynchronise the connection.
pub async fn uid_fetch(c: &mut Client, set: &str, items: &str) -> FetchReply {
    uid_fetch_then(c, None, set, items, None).await.0
}

/// A UID FETCH sent ahead of the one being read: its tag and text, its UIDs, and what of its
/// reply came while the earlier one's was read (a server may run pipelined fetches at once and
/// interleave their replies: Dovecot does, so each reply goes to the fetch of its UID).
pub struct FetchAhead {
    tag: String,
    command: String,
    uids: HashSet<u32>,
    early: FetchReply,
}

impl FetchAhead {
    /// Whether this fetch asks for exactly these UIDs.
    pub fn is_for(&self, uids: &[u32]) -> bool {
        uids.len() == self.uids.len() && uids.iter().all(|u| self.uids.contains(u))
    }

    /// Reads the rest of its reply and drops it (another command must not see it).
    pub async fn drop_on(self, c: &mut Client) -> Result<(), ClientError> {
        c.replies_to(&self.tag, &self.command, |_| {})
            .await
            .map(|_| ())
    }
}

/// [`uid_fetch`] of a fetch sent ahead (`ahead`, for these UIDs) or sent now; `then` (a set,
/// its items and its UIDs) is sent before this one's reply is read, so the server goes on to
/// it without waiting for the client. Returns the reply and the fetch sent ahead, if it went.
pub async fn uid_fetch_then(
    c: &mut Client,
    ahead: Option<FetchAhead>,
    set: &str,
    items: &str,
    then: Option<(&str, &str, &[u32])>,
) -> (FetchReply, Option<FetchAhead>) {
    let (tag, command, mut reply) = match ahead {
        Some(a) => (a.tag, a.command, a.early),
        None => {
            let command = format!("UID FETCH {set} {items}");
            match c.send(&command).await {
                Ok(tag) => (tag, command, FetchReply::default()),
                Err(e) => {
                    let reply = FetchReply {
                        broke: Some(e),
                        ..FetchReply::default()
                    };
                    return (reply, None);
                }
            }
        }
    };
    // A send that fails has broken the connection: this command's reply says so.
    let mut next = None;
    if let Some((set, items, uids)) = then {
        let command = format!("UID FETCH {set} {items}");
        if let Ok(tag) = c.send(&command).await {
            next = Some(FetchAhead {
                tag,
                command,
                uids: uids.iter().copied().collect(),
                early: FetchReply::default(),
            });
        }
    }
    let done = c
        .replies_to(&tag, &command, |r| {
            let (uid, got) = match r {
                Untagged::Decoded(Response::Data(Data::Fetch { items, .. })) => {
                    let f = fetched(items.as_ref(), None);
                    (f.uid, Ok(f))
                }
                Untagged::DecodedWithBody(Response::Data(Data::Fetch { items, .. }), body) => {
                    let f = fetched(items.as_ref(), Some(body));
                    (f.uid, Ok(f))
                }
                Untagged::Raw(raw) => {
                    let uid = uid_in(raw);
                    let reply = first_line(raw);
                    (uid, Err(Damaged { uid, reply }))
                }
                _ => return,
            };
            let to = match next.as_mut() {
                Some(n) if uid.is_some_and(|u| n.uids.contains(&u)) => &mut n.early,
                _ => &mut reply,
            };
            match got {
                Ok(f) => to.fetched.push(f),
                Err(d) => to.damaged.push(d),
            }
        })
        .await;
    match done {
        Ok(done) => reply.done = Some(done),
        Err(e) => {
            reply.broke = Some(e);
            next = None;
        }
    }
    (reply, next)
}

/// One FETCH reply's items, owned; `body` is the reply's one literal when it was taken out
/// before decoding (its place in the response is then empty).
fn fetched(items: &[MessageDataItem<'_>], mut body: Option<&[u8]>) -> Fetched {
    let mut f = Fetched::default();
    let mut data_of = |n: &NString<'_>| {
        let is_literal = matches!(
            &n.0,
            Some(imap_codec::imap_types::core::IString::Literal(_))
        );
        match body.filter(|_| is_literal) {
            Some(bytes) => {
                body = None;
                Some(Bytes::copy_from_slice(bytes))
            }
            None => nstring_bytes(n),
        }
    };
    for item in items {
        match item {
            MessageDataItem::Uid(u) => f.uid = Some(u.get()),
            MessageDataItem::Rfc822Size(n) => f.size = Some(*n),
            MessageDataItem::Flags(fl) => f.flags = fl.iter().filter_map(flag_text).collect(),
            MessageDataItem::InternalDate(d) => f.date = Some(d.as_ref().to_utc()),
            MessageDataItem::BodyExt { data, .. }
            | MessageDataItem::Rfc822(data)
            | MessageDataItem::Rfc822Header(data) => f.body = data_of(data),
            _ => {}
        }
    }
    f
}

/// What EXAMINE or SELECT told of a mailbox.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Opened {
    pub uid_validity: Option<u32>,
    pub exists: u32,
    pub uid_next: Option<u32>,
    /// CONDSTORE's HIGHESTMODSEQ (asked for with `(CONDSTORE)`; none under NOMODSEQ).
    pub highest_modseq: Option<u64>,
}

async fn open(
    c: &mut Client,
    verb: &str,
    name: &str,
    condstore: bool,
) -> Result<(Opened, Done), ClientError> {
    let mut opened = Opened::default();
    let arg = astring(name);
    let verb = format!("{verb} ");
    let tail = if condstore { " (CONDSTORE)" } else { "" };
    let done = c
        .run(
            &[Part::Text(&verb), arg.part(), Part::Text(tail)],
            |r| match r {
                Untagged::Decoded(Response::Data(Data::Exists(n))) => opened.exists = *n,
                Untagged::Decoded(Response::Status(Status::Untagged(body))) => match &body.code {
                    Some(Code::UidValidity(v)) => opened.uid_validity = Some(v.get()),
                    Some(Code::UidNext(v)) => opened.uid_next = Some(v.get()),
                    Some(Code::HighestModSeq(v)) => opened.highest_modseq = Some(v.get()),
                    _ => {}
                },
                _ => {}
            },
        )
        .await?;
    Ok((opened, done))
}

/// EXAMINE (read-only); with `condstore`, `EXAMINE <mailbox> (CONDSTORE)` (RFC 7162), which
/// tells the folder's HIGHESTMODSEQ.
pub async fn examine(
    c: &mut Client,
    name: &str,
    condstore: bool,
) -> Result<(Opened, Done), ClientError> {
    open(c, "EXAMINE", name, condstore).await
}

pub async fn select(c: &mut Client, name: &str) -> Result<(Opened, Done), ClientError> {
    open(c, "SELECT", name, false).await
}

/// `STATUS <mailbox> (UIDVALIDITY)`.
pub async fn status_uid_validity(
    c: &mut Client,
    name: &str,
) -> Result<(Option<u32>, Done), ClientError> {
    let mut validity = None;
    let arg = astring(name);
    let done = c
        .run(
            &[
                Part::Text("STATUS "),
                arg.part(),
                Part::Text(" (UIDVALIDITY)"),
            ],
            |r| {
                if let Untagged::Decoded(Response::Data(Data::Status { items, .. })) = r {
                    for i in items.iter() {
                        if let StatusDataItem::UidValidity(v) = i {
                            validity = Some(v.get());
                        }
                    }
                }
            },
        )
        .await?;
    Ok((validity, done))
}

pub async fn create(c: &mut Client, name: &str) -> Result<Done, ClientError> {
    let arg = astring(name);
    c.run(&[Part::Text("CREATE "), arg.part()], |_| {}).await
}

/// `UID SEARCH <criteria>` in the selected mailbox: the UIDs found.
pub async fn uid_search(c: &mut Client, criteria: &str) -> Result<(Vec<u32>, Done), ClientError> {
    let mut uids = Vec::new();
    let command = format!("UID SEARCH {criteria}");
    let done = c
        .run(&[Part::Text(&command)], |r| {
            if let Untagged::Decoded(Response::Data(Data::Search(found, ..))) = r {
                uids.extend(found.iter().map(|u| u.get()));
            }
        })
        .await?;
    Ok((uids, done))
}

/// The text of an APPEND between the command's name and its literal: the mailbox, the flags
/// (`(\Seen $Work)` or empty) and the internal date, each followed by a space; `None` for a
/// mailbox name that has to go as a literal itself (not in one pipelined line).
pub fn append_head(name: &str, flags: &str, date: Option<&str>) -> Option<String> {
    let Astring::Quoted(mut head) = astring(name) else {
        return None;
    };
    head.push(' ');
    if !flags.is_empty() {
        head.push_str(flags);
        head.push(' ');
    }
    if let Some(d) = date {
        head.push_str(d);
        head.push(' ');
    }
    Some(head)
}

/// One message of a MULTIAPPEND: its flags and date text (`(\\Seen) "01-Jan-2026 ..." `, each
/// followed by a space) and its bytes.
pub struct MultiPart<'a> {
    pub args: String,
    pub message: &'a [u8],
}

/// MULTIAPPEND (RFC 3502): many messages into one mailbox in one command, which the server
/// stores in one transaction, all or none.
pub async fn multiappend(
    c: &mut Client,
    name: &str,
    messages: &[MultiPart<'_>],
) -> Result<Done, ClientError> {
    let arg = astring(name);
    let mut parts = vec![Part::Text("APPEND "), arg.part()];
    for m in messages {
        parts.push(Part::Text(" "));
        parts.push(Part::Text(&m.args));
        parts.push(Part::Literal(m.message));
    }
    c.run(&parts, |_| {}).await
}

/// The UIDs a MULTIAPPEND's `[APPENDUID <uidvalidity> <uid-set>]` names, in the messages'
/// order (RFC 4315: `1:3,7`).
pub fn appenduids(text: &str) -> Option<(u32, Vec<u32>)> {
    let rest = text.trim_start().strip_prefix('[')?;
    let (code, _) = rest.split_once(']')?;
    let mut words = code.split_ascii_whitespace();
    if !words.next()?.eq_ignore_ascii_case("APPENDUID") {
        return None;
    }
    let validity = words.next()?.parse().ok()?;
    let mut uids = Vec::new();
    for range in words.next()?.split(',') {
        match range.split_once(':') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
                if b < a || b - a > 1_000_000 {
                    return None;
                }
                uids.extend(a..=b);
            }
            None => uids.push(range.parse().ok()?),
        }
    }
    Some((validity, uids))
}

/// UIDPLUS's `[APPENDUID <uidvalidity> <uid>]` in an APPEND's OK (RFC 4315).
pub fn appenduid(text: &str) -> Option<(u32, u32)> {
    let rest = text.trim_start().strip_prefix('[')?;
    let (code, _) = rest.split_once(']')?;
    let mut words = code.split_ascii_whitespace();
    if !words.next()?.eq_ignore_ascii_case("APPENDUID") {
        return None;
    }
    let validity = words.next()?.parse().ok()?;
    let uid = words.next()?.parse().ok()?;
    Some((validity, uid))
}

/// `UID STORE <uid> FLAGS.SILENT (<flags>)`.
pub async fn uid_store_flags(c: &mut Client, uid: u32, flags: &str) -> Result<Done, ClientError> {
    let command = format!("UID STORE {uid} FLAGS.SILENT ({flags})");
    c.run(&[Part::Text(&command)], |_| {}).await
}

/// The server's capabilities, as it names them.
pub async fn capability(c: &mut Client) -> Result<(Vec<String>, Done), ClientError> {
    let mut caps = Vec::new();
    let done = c
        .run(&[Part::Text("CAPABILITY")], |r| {
            if let Untagged::Decoded(Response::Data(Data::Capability(list))) = r {
                caps.extend(list.as_ref().iter().map(|c| c.to_string()));
            }
        })
        .await?;
    Ok((caps, done))
}

/// LOGOUT, politely, ignoring how it ends. Waits (briefly) for the server to close the
/// connection: a user's slot goes to the next user only once the server has let go of this
/// connection, so a server counting connections never sees more than the limit.
pub async fn logout(c: &mut Client) {
    c.logout(std::time::Duration::from_secs(2)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appenduid_is_read_from_an_append_s_ok() {
        assert_eq!(
            appenduid("[APPENDUID 1700000000 42] Append completed."),
            Some((1_700_000_000, 42))
        );
        assert_eq!(appenduid("Append completed."), None);
        assert_eq!(appenduid("[APPENDUID 1 1:3] MULTIAPPEND"), None);
    }

    #[test]
    fn a_multiappend_s_uid_set_is_read_in_order() {
        assert_eq!(
            appenduids("[APPENDUID 7 3:5,9] done"),
            Some((7, vec![3, 4, 5, 9]))
        );
        assert_eq!(appenduids("[APPENDUID 7 5:3] done"), None);
        assert_eq!(appenduids("done"), None);
    }

    #[test]
    fn an_append_head_quotes_the_mailbox_and_keeps_flags_and_date() {
        assert_eq!(
            append_head("Sent", "(\\Seen)", Some("\"01-Jan-2026 00:00:00 +0000\"")).unwrap(),
            "\"Sent\" (\\Seen) \"01-Jan-2026 00:00:00 +0000\" "
        );
        assert_eq!(append_head("INBOX", "", None).unwrap(), "\"INBOX\" ");
        assert_eq!(append_head("a\r\nb", "", None), None);
    }

    #[test]
    fn names_are_quoted_or_sent_as_literals() {
        assert_eq!(quoted("*"), "\"*\"");
        assert_eq!(quoted("#shared.a\"b\\*"), "\"#shared.a\\\"b\\\\*\"");
        assert!(matches!(astring("AT&T"), Astring::Quoted(q) if q == "\"AT&T\""));
        assert!(matches!(astring("Entwürfe"), Astring::Literal(_)));
        assert!(matches!(astring("a\r\nb"), Astring::Literal(_)));
    }

    /// A fetch asked for ahead is on the wire before the earlier one is answered (this server
    /// answers nothing until it has both), and when the server runs both at once, as Dovecot
    /// does, each reply goes to the fetch of its UID, whichever completes first.
    #[tokio::test]
    async fn a_fetch_sent_ahead_goes_at_once_and_interleaved_replies_find_their_fetch() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (near, mut server) = tokio::io::duplex(1 << 16);
        let mut c = Client::new(super::super::ImapStream::Memory(near), Default::default());
        let items = "(UID BODY.PEEK[])";
        let serve = async {
            let want =
                b"m1 UID FETCH 1:2 (UID BODY.PEEK[])\r\nm2 UID FETCH 3 (UID BODY.PEEK[])\r\n";
            let mut got = vec![0u8; want.len()];
            server.read_exact(&mut got).await.unwrap();
            assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want));
            // The fetch sent ahead starts first and completes first.
            server
                .write_all(
                    b"* 3 FETCH (UID 3 BODY[] {1}\r\nc)\r\n* 1 FETCH (UID 1 BODY[] {1}\r\na)\r\n\
                      m2 OK done\r\n* 2 FETCH (UID 2 BODY[] {1}\r\nb)\r\nm1 OK done\r\n",
                )
                .await
                .unwrap();
            server
        };
        let fetch = async {
            let (first, ahead) =
                uid_fetch_then(&mut c, None, "1:2", items, Some(("3", items, &[3]))).await;
            let ahead = ahead.expect("the second fetch went ahead");
            assert!(ahead.is_for(&[3]) && !ahead.is_for(&[3, 4]));
            let (second, none) = uid_fetch_then(&mut c, Some(ahead), "3", items, None).await;
            assert!(none.is_none());
            (first, second)
        };
        let (_server, (first, second)) =
            tokio::time::timeout(std::time::Duration::from_secs(5), async {
                tokio::join!(serve, fetch)
            })
            .await
            .expect("both fetches went before any answer, and neither waited for more");
        let shown = |r: &FetchReply| -> Vec<(Option<u32>, Option<Bytes>)> {
            r.fetched.iter().map(|f| (f.uid, f.body.clone())).collect()
        };
        assert_eq!(
            shown(&first),
            vec![
                (Some(1), Some(Bytes::from("a"))),
                (Some(2), Some(Bytes::from("b")))
            ]
        );
        assert_eq!(shown(&second), vec![(Some(3), Some(Bytes::from("c")))]);
        assert!(matches!(first.done, Some(Done::Ok(_))));
        assert!(matches!(second.done, Some(Done::Ok(_))));
    }

    /// LOGOUT ends when the server has closed the connection, not at its tagged OK: until
    /// then the server still counts the connection against the user's limit.
    #[tokio::test]
    async fn logout_waits_for_the_server_to_close() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (near, mut server) = tokio::io::duplex(4096);
        let mut c = Client::new(super::super::ImapStream::Memory(near), Default::default());
        let client = tokio::spawn(async move { logout(&mut c).await });
        let mut line = vec![0u8; b"m1 LOGOUT\r\n".len()];
        server.read_exact(&mut line).await.unwrap();
        assert_eq!(line, b"m1 LOGOUT\r\n");
        server
            .write_all(b"* BYE Logging out\r\nm1 OK Logout completed.\r\n")
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(!client.is_finished(), "LOGOUT returned before the close");
        drop(server);
        tokio::time::timeout(std::time::Duration::from_secs(5), client)
            .await
            .expect("LOGOUT returns once the server closes")
            .unwrap();
    }
}
