//! Extension commands: IDLE (RFC 2177), ENABLE (RFC 5161), MOVE (RFC 6851) and MULTIAPPEND
//! (RFC 3502). Each answers BAD when the configuration switched its extension off, as a
//! server without it does.

use std::io;
use std::time::Duration;

use imap_codec::imap_types::command::{Command, CommandBody};
use imap_codec::imap_types::core::Vec1;
use imap_codec::imap_types::extensions::enable::CapabilityEnable;
use imap_codec::imap_types::mailbox::Mailbox;
use imap_codec::imap_types::response::{Code, CommandContinuationRequest, Data, Response, Status};
use imap_codec::imap_types::sequence::SequenceSet;

use crate::cmd::selected::{copy, sync_view};
use crate::connection::{Connection, IdleInput};
use crate::session::{Done, Session, State};

/// How often an idling session looks for news (other sessions' changes).
const IDLE_POLL: Duration = Duration::from_millis(100);

pub async fn idle(s: &mut Session, conn: &mut Connection) -> io::Result<Done> {
    if !s.shared.extensions.idle {
        return Ok(Done::Bad("IDLE is not enabled".into()));
    }
    let cont = CommandContinuationRequest::basic(None, "idling").expect("valid text");
    conn.send(&Response::CommandContinuationRequest(cont))
        .await?;
    conn.flush().await?;
    loop {
        let input = tokio::select! {
            input = conn.read_idle_done() => input?,
            _ = tokio::time::sleep(IDLE_POLL) => {
                sync_view(s, conn, true).await?;
                conn.flush().await?;
                continue;
            }
        };
        return Ok(match input {
            IdleInput::Done => Done::ok("IDLE terminated"),
            IdleInput::Other => Done::Bad("Expected DONE".into()),
            IdleInput::Closed => Done::Closed,
        });
    }
}

pub async fn enable(
    s: &mut Session,
    conn: &mut Connection,
    capabilities: &Vec1<CapabilityEnable<'_>>,
) -> io::Result<Done> {
    if !s.shared.extensions.enable {
        return Ok(Done::Bad("ENABLE is not enabled".into()));
    }
    let mut enabled = Vec::new();
    for c in capabilities.as_ref() {
        if matches!(c, CapabilityEnable::CondStore)
            && s.shared.extensions.condstore
            && s.enabled.insert("CONDSTORE".into())
        {
            s.condstore = true;
            enabled.push(CapabilityEnable::CondStore);
        }
    }
    conn.send(&Response::Data(Data::Enabled {
        capabilities: enabled,
    }))
    .await?;
    Ok(Done::ok("ENABLE completed"))
}

/// MOVE: COPY, then the COPYUID as an untagged OK, then the source messages expunged (the
/// EXPUNGE responses come from the sync after the command).
pub async fn move_messages(
    s: &mut Session,
    conn: &mut Connection,
    set: &SequenceSet,
    mailbox: &Mailbox<'_>,
    uid: bool,
) -> io::Result<Done> {
    if !s.shared.extensions.move_ {
        return Ok(Done::Bad("MOVE is not enabled".into()));
    }
    if let State::Selected(sel) = &s.state
        && sel.read_only
    {
        return Ok(Done::no("Mailbox is read-only"));
    }
    let targets = s.select_messages(set, uid);
    let copied = copy(s, set, mailbox, uid);
    let code = match copied {
        Done::Ok(code, _) => code,
        other => return Ok(other),
    };
    if let Some(code @ Code::CopyUid { .. }) = code {
        let status = Status::ok(None, Some(code), "Moved").expect("valid text");
        conn.send(&Response::Status(status)).await?;
    }
    let State::Selected(sel) = &s.state else {
        return Ok(Done::Bad("No mailbox selected".into()));
    };
    let moved: Vec<u32> = targets.iter().map(|t| t.1).collect();
    let _ = s.shared.store.with_folder(&sel.user, &sel.folder, |f| {
        f.expunge_where(|m| moved.contains(&m.uid))
    });
    Ok(Done::ok("MOVE completed"))
}

/// MULTIAPPEND: every message or none (RFC 3502 §6.3.11: a failure leaves the mailbox as
/// it was).
pub fn multiappend(s: &mut Session, commands: Vec<Command<'static>>) -> Done {
    if !s.shared.extensions.multiappend {
        return Done::Bad("MULTIAPPEND is not enabled".into());
    }
    let mut appended: Vec<(String, String, u32)> = Vec::new();
    let mut codes = Vec::new();
    for command in commands {
        let CommandBody::Append {
            mailbox,
            flags,
            date,
            message,
        } = command.body
        else {
            continue;
        };
        let target = crate::cmd::mailbox::target(s, &mailbox).ok();
        match crate::cmd::append::append(s, &mailbox, &flags, date, message) {
            Done::Ok(code, _) => {
                if let (Some((_, user, folder)), Some(Code::AppendUid { uid, .. })) =
                    (&target, &code)
                {
                    appended.push((user.clone(), folder.clone(), uid.get()));
                }
                codes.push(code);
            }
            failed => {
                for (user, folder, uid) in appended {
                    let _ = s.shared.store.expunge_uids(&user, &folder, &[uid]);
                }
                return failed;
            }
        }
    }
    // APPENDUID with the set of new UIDs (RFC 4315 §3 allows a set for MULTIAPPEND).
    let uids: Vec<u32> = appended.iter().map(|a| a.2).collect();
    match codes.first() {
        Some(Some(Code::AppendUid { uid_validity, .. })) if !uids.is_empty() => {
            let set = crate::cmd::search::compress(&uids);
            Done::Ok(
                Some(crate::session::other_code_owned(format!(
                    "APPENDUID {uid_validity} {set}"
                ))),
                "APPEND completed".into(),
            )
        }
        _ => Done::ok("APPEND completed"),
    }
}
