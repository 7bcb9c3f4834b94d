//! Commands whose tagged reply is seen. async-imap's FETCH, SEARCH and LIST streams end quietly
//! on a NO, a BAD, a BYE or a dropped connection, which reads as a short list; these read the
//! replies themselves, so a refused or cut listing is an error, never fewer messages.

use async_imap::Session;
use async_imap::imap_proto::NameAttribute;
use bytes::Bytes;

use super::ImapStream;
use super::login::backoff_hint;

/// Runs a command and reads its replies itself, handing each untagged one to `on_data`, so
/// the tagged reply is seen: `Ok(None)` for OK, `Ok(Some(text))` for NO (IMAP's NO is data),
/// an error for BAD, BYE, or a connection that ends first. async-imap's FETCH, SEARCH and
/// LIST streams end quietly on all of these, which reads as a short list.
async fn run_checked(
    s: &mut Session<ImapStream>,
    command: &str,
    mut on_data: impl FnMut(&async_imap::imap_proto::Response<'_>),
) -> Result<Option<String>, String> {
    use async_imap::imap_proto::{Response, Status};
    let tag = s.run_command(command).await.map_err(|e| e.to_string())?;
    loop {
        let Some(r) = s.read_response().await.map_err(|e| e.to_string())? else {
            return Err(format!("the server closed the connection during {command}"));
        };
        match r.parsed() {
            Response::Done {
                tag: t,
                status,
                information,
                ..
            } if *t == tag => {
                let text = information
                    .as_deref()
                    .unwrap_or("no reason given")
                    .to_string();
                return match status {
                    Status::Ok => Ok(None),
                    Status::No => Ok(Some(text)),
                    _ => Err(format!("{command} failed: {text}")),
                };
            }
            Response::Data {
                status: Status::Bye,
                information,
                ..
            } => {
                return Err(format!(
                    "the server said BYE: {}",
                    information.as_deref().unwrap_or("")
                ));
            }
            other => on_data(other),
        }
    }
}

/// One FETCH response, owned.
#[derive(Debug, Default)]
pub(crate) struct Fetched {
    pub uid: Option<u32>,
    pub flags: Vec<String>,
    pub size: Option<u32>,
    pub date: Option<chrono::DateTime<chrono::Utc>>,
    pub body: Option<Bytes>,
}

/// A checked UID FETCH: what came back, and the NO text if some of the set was refused. A
/// throttling NO is an error (the caller backs off and reconnects). Callers bound the bytes
/// per call.
pub(crate) async fn fetch_checked(
    s: &mut Session<ImapStream>,
    set: &str,
    items: &str,
) -> Result<(Vec<Fetched>, Option<String>), String> {
    use async_imap::imap_proto::{AttributeValue, Response};
    let mut out = Vec::new();
    let refused = run_checked(s, &format!("UID FETCH {set} {items}"), |r| {
        let Response::Fetch(_, attrs) = r else {
            return;
        };
        let mut f = Fetched::default();
        for a in attrs {
            match a {
                AttributeValue::Uid(u) => f.uid = Some(*u),
                AttributeValue::Rfc822Size(n) => f.size = Some(*n),
                AttributeValue::Flags(fl) => {
                    f.flags = fl
                        .iter()
                        .filter(|x| !x.eq_ignore_ascii_case("\\Recent"))
                        .map(|x| x.to_string())
                        .collect()
                }
                AttributeValue::InternalDate(d) => {
                    f.date = chrono::DateTime::parse_from_str(d, "%d-%b-%Y %H:%M:%S %z")
                        .ok()
                        .map(|d| d.to_utc())
                }
                AttributeValue::BodySection { data: Some(d), .. }
                | AttributeValue::Rfc822(Some(d)) => f.body = Some(Bytes::copy_from_slice(d)),
                _ => {}
            }
        }
        out.push(f);
    })
    .await?;
    match refused {
        Some(text) if backoff_hint(&text).is_some() => Err(text),
        refused => Ok((out, refused)),
    }
}

/// A LIST entry: the name as sent (modified UTF-7), its delimiter, and whether it can be
/// selected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Listed {
    pub wire_name: String,
    pub delimiter: Option<char>,
    pub selectable: bool,
}

/// An IMAP quoted string.
fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// `LIST "" <pattern>` whose tagged reply is seen: a NO is an error, not an empty mailbox.
/// `pattern` is sent as given (already in modified UTF-7).
pub(crate) async fn list_checked(
    s: &mut Session<ImapStream>,
    pattern: &str,
) -> Result<Vec<Listed>, String> {
    use async_imap::imap_proto::{MailboxDatum, Response};
    let mut out = Vec::new();
    let command = format!("LIST \"\" {}", quoted(pattern));
    let refused = run_checked(s, &command, |r| {
        if let Response::MailboxData(MailboxDatum::List {
            name_attributes,
            delimiter,
            name,
        }) = r
        {
            out.push(Listed {
                wire_name: name.to_string(),
                delimiter: delimiter.as_deref().and_then(|d| d.chars().next()),
                selectable: !name_attributes
                    .iter()
                    .any(|a| matches!(a, NameAttribute::NoSelect)),
            });
        }
    })
    .await?;
    match refused {
        None => Ok(out),
        Some(why) => Err(format!("{command} failed: {why}")),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn patterns_are_quoted() {
        assert_eq!(super::quoted("*"), "\"*\"");
        assert_eq!(super::quoted("#shared.a\"b\\*"), "\"#shared.a\\\"b\\\\*\"");
    }
}
