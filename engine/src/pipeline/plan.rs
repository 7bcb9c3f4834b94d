//! Which source folders are migrated, and where they land (exchange-migration.md §6): split on
//! the server's delimiter, well-known names matched case-insensitively, mail folders only, a
//! `/` inside a name skipped, ExcludeFolders/IncludeFolders applied, and case-only collisions
//! merged predictably and reported.

use std::collections::HashMap;

use crate::source::FolderContent;
pub use crate::source::SourceFolder;
use crate::sync::SkipReason;

/// What happens to a source folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Copy into this target path (`/`-separated); `merged` names the folder that claimed the
    /// same target first (a case-only collision or two aliases of a well-known folder).
    Copy {
        target: String,
        merged: Option<String>,
    },
    /// Not migrated, with the reason a report shows.
    Skip { reason: SkipReason, detail: String },
}

/// Exchange's well-known folders by the names IMAP servers use.
fn well_known(path: &[&str]) -> Option<(&'static str, usize)> {
    let lower: Vec<String> = path.iter().map(|p| p.to_lowercase()).collect();
    let joined2 = lower.iter().take(2).cloned().collect::<Vec<_>>().join("/");
    // Two-level forms first: INBOX.Trash, [Gmail]/Sent Mail, ...
    let two = match joined2.as_str() {
        "inbox/trash" | "[gmail]/trash" => Some("Deleted Items"),
        "inbox/drafts" => Some("Drafts"),
        "inbox/sent items" | "inbox/sent" | "[gmail]/sent mail" => Some("Sent Items"),
        "[gmail]/spam" => Some("Junk Email"),
        _ => None,
    };
    if let Some(t) = two
        && path.len() >= 2
    {
        return Some((t, 2));
    }
    let one = match lower.first()?.as_str() {
        "inbox" => "Inbox",
        "deleted items" | "deleted messages" | "trash" => "Deleted Items",
        "drafts" | "draft" => "Drafts",
        "junk e-mail" | "junk email" | "spam" | "junk" => "Junk Email",
        "sent items" | "sent messages" | "sent" => "Sent Items",
        "archive" => "Archive",
        _ => return None,
    };
    Some((one, 1))
}

/// Folders Exchange's IMAP exposes that hold no mail, and public folders.
const NOT_MAIL: [&str; 7] = [
    "calendar",
    "contacts",
    "tasks",
    "notes",
    "journal",
    "public folders",
    "conversation history",
];

/// The well-known token of a target root (`#Inbox#` matches Inbox, ...).
fn well_known_token(target_root: &str) -> Option<&'static str> {
    Some(match target_root {
        "Inbox" => "inbox",
        "Sent Items" => "sentitems",
        "Deleted Items" => "deleteditems",
        "Drafts" => "drafts",
        "Junk Email" => "junkemail",
        "Archive" => "archive",
        _ => return None,
    })
}

/// Does a filter entry (`Name`, `Name/*`, `#WellKnown#`, `#WellKnown#/*`) match a folder?
fn filter_matches(filter: &str, relative: &[&str], target: &str) -> bool {
    let (base, subtree) = match filter.strip_suffix("/*") {
        Some(b) => (b, true),
        None => (filter, false),
    };
    if let Some(token) = base.strip_prefix('#').and_then(|b| b.strip_suffix('#')) {
        let token = token.to_lowercase().replace(' ', "");
        if token == "root" {
            return subtree || relative.is_empty();
        }
        let root = target.split('/').next().unwrap_or("");
        let level = target.split('/').count();
        return well_known_token(root) == Some(token.as_str()) && (subtree || level == 1);
    }
    let base: Vec<String> = base.split('/').map(str::to_lowercase).collect();
    let rel: Vec<String> = relative.iter().map(|p| p.to_lowercase()).collect();
    if subtree {
        rel.len() >= base.len() && rel[..base.len()] == base[..]
    } else {
        rel == base
    }
}

/// Plans every folder; `exclude`/`include` are the batch's filters.
pub fn plan(
    folders: &[SourceFolder],
    exclude: &[String],
    include: &[String],
) -> Vec<(SourceFolder, Plan)> {
    let mut out = Vec::new();
    // Target path (lower case) -> the source that claimed it first, for collisions.
    let mut claimed: HashMap<String, (String, String)> = HashMap::new();
    let mut sorted: Vec<&SourceFolder> = folders.iter().collect();
    sorted.sort_by(|a, b| a.relative.cmp(&b.relative));
    for f in sorted {
        let skip = |reason: SkipReason, detail: String| Plan::Skip { reason, detail };
        let delim = f.delimiter.unwrap_or('/');
        let parts: Vec<&str> = f.relative.split(delim).collect();
        // Calendar and contact folders (an Exchange source) are copied under their own names;
        // the mail rules below are for mail folders.
        let mail = f.content == FolderContent::Mail;
        let plan = if let FolderContent::Other(class) = &f.content {
            skip(
                SkipReason::NotMail,
                format!(
                    "{} holds {class} items, which a migration doesn't copy",
                    f.relative
                ),
            )
        } else if !f.selectable {
            skip(
                SkipReason::NoSelect,
                format!("{} holds no messages (\\Noselect)", f.relative),
            )
        } else if delim != '/' && f.relative.contains('/') {
            skip(
                SkipReason::FolderName,
                format!("{}: folder names with '/' are not migrated", f.relative),
            )
        } else if mail
            && parts
                .first()
                .is_some_and(|p| NOT_MAIL.contains(&p.to_lowercase().as_str()))
        {
            skip(
                SkipReason::NotMail,
                format!("{} is not a mail folder", f.relative),
            )
        } else if parts.iter().any(|p| p.trim().is_empty()) {
            skip(
                SkipReason::FolderName,
                format!("{:?} has an empty level", f.relative),
            )
        } else {
            let target = match well_known(&parts).filter(|_| mail) {
                Some((root, used)) => std::iter::once(root.to_string())
                    .chain(parts[used..].iter().map(|p| p.to_string()))
                    .collect::<Vec<_>>()
                    .join("/"),
                None => parts.join("/"),
            };
            let excluded = exclude.iter().any(|x| filter_matches(x, &parts, &target));
            let included =
                include.is_empty() || include.iter().any(|i| filter_matches(i, &parts, &target));
            if excluded || !included {
                skip(
                    SkipReason::Excluded,
                    format!("{} is excluded by the batch's folder filters", f.relative),
                )
            } else {
                let key = target.to_lowercase();
                match claimed.get(&key) {
                    Some((first, first_target)) => Plan::Copy {
                        target: first_target.clone(),
                        merged: Some(first.clone()),
                    },
                    None => {
                        claimed.insert(key, (f.relative.clone(), target.clone()));
                        Plan::Copy {
                            target,
                            merged: None,
                        }
                    }
                }
            }
        };
        out.push((f.clone(), plan));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(name: &str, delim: char) -> SourceFolder {
        SourceFolder {
            name: name.into(),
            relative: name.into(),
            delimiter: Some(delim),
            selectable: true,
            content: Default::default(),
        }
    }

    #[test]
    fn calendar_and_contacts_folders_are_copied_only_when_the_source_says_what_they_hold() {
        let with = |name: &str, content: FolderContent| SourceFolder {
            content,
            ..f(name, '/')
        };
        let folders = [
            with("Calendar", FolderContent::Calendar),
            with("Calendar/Team", FolderContent::Calendar),
            with("Contacts", FolderContent::Contacts),
            with("Tasks", FolderContent::Other("IPF.Task".into())),
            f("Inbox", '/'),
        ];
        let planned = plan(&folders, &[], &[]);
        let target = |name: &str| {
            planned
                .iter()
                .find(|(f, _)| f.relative == name)
                .map(|(_, p)| p.clone())
                .unwrap()
        };
        for (name, to) in [
            ("Calendar", "Calendar"),
            ("Calendar/Team", "Calendar/Team"),
            ("Contacts", "Contacts"),
            ("Inbox", "Inbox"),
        ] {
            assert_eq!(
                target(name),
                Plan::Copy {
                    target: to.into(),
                    merged: None
                }
            );
        }
        assert!(matches!(
            target("Tasks"),
            Plan::Skip {
                reason: SkipReason::NotMail,
                ..
            }
        ));
        // An IMAP server's "Calendar" holds no mail: it stays skipped.
        assert!(matches!(
            plan(&[f("Calendar", '/')], &[], &[])[0].1,
            Plan::Skip {
                reason: SkipReason::NotMail,
                ..
            }
        ));
    }

    fn targets(folders: &[SourceFolder], ex: &[&str], inc: &[&str]) -> Vec<(String, String)> {
        let ex: Vec<String> = ex.iter().map(|s| s.to_string()).collect();
        let inc: Vec<String> = inc.iter().map(|s| s.to_string()).collect();
        plan(folders, &ex, &inc)
            .into_iter()
            .map(|(f, p)| {
                (
                    f.relative,
                    match p {
                        Plan::Copy {
                            target,
                            merged: None,
                        } => target,
                        Plan::Copy {
                            target,
                            merged: Some(_),
                        } => format!("merged:{target}"),
                        Plan::Skip { reason, .. } => format!("skip:{reason}"),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn well_known_mapping() {
        let t = targets(
            &[
                f("INBOX", '.'),
                f("INBOX.Trash", '.'),
                f("INBOX.Sent", '.'),
                f("INBOX.Projects", '.'),
                f("Deleted Messages", '/'),
                f("[Gmail]/Sent Mail", '/'),
                f("Junk E-mail", '/'),
                f("Spam", '/'),
                f("drafts", '/'),
            ],
            &[],
            &[],
        );
        let get = |n: &str| {
            let p = t.iter().find(|(r, _)| r == n).unwrap().1.clone();
            p.strip_prefix("merged:").map(str::to_string).unwrap_or(p)
        };
        assert_eq!(get("INBOX"), "Inbox");
        assert_eq!(get("INBOX.Trash"), "Deleted Items");
        assert_eq!(get("INBOX.Sent"), "Sent Items");
        assert_eq!(get("INBOX.Projects"), "Inbox/Projects");
        assert_eq!(get("Deleted Messages"), "Deleted Items");
        assert_eq!(get("[Gmail]/Sent Mail"), "Sent Items");
        assert_eq!(get("Junk E-mail"), "Junk Email");
        assert_eq!(get("drafts"), "Drafts");
    }

    #[test]
    fn skipped_folders() {
        let mut noselect = f("Shared", '/');
        noselect.selectable = false;
        let t = targets(
            &[
                f("INBOX.Projects/2019", '.'),
                f("Calendar", '/'),
                f("Public Folders/x", '/'),
                noselect,
            ],
            &[],
            &[],
        );
        assert!(t.iter().all(|(_, p)| p.starts_with("skip:")), "{t:?}");
    }

    #[test]
    fn exclude_and_include_filters() {
        let folders = [
            f("INBOX", '/'),
            f("Archive/2019", '/'),
            f("Archive/2019/Q1", '/'),
            f("Sent", '/'),
        ];
        let t = targets(&folders, &["archive/2019"], &[]);
        assert_eq!(t[0], ("Archive/2019".into(), "skip:Excluded".into()));
        assert_eq!(
            t[1].1, "Archive/2019/Q1",
            "without /* only the folder itself"
        );
        let t = targets(&folders, &["Archive/*"], &[]);
        assert!(t[..2].iter().all(|(_, p)| p == "skip:Excluded"));
        let t = targets(&folders, &["#SentItems#"], &[]);
        assert_eq!(
            t.iter().find(|(r, _)| r == "Sent").unwrap().1,
            "skip:Excluded"
        );
        let t = targets(&folders, &[], &["#Inbox#"]);
        let copied: Vec<_> = t.iter().filter(|(_, p)| !p.starts_with("skip")).collect();
        assert_eq!(copied, vec![&("INBOX".to_string(), "Inbox".to_string())]);
    }

    #[test]
    fn case_only_collisions_merge_and_are_reported() {
        let t = targets(
            &[
                f("Work", '/'),
                f("work", '/'),
                f("Trash", '/'),
                f("Deleted Items", '/'),
            ],
            &[],
            &[],
        );
        assert_eq!(
            t,
            vec![
                ("Deleted Items".into(), "Deleted Items".into()),
                ("Trash".into(), "merged:Deleted Items".into()),
                ("Work".into(), "Work".into()),
                ("work".into(), "merged:Work".into()),
            ],
            "sorted by name: the first claims the target, later ones merge into it"
        );
    }
}
