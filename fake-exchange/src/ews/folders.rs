//! GetFolder, FindFolder (Shallow and Deep, paged) and SyncFolderHierarchy.

use super::ids::{FolderRef, SyncState, change_key};
use super::{Context, message_error, message_ok, named_mailbox, wrap};
use crate::org::{Folder, Mailbox, OrgState};
use mailmig_xml::{Element, esc};

/// FindFolder returns at most this many folders per call (as Exchange does).
const FIND_FOLDER_MAX: usize = 1000;

/// A folder reference (`FolderId` or `DistinguishedFolderId`) -> (mailbox, folder id).
pub fn resolve_folder(
    state: &OrgState,
    ctx: &Context<'_>,
    e: &Element,
) -> Result<(String, u32), &'static str> {
    match e.name.as_str() {
        "FolderId" => {
            let r =
                FolderRef::decode(e.attr("Id").unwrap_or("")).ok_or("ErrorInvalidIdMalformed")?;
            let mailbox = ctx.open(state, &r.mailbox)?;
            let mb = state.mailbox(&mailbox).ok_or("ErrorNonExistentMailbox")?;
            if (r.folder as usize) < mb.folders.len() {
                Ok((mailbox, r.folder))
            } else {
                Err("ErrorFolderNotFound")
            }
        }
        "DistinguishedFolderId" => {
            let mailbox = named_mailbox(e).unwrap_or_else(|| ctx.default_mailbox());
            let mailbox = ctx.open(state, &mailbox)?;
            let mb = state.mailbox(&mailbox).ok_or("ErrorNonExistentMailbox")?;
            let id = e.attr("Id").unwrap_or("");
            mb.well_known(id)
                .map(|f| (mailbox, f.id))
                .ok_or("ErrorFolderNotFound")
        }
        _ => Err("ErrorInvalidIdMalformed"),
    }
}

pub fn folder_xml(mailbox: &str, mb: &Mailbox, f: &Folder) -> String {
    let id = FolderRef {
        mailbox: mailbox.to_string(),
        folder: f.id,
    };
    let parent = f
        .parent
        .map(|p| {
            let pid = FolderRef {
                mailbox: mailbox.to_string(),
                folder: p,
            };
            format!(
                "<t:ParentFolderId Id=\"{}\" ChangeKey=\"{}\"/>",
                pid.encode(),
                change_key(mb.folders[p as usize].changed_seq)
            )
        })
        .unwrap_or_default();
    let children = mb.folders.iter().filter(|c| c.parent == Some(f.id)).count();
    let el = f.class.element();
    format!(
        "<t:{el}><t:FolderId Id=\"{}\" ChangeKey=\"{}\"/>{parent}<t:FolderClass>{}</t:FolderClass><t:DisplayName>{}</t:DisplayName><t:TotalCount>{}</t:TotalCount><t:ChildFolderCount>{children}</t:ChildFolderCount><t:UnreadCount>{}</t:UnreadCount></t:{el}>",
        id.encode(),
        change_key(f.changed_seq),
        f.class.ipf(),
        esc(&f.name),
        f.items.len(),
        f.unread()
    )
}

pub fn get_folder(state: &OrgState, ctx: &Context<'_>, op: &Element) -> String {
    let mut messages = String::new();
    let ids = op
        .child("FolderIds")
        .map(|f| f.children.as_slice())
        .unwrap_or(&[]);
    for e in ids {
        match resolve_folder(state, ctx, e) {
            Ok((mailbox, id)) => {
                let mb = &state.mailbox(&mailbox).expect("resolved");
                let f = &mb.folders[id as usize];
                messages.push_str(&message_ok(
                    "GetFolder",
                    &format!("<m:Folders>{}</m:Folders>", folder_xml(&mailbox, mb, f)),
                ));
            }
            Err(code) => messages.push_str(&message_error("GetFolder", code)),
        }
    }
    wrap("GetFolder", &messages)
}

pub fn find_folder(state: &OrgState, ctx: &Context<'_>, op: &Element) -> String {
    let deep = op.attr("Traversal") == Some("Deep");
    let view = op.child("IndexedPageFolderView");
    let max = view
        .and_then(|v| v.attr("MaxEntriesReturned"))
        .and_then(|m| m.parse::<usize>().ok())
        .unwrap_or(FIND_FOLDER_MAX)
        .clamp(1, FIND_FOLDER_MAX);
    let offset = view
        .and_then(|v| v.attr("Offset"))
        .and_then(|m| m.parse::<usize>().ok())
        .unwrap_or(0);
    let from_end = view.and_then(|v| v.attr("BasePoint")) == Some("End");
    let mut messages = String::new();
    let parents = op
        .child("ParentFolderIds")
        .map(|f| f.children.as_slice())
        .unwrap_or(&[]);
    for e in parents {
        match resolve_folder(state, ctx, e) {
            Ok((mailbox, id)) => {
                let mb = state.mailbox(&mailbox).expect("resolved");
                let all: Vec<u32> = if deep {
                    mb.descendants(id)
                } else {
                    mb.folders
                        .iter()
                        .filter(|f| f.parent == Some(id))
                        .map(|f| f.id)
                        .collect()
                };
                let total = all.len();
                let (start, end) = if from_end {
                    let end = total.saturating_sub(offset);
                    (end.saturating_sub(max), end)
                } else {
                    (offset.min(total), (offset + max).min(total))
                };
                let folders: String = all[start..end]
                    .iter()
                    .map(|&f| folder_xml(&mailbox, mb, &mb.folders[f as usize]))
                    .collect();
                let last = if from_end { start == 0 } else { end >= total };
                messages.push_str(&message_ok(
                    "FindFolder",
                    &format!(
                        "<m:RootFolder IndexedPagingOffset=\"{end}\" TotalItemsInView=\"{total}\" IncludesLastItemInRange=\"{last}\"><t:Folders>{folders}</t:Folders></m:RootFolder>"
                    ),
                ));
            }
            Err(code) => messages.push_str(&message_error("FindFolder", code)),
        }
    }
    wrap("FindFolder", &messages)
}

pub fn sync_folder_hierarchy(state: &OrgState, ctx: &Context<'_>, op: &Element) -> String {
    let target = match op.child("SyncFolderId").and_then(|s| s.children.first()) {
        Some(e) => resolve_folder(state, ctx, e),
        None => {
            let mailbox = ctx.default_mailbox();
            ctx.open(state, &mailbox).and_then(|m| {
                state
                    .mailbox(&m)
                    .and_then(|mb| mb.well_known("msgfolderroot").map(|f| f.id))
                    .map(|f| (m, f))
                    .ok_or("ErrorFolderNotFound")
            })
        }
    };
    let (mailbox, root) = match target {
        Ok(t) => t,
        Err(code) => {
            return wrap(
                "SyncFolderHierarchy",
                &message_error("SyncFolderHierarchy", code),
            );
        }
    };
    let mb = state.mailbox(&mailbox).expect("resolved");
    let scope = format!("{mailbox}/h{root}");
    let seen = match op.child_text("SyncState").filter(|s| !s.is_empty()) {
        None => 0,
        Some(text) => match SyncState::decode(text) {
            Some(s) if s.scope == scope && s.seq <= mb.seq => s.seq,
            _ => {
                return wrap(
                    "SyncFolderHierarchy",
                    &message_error("SyncFolderHierarchy", "ErrorInvalidSyncStateData"),
                );
            }
        },
    };
    let changes: String = mb
        .descendants(root)
        .into_iter()
        .map(|id| &mb.folders[id as usize])
        .filter(|f| f.created_seq > seen)
        .map(|f| format!("<t:Create>{}</t:Create>", folder_xml(&mailbox, mb, f)))
        .collect();
    let state_text = SyncState { scope, seq: mb.seq }.encode();
    wrap(
        "SyncFolderHierarchy",
        &message_ok(
            "SyncFolderHierarchy",
            &format!(
                "<m:SyncState>{state_text}</m:SyncState><m:IncludesLastFolderInRange>true</m:IncludesLastFolderInRange><m:Changes>{changes}</m:Changes>"
            ),
        ),
    )
}
