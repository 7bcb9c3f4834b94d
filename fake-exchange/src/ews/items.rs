//! SyncFolderItems (replayable sync states, at most MaxChangesReturned changes a call), GetItem
//! (MIME for messages, iCalendar for events, vCard for contacts), ExportItems, ConvertId.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::folders::resolve_folder;
use super::ids::{FolderRef, ItemRef, SyncState, change_key};
use super::{Context, message_error, message_ok, wrap};
use crate::org::{Folder, Item, ItemKind, OrgState};
use mailmig_xml::{Element, esc};

const MAX_CHANGES: usize = 512;

fn wants_mime(op: &Element) -> bool {
    let Some(shape) = op.child("ItemShape") else {
        return false;
    };
    if shape
        .child_text("IncludeMimeContent")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        return true;
    }
    shape.child("AdditionalProperties").is_some_and(|p| {
        p.children
            .iter()
            .any(|f| f.attr("FieldURI") == Some("item:MimeContent"))
    })
}

fn item_id(mailbox: &str, item: &Item) -> String {
    format!(
        "<t:ItemId Id=\"{}\" ChangeKey=\"{}\"/>",
        ItemRef {
            mailbox: mailbox.to_string(),
            item: item.id
        }
        .encode(),
        change_key(item.content_seq.max(item.read_seq))
    )
}

pub fn item_xml(mailbox: &str, folder: &Folder, item: &Item, mime: bool) -> String {
    let el = item.kind.element();
    let mime = if mime {
        format!(
            "<t:MimeContent CharacterSet=\"UTF-8\">{}</t:MimeContent>",
            STANDARD.encode(&item.mime)
        )
    } else {
        String::new()
    };
    let parent = FolderRef {
        mailbox: mailbox.to_string(),
        folder: folder.id,
    };
    let read = if item.kind == ItemKind::Message {
        format!("<t:IsRead>{}</t:IsRead>", item.is_read)
    } else {
        String::new()
    };
    format!(
        "<t:{el}>{mime}{}<t:ParentFolderId Id=\"{}\" ChangeKey=\"{}\"/><t:ItemClass>{}</t:ItemClass><t:Subject>{}</t:Subject><t:DateTimeReceived>{}</t:DateTimeReceived><t:Size>{}</t:Size>{read}</t:{el}>",
        item_id(mailbox, item),
        parent.encode(),
        change_key(folder.changed_seq),
        item.kind.item_class(),
        esc(&item.subject),
        item.received.format("%Y-%m-%dT%H:%M:%SZ"),
        item.mime.len(),
    )
}

enum Change<'a> {
    Create(&'a Item),
    Update(&'a Item),
    ReadFlag(&'a Item),
    Delete(u64),
}

pub fn sync_folder_items(state: &OrgState, ctx: &Context<'_>, op: &Element) -> String {
    const OP: &str = "SyncFolderItems";
    let Some(target) = op.child("SyncFolderId").and_then(|s| s.children.first()) else {
        return wrap(OP, &message_error(OP, "ErrorInvalidArgument"));
    };
    let (mailbox, folder_id) = match resolve_folder(state, ctx, target) {
        Ok(t) => t,
        Err(code) => return wrap(OP, &message_error(OP, code)),
    };
    let max = op
        .child_text("MaxChangesReturned")
        .and_then(|m| m.parse::<usize>().ok())
        .unwrap_or(0);
    if !(1..=MAX_CHANGES).contains(&max) {
        return wrap(OP, &message_error(OP, "ErrorInvalidArgument"));
    }
    let mb = state.mailbox(&mailbox).expect("resolved");
    let folder = &mb.folders[folder_id as usize];
    // The mailbox's sync epoch is part of the scope: after invalidate_sync_states (a restore,
    // a move) every earlier state is ErrorInvalidSyncStateData.
    let scope = format!("{mailbox}/i{folder_id}/e{}", mb.sync_epoch);
    let seen = match op.child_text("SyncState").filter(|s| !s.is_empty()) {
        None => 0,
        Some(text) => match SyncState::decode(text) {
            Some(s) if s.scope == scope && s.seq <= mb.seq => s.seq,
            _ => return wrap(OP, &message_error(OP, "ErrorInvalidSyncStateData")),
        },
    };
    let ignored: Vec<u64> = op
        .child("Ignore")
        .map(|i| {
            i.children
                .iter()
                .filter_map(|e| ItemRef::decode(e.attr("Id").unwrap_or("")))
                .map(|r| r.item)
                .collect()
        })
        .unwrap_or_default();
    // Every change since `seen`, at the counter value that made it.
    let mut changes: Vec<(u64, Change<'_>)> = Vec::new();
    for item in folder.items.values() {
        if ignored.contains(&item.id) {
            continue;
        }
        let last = item.created_seq.max(item.content_seq).max(item.read_seq);
        if item.created_seq > seen {
            changes.push((last, Change::Create(item)));
        } else if item.content_seq > seen {
            changes.push((last, Change::Update(item)));
        } else if item.read_seq > seen {
            changes.push((item.read_seq, Change::ReadFlag(item)));
        }
    }
    for &(id, seq) in &folder.tombstones {
        if seq > seen {
            changes.push((seq, Change::Delete(id)));
        }
    }
    changes.sort_by_key(|(seq, _)| *seq);
    let complete = changes.len() <= max;
    changes.truncate(max);
    ctx.counters.count_item_changes(changes.len());
    let next = if complete {
        mb.seq
    } else {
        changes.last().map_or(seen, |(s, _)| *s)
    };
    let mut body = String::new();
    for (_, change) in &changes {
        match change {
            Change::Create(i) => body.push_str(&format!(
                "<t:Create>{}</t:Create>",
                item_xml(&mailbox, folder, i, false)
            )),
            Change::Update(i) => body.push_str(&format!(
                "<t:Update>{}</t:Update>",
                item_xml(&mailbox, folder, i, false)
            )),
            Change::ReadFlag(i) => body.push_str(&format!(
                "<t:ReadFlagChange>{}<t:IsRead>{}</t:IsRead></t:ReadFlagChange>",
                item_id(&mailbox, i),
                i.is_read
            )),
            Change::Delete(id) => body.push_str(&format!(
                "<t:Delete><t:ItemId Id=\"{}\" ChangeKey=\"{}\"/></t:Delete>",
                ItemRef {
                    mailbox: mailbox.clone(),
                    item: *id
                }
                .encode(),
                change_key(next)
            )),
        }
    }
    let state_text = SyncState { scope, seq: next }.encode();
    wrap(
        OP,
        &message_ok(
            OP,
            &format!(
                "<m:SyncState>{state_text}</m:SyncState><m:IncludesLastItemInRange>{complete}</m:IncludesLastItemInRange><m:Changes>{body}</m:Changes>"
            ),
        ),
    )
}

/// An item id -> the item, with the error EWS gives when it cannot be read.
fn resolve_item<'s>(
    state: &'s OrgState,
    ctx: &Context<'_>,
    e: &Element,
) -> Result<(String, &'s Folder, &'s Item), &'static str> {
    let r = ItemRef::decode(e.attr("Id").unwrap_or("")).ok_or("ErrorInvalidIdMalformed")?;
    // No right to the mailbox reads as "not found" for items, as Exchange answers.
    let mailbox = ctx.open(state, &r.mailbox).map_err(|code| match code {
        "ErrorAccessDenied" => "ErrorItemNotFound",
        other => other,
    })?;
    let mb = state.mailbox(&mailbox).ok_or("ErrorItemNotFound")?;
    let (folder, item) = mb.find_item(r.item).ok_or("ErrorItemNotFound")?;
    if let Some(code) = item.broken {
        return Err(code);
    }
    Ok((mailbox, folder, item))
}

pub fn get_item(state: &OrgState, ctx: &Context<'_>, op: &Element) -> String {
    const OP: &str = "GetItem";
    let mime = wants_mime(op);
    let mut messages = String::new();
    let ids = op
        .child("ItemIds")
        .map(|f| f.children.as_slice())
        .unwrap_or(&[]);
    for e in ids {
        match resolve_item(state, ctx, e) {
            Ok((mailbox, folder, item)) => messages.push_str(&message_ok(
                OP,
                &format!(
                    "<m:Items>{}</m:Items>",
                    item_xml(&mailbox, folder, item, mime)
                ),
            )),
            Err(code) => messages.push_str(&message_error(OP, code)),
        }
    }
    wrap(OP, &messages)
}

pub fn export_items(state: &OrgState, ctx: &Context<'_>, op: &Element) -> String {
    const OP: &str = "ExportItems";
    let mut messages = String::new();
    let ids = op
        .child("ItemIds")
        .map(|f| f.children.as_slice())
        .unwrap_or(&[]);
    for e in ids {
        match resolve_item(state, ctx, e) {
            Ok((mailbox, _, item)) => messages.push_str(&message_ok(
                OP,
                &format!(
                    "{}<m:Data>{}</m:Data>",
                    item_id(&mailbox, item).replace("<t:ItemId", "<m:ItemId"),
                    STANDARD.encode(&item.mime)
                ),
            )),
            Err(code) => messages.push_str(&message_error(OP, code)),
        }
    }
    wrap(OP, &messages)
}

/// ConvertId: ids of this server stay what they are (one format); anything else is malformed.
pub fn convert_id(state: &OrgState, ctx: &Context<'_>, op: &Element) -> String {
    const OP: &str = "ConvertId";
    let _ = (state, ctx);
    let format = op.attr("DestinationFormat").unwrap_or("EwsId");
    let mut messages = String::new();
    let ids = op
        .child("SourceIds")
        .map(|f| f.children.as_slice())
        .unwrap_or(&[]);
    for e in ids {
        let id = e.attr("Id").unwrap_or("");
        let mailbox = ItemRef::decode(id)
            .map(|r| r.mailbox)
            .or_else(|| FolderRef::decode(id).map(|r| r.mailbox));
        match mailbox {
            Some(m) => messages.push_str(&message_ok(
                OP,
                &format!(
                    "<m:AlternateId xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:type=\"t:AlternateIdType\" Format=\"{}\" Id=\"{}\" Mailbox=\"{}\"/>",
                    esc(format),
                    esc(id),
                    esc(&m)
                ),
            )),
            None => messages.push_str(&message_error(OP, "ErrorInvalidIdMalformed")),
        }
    }
    wrap(OP, &messages)
}
