//! APPEND, with the target-side limits real servers impose (size, quota, forgotten flags).

use bytes::Bytes;
use imap_codec::imap_types::core::Tag;
use imap_codec::imap_types::datetime::DateTime;
use imap_codec::imap_types::extensions::binary::LiteralOrLiteral8;
use imap_codec::imap_types::flag::Flag;
use imap_codec::imap_types::mailbox::Mailbox;
use imap_codec::imap_types::response::{Code, Response, Status};

use crate::cmd::mailbox::{store_error, target};
use crate::error::Error;
use crate::faults::{AppendLimitReply, Quirks};
use crate::session::{Done, Session, flag_set, nz};
use crate::store::FLAGGED;

/// How an over-size APPEND is refused, before its literal is read.
pub fn too_big_reply(quirks: &Quirks, tag: Option<Tag<'static>>) -> Response<'static> {
    let status = match quirks.append_limit_reply {
        AppendLimitReply::Exchange => Status::bad(tag, None, "Command Argument Error. 11"),
        AppendLimitReply::Generic => Status::no(
            tag,
            Some(Code::TooBig),
            "Maximum size of appendable message has been exceeded",
        ),
    };
    Response::Status(status.expect("valid text"))
}

pub fn append(
    s: &mut Session,
    mailbox: &Mailbox<'_>,
    flags: &[Flag<'_>],
    date: Option<DateTime>,
    message: LiteralOrLiteral8<'static>,
) -> Done {
    let (_, user, folder) = match target(s, mailbox) {
        Ok(t) => t,
        Err(done) => return done,
    };
    // Take the bytes out of the parsed command: no copy.
    let raw: Bytes = match message {
        LiteralOrLiteral8::Literal(l) => l.into_inner().into_owned().into(),
        LiteralOrLiteral8::Literal8(l) => l.data.into_owned().into(),
    };
    let quirks = &s.shared.quirks;
    if let Some(limit) = quirks.max_append_size
        && raw.len() as u64 > limit
    {
        return match quirks.append_limit_reply {
            AppendLimitReply::Exchange => Done::Bad("Command Argument Error. 11".into()),
            AppendLimitReply::Generic => Done::No(
                Some(Code::TooBig),
                "Maximum size of appendable message has been exceeded".into(),
            ),
        };
    }
    if let Some(quota) = quirks.quota_bytes {
        let used = s.shared.store.user_bytes(&user).unwrap_or(0);
        if used + raw.len() as u64 > quota {
            return Done::No(Some(Code::OverQuota), "Server Unavailable. 15".into());
        }
    }
    let mut flags = flag_set(flags);
    if quirks.forget_flagged_on_append {
        flags.remove(FLAGGED);
    }
    let date = date
        .map(|d| *d.as_ref())
        .unwrap_or_else(|| chrono::Local::now().fixed_offset());
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    match s.shared.store.append(&user, &folder, raw, &flags, date) {
        Ok((uid_validity, uid)) => Done::Ok(
            Some(Code::AppendUid {
                uid_validity: nz(uid_validity),
                uid: nz(uid),
            }),
            "APPEND completed".into(),
        ),
        Err(Error::NoSuchFolder(name)) => Done::No(
            Some(Code::TryCreate),
            format!("Mailbox doesn't exist: {name}"),
        ),
        Err(e) => store_error(e),
    }
}
