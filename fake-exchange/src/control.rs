//! The handle as text: one command per line (what `mailmig fake-exchange serve --control`
//! reads from standard input), so a test or a rehearsal driving the standalone server can
//! change the organisation while it runs. Each command answers one line: `OK ...` or
//! `ERROR ...`. Items are named by their position in a folder (0 = oldest).

use crate::org::Organisation;

/// The commands, for `help` and the README.
pub const COMMANDS: &str = "\
list MAILBOX FOLDER                  item positions with read state: OK 0:read 1:unread ...
deliver MAILBOX FOLDER FILE          a message from an RFC 5322 file: OK <position>
set-read MAILBOX FOLDER POS yes|no   a ReadFlagChange for the next sync
set-subject MAILBOX FOLDER POS TEXT  an Update for the next sync
delete MAILBOX FOLDER POS            a Delete for the next sync
create-folder MAILBOX PATH           a new folder (paths use /, from the top of the store)
set-password ADMIN PASSWORD          the old password stops working at once
moving MAILBOX yes|no                ErrorMailboxMoveInProgress while yes
store-unavailable yes|no             ErrorMailboxStoreUnavailable while yes
help                                 this list";

fn yes_no(word: Option<&str>) -> Result<bool, String> {
    match word {
        Some("yes" | "on" | "true") => Ok(true),
        Some("no" | "off" | "false") => Ok(false),
        other => Err(format!("expected yes or no, got {:?}", other.unwrap_or(""))),
    }
}

/// Folder names may hold spaces: `Sent Items` is written `Sent_Items` or quoted as
/// `"Sent Items"`.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for ch in line.chars() {
        match ch {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn item_at(
    org: &Organisation,
    mailbox: &str,
    folder: &str,
    pos: Option<&str>,
) -> Result<u64, String> {
    let pos: usize = pos
        .ok_or("missing the item's position")?
        .parse()
        .map_err(|_| "the position is a number (0 = oldest)".to_string())?;
    let ids = org.item_ids(mailbox, folder).map_err(|e| e.to_string())?;
    ids.get(pos).copied().ok_or_else(|| {
        format!(
            "{folder} of {mailbox} has {} items, no position {pos}",
            ids.len()
        )
    })
}

/// Runs one command line; the answer never repeats a password.
pub fn apply(org: &Organisation, line: &str) -> String {
    match run(org, line) {
        Ok(answer) => format!("OK{}{answer}", if answer.is_empty() { "" } else { " " }),
        Err(e) => format!("ERROR {e}"),
    }
}

fn run(org: &Organisation, line: &str) -> Result<String, String> {
    let w = words(line);
    let arg = |i: usize| w.get(i).map(String::as_str);
    let need = |i: usize, what: &str| arg(i).ok_or_else(|| format!("missing {what}"));
    let e = |e: crate::Error| e.to_string();
    match arg(0) {
        None => Ok(String::new()),
        Some("help") => Ok(COMMANDS.replace('\n', " | ")),
        Some("list") => {
            let (mailbox, folder) = (need(1, "MAILBOX")?, need(2, "FOLDER")?);
            let ids = org.item_ids(mailbox, folder).map_err(e)?;
            let state = org.lock();
            let mb = state.mailbox(mailbox).ok_or("no such mailbox")?;
            Ok(ids
                .iter()
                .enumerate()
                .map(|(i, id)| {
                    let read = mb.find_item(*id).is_some_and(|(_, item)| item.is_read);
                    format!("{i}:{}", if read { "read" } else { "unread" })
                })
                .collect::<Vec<_>>()
                .join(" "))
        }
        Some("deliver") => {
            let (mailbox, folder, file) =
                (need(1, "MAILBOX")?, need(2, "FOLDER")?, need(3, "FILE")?);
            let bytes = std::fs::read(file).map_err(|err| format!("{file}: {err}"))?;
            org.deliver(mailbox, folder, &bytes).map_err(e)?;
            Ok((org.item_ids(mailbox, folder).map_err(e)?.len() - 1).to_string())
        }
        Some("set-read") => {
            let (mailbox, folder) = (need(1, "MAILBOX")?, need(2, "FOLDER")?);
            let id = item_at(org, mailbox, folder, arg(3))?;
            org.set_read(mailbox, id, yes_no(arg(4))?).map_err(e)?;
            Ok(String::new())
        }
        Some("set-subject") => {
            let (mailbox, folder) = (need(1, "MAILBOX")?, need(2, "FOLDER")?);
            let id = item_at(org, mailbox, folder, arg(3))?;
            let text = w.get(4..).map(|rest| rest.join(" ")).unwrap_or_default();
            org.set_subject(mailbox, id, &text).map_err(e)?;
            Ok(String::new())
        }
        Some("delete") => {
            let (mailbox, folder) = (need(1, "MAILBOX")?, need(2, "FOLDER")?);
            let id = item_at(org, mailbox, folder, arg(3))?;
            org.delete_item(mailbox, id).map_err(e)?;
            Ok(String::new())
        }
        Some("create-folder") => {
            org.create_folder(need(1, "MAILBOX")?, need(2, "PATH")?)
                .map_err(e)?;
            Ok(String::new())
        }
        Some("set-password") => {
            org.set_password(need(1, "ADMIN")?, need(2, "PASSWORD")?)
                .map_err(e)?;
            Ok(String::new())
        }
        Some("moving") => {
            org.set_moving(need(1, "MAILBOX")?, yes_no(arg(2))?)
                .map_err(e)?;
            Ok(String::new())
        }
        Some("store-unavailable") => {
            org.set_store_unavailable(yes_no(arg(1))?);
            Ok(String::new())
        }
        Some(other) => Err(format!("unknown command {other:?} (try help)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn org() -> Organisation {
        let text = "[organisation]\nprimary_domain = \"contoso.com\"\n[[admins]]\naddress = \"administrator@contoso.com\"\npassword = \"P@ssw0rd\"\n[[recipients]]\nkind = \"user-mailbox\"\naddress = \"alice@contoso.com\"\n";
        Organisation::from_config(&Config::from_toml(text).unwrap()).unwrap()
    }

    #[test]
    fn commands_change_the_organisation_and_answer_one_line() {
        let o = org();
        let listed = apply(&o, "list alice@contoso.com Inbox");
        assert!(listed.starts_with("OK 0:"), "{listed}");
        assert_eq!(listed.matches(':').count(), 5);
        let dir = std::env::temp_dir().join(format!("fx-control-{}.eml", std::process::id()));
        std::fs::write(&dir, b"Subject: hi\r\n\r\nhello\r\n").unwrap();
        assert_eq!(
            apply(
                &o,
                &format!("deliver alice@contoso.com Inbox {}", dir.display())
            ),
            "OK 5"
        );
        std::fs::remove_file(&dir).unwrap();
        assert_eq!(apply(&o, "set-read alice@contoso.com Inbox 5 yes"), "OK");
        assert!(apply(&o, "list alice@contoso.com Inbox").ends_with("5:read"));
        assert_eq!(apply(&o, "delete alice@contoso.com \"Sent Items\" 0"), "OK");
        assert_eq!(
            o.item_ids("alice@contoso.com", "Sent Items").unwrap().len(),
            2
        );
        assert_eq!(
            apply(&o, "set-password administrator@contoso.com S3cret!"),
            "OK"
        );
        assert!(
            o.lock()
                .authenticate("administrator@contoso.com", "S3cret!")
                .is_some()
        );
        assert_eq!(apply(&o, "moving alice@contoso.com yes"), "OK");
        assert!(o.lock().mailbox("alice@contoso.com").unwrap().moving);
        assert_eq!(apply(&o, ""), "OK");
    }

    #[test]
    fn bad_commands_say_what_is_wrong_and_never_echo_a_password() {
        let o = org();
        for (line, says) in [
            ("frobnicate", "unknown command"),
            ("set-read alice@contoso.com Inbox 99 yes", "no position 99"),
            ("set-read alice@contoso.com Inbox x yes", "a number"),
            ("moving alice@contoso.com maybe", "yes or no"),
            ("list nobody@contoso.com Inbox", "no such"),
            (
                "deliver alice@contoso.com Inbox /nonexistent/file.eml",
                "/nonexistent/file.eml",
            ),
        ] {
            let answer = apply(&o, line);
            assert!(
                answer.starts_with("ERROR ") && answer.contains(says),
                "{line}: {answer}"
            );
        }
        let answer = apply(&o, "set-password nobody@contoso.com Sup3rSecret");
        assert!(
            answer.starts_with("ERROR") && !answer.contains("Sup3rSecret"),
            "{answer}"
        );
    }
}
