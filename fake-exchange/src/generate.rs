//! Deterministic content and directories: the same seed, mailbox and folder always give the same
//! bytes. Messages are RFC 5322 (plain and multipart, some with attachments), events iCalendar
//! (some recurring, some all-day), contacts vCard 3.0.

use bytes::Bytes;
use chrono::{DateTime, Duration, TimeZone, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::{ContentSection, GenerateSection, RecipientKind, RecipientSection};
use crate::org::{FolderClass, ItemKind, Mailbox};

const FIRST: &[&str] = &[
    "Alex", "Sam", "Kim", "Robin", "Jordan", "Taylor", "Morgan", "Casey", "Jamie", "Avery",
];
const LAST: &[&str] = &[
    "Adams", "Baker", "Chen", "Diaz", "Evans", "Fischer", "Garcia", "Hughes", "Ito", "Jones",
];
const TOPICS: &[&str] = &[
    "Quarterly review",
    "Budget 2027",
    "Offsite logistics",
    "Contract renewal",
    "Release notes",
    "Hiring plan",
    "Customer escalation",
    "Lunch on Friday?",
    "Re: Invoice 4711",
    "Fwd: Security advisory",
];

/// A stable seed for (seed, parts) (FNV-1a).
pub fn derive_seed(seed: u64, parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// The date generated content counts back from (fixed, so output never depends on the clock).
pub fn fixed_date() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 9, 0, 0)
        .single()
        .unwrap_or_default()
}

/// Recipients of `[generate]`: mailboxes `user0001@`, mail users `mailuser0001@`, contacts
/// `contact0001@fabrikam.example`, groups `group0001@`.
pub fn recipients(g: &GenerateSection, domain: &str, seed: u64) -> Vec<RecipientSection> {
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, &["directory"]));
    let mut out = Vec::new();
    let person = |i: usize, rng: &mut ChaCha8Rng| {
        let first = FIRST[rng.random_range(0..FIRST.len())];
        let last = LAST[rng.random_range(0..LAST.len())];
        (
            first.to_string(),
            last.to_string(),
            format!("{first} {last} {i:04}"),
        )
    };
    for i in 1..=g.mailboxes {
        let (first, last, display) = person(i, &mut rng);
        out.push(RecipientSection {
            kind: RecipientKind::UserMailbox,
            address: Some(format!("user{i:04}@{domain}")),
            display_name: Some(display),
            first_name: Some(first),
            last_name: Some(last),
            content: Some(g.content.clone().unwrap_or(ContentSection {
                inbox: 0,
                sent_items: 0,
                deleted_items: 0,
                drafts: 0,
                user_folders: Vec::new(),
                per_user_folder: 0,
                calendar: 0,
                contacts: 0,
            })),
            ..Default::default()
        });
    }
    for i in 1..=g.mail_users {
        let (first, last, display) = person(i, &mut rng);
        out.push(RecipientSection {
            kind: RecipientKind::MailUser,
            address: Some(format!("mailuser{i:04}@{domain}")),
            display_name: Some(format!("{display} (external)")),
            first_name: Some(first),
            last_name: Some(last),
            target_address: Some(format!("SMTP:mailuser{i:04}@fabrikam.example")),
            ..Default::default()
        });
    }
    for i in 1..=g.mail_contacts {
        let (first, last, display) = person(i, &mut rng);
        out.push(RecipientSection {
            kind: RecipientKind::MailContact,
            address: Some(format!("contact{i:04}@fabrikam.example")),
            alias: Some(format!("contact{i:04}")),
            display_name: Some(format!("{display} (contact)")),
            first_name: Some(first),
            last_name: Some(last),
            target_address: Some(format!("SMTP:contact{i:04}@fabrikam.example")),
            ..Default::default()
        });
    }
    for i in 1..=g.distribution_groups {
        let members = if g.mailboxes == 0 {
            Vec::new()
        } else {
            // Distinct members: a group of `group_size` has that many.
            let mut picked =
                rand::seq::index::sample(&mut rng, g.mailboxes, g.group_size.min(g.mailboxes))
                    .into_vec();
            picked.sort_unstable();
            picked
                .into_iter()
                .map(|i| format!("user{:04}@{domain}", i + 1))
                .collect()
        };
        out.push(RecipientSection {
            kind: RecipientKind::DistributionGroup,
            address: Some(format!("group{i:04}@{domain}")),
            display_name: Some(format!("Group {i:04}")),
            members,
            ..Default::default()
        });
    }
    out
}

/// Fills a new mailbox's folders with the shape `content` asks for.
pub fn fill_mailbox(mailbox: &mut Mailbox, address: &str, content: &ContentSection, seed: u64) {
    let plan: Vec<(String, usize)> = [
        ("Inbox".to_string(), content.inbox),
        ("Sent Items".to_string(), content.sent_items),
        ("Deleted Items".to_string(), content.deleted_items),
        ("Drafts".to_string(), content.drafts),
        ("Calendar".to_string(), content.calendar),
        ("Contacts".to_string(), content.contacts),
    ]
    .into_iter()
    .chain(
        content
            .user_folders
            .iter()
            .map(|f| (f.clone(), content.per_user_folder)),
    )
    .collect();
    for (path, count) in plan {
        let Some(folder) = mailbox.folder_by_path(&path, true) else {
            continue;
        };
        let class = mailbox.folders[folder as usize].class;
        let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, &[address, &path]));
        for n in 0..count {
            let (kind, subject, mime, received, read) = match class {
                FolderClass::Calendar => {
                    let (s, m, d) = event(&mut rng, address, n);
                    (ItemKind::Event, s, m, d, true)
                }
                FolderClass::Contacts => {
                    let (s, m) = contact(&mut rng, n);
                    (ItemKind::Contact, s, m, fixed_date(), true)
                }
                _ => {
                    let sent = path == "Sent Items";
                    let (s, m, d) = message(&mut rng, address, n, sent);
                    let read = sent || rng.random_bool(0.6);
                    (ItemKind::Message, s, m, d, read)
                }
            };
            mailbox.add_item(folder, kind, subject, Bytes::from(mime), received, read);
        }
    }
}

/// One generated item for a folder of `class` (a message, an event or a contact), as
/// `deliver` takes it: the same `seed` and `n` give the same bytes.
pub fn item_for(class: FolderClass, address: &str, seed: u64, n: usize) -> Vec<u8> {
    let mut rng =
        ChaCha8Rng::seed_from_u64(derive_seed(seed, &[address, "delivered", &n.to_string()]));
    match class {
        FolderClass::Calendar => event(&mut rng, address, n + 1000).1,
        FolderClass::Contacts => contact(&mut rng, n + 1000).1,
        _ => message(&mut rng, address, n + 1000, false).1,
    }
}

fn someone(rng: &mut ChaCha8Rng) -> (String, String) {
    let first = FIRST[rng.random_range(0..FIRST.len())];
    let last = LAST[rng.random_range(0..LAST.len())];
    (
        format!("{first} {last}"),
        format!(
            "{}.{}@fabrikam.example",
            first.to_lowercase(),
            last.to_lowercase()
        ),
    )
}

fn message(
    rng: &mut ChaCha8Rng,
    address: &str,
    n: usize,
    sent: bool,
) -> (String, Vec<u8>, DateTime<Utc>) {
    let date = fixed_date() - Duration::minutes(rng.random_range(0..60 * 24 * 365));
    let (name, other) = someone(rng);
    let topic = TOPICS[rng.random_range(0..TOPICS.len())];
    let subject = format!("{topic} #{n}");
    let (from, to) = if sent {
        (address.to_string(), format!("\"{name}\" <{other}>"))
    } else {
        (format!("\"{name}\" <{other}>"), address.to_string())
    };
    let id = rng.random::<u64>();
    let mut m = format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {}\r\nMessage-ID: <{id:016x}@fabrikam.example>\r\nMIME-Version: 1.0\r\n",
        date.to_rfc2822()
    );
    let body: String = (0..rng.random_range(2..12))
        .map(|i| format!("Line {i} about {topic}.\r\n"))
        .collect();
    if rng.random_bool(0.25) {
        let boundary = format!("=_b{id:x}");
        let attachment: String = (0..rng.random_range(1..6))
            .map(|_| "UEsDBBQAAAAIAAAAIQBi7Z0uAQAAAP//AwBQSwECLQAUAAYACAAAACEA\r\n")
            .collect();
        m.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n--{boundary}\r\nContent-Type: application/octet-stream; name=\"report-{n}.zip\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"report-{n}.zip\"\r\n\r\n{attachment}--{boundary}--\r\n"
        ));
    } else {
        m.push_str("Content-Type: text/plain; charset=utf-8\r\n\r\n");
        m.push_str(&body);
    }
    (subject, m.into_bytes(), date)
}

fn event(rng: &mut ChaCha8Rng, address: &str, n: usize) -> (String, Vec<u8>, DateTime<Utc>) {
    let start = fixed_date() + Duration::hours(rng.random_range(-24 * 60..24 * 60));
    let all_day = rng.random_bool(0.2);
    let recurring = rng.random_bool(0.25);
    let topic = TOPICS[rng.random_range(0..TOPICS.len())];
    let subject = format!("Meeting: {topic} #{n}");
    let uid = format!("{:032x}", rng.random::<u128>());
    let fmt = |d: DateTime<Utc>| d.format("%Y%m%dT%H%M%SZ").to_string();
    let (dtstart, dtend) = if all_day {
        (
            format!("DTSTART;VALUE=DATE:{}", start.format("%Y%m%d")),
            format!(
                "DTEND;VALUE=DATE:{}",
                (start + Duration::days(1)).format("%Y%m%d")
            ),
        )
    } else {
        (
            format!("DTSTART:{}", fmt(start)),
            format!("DTEND:{}", fmt(start + Duration::minutes(30))),
        )
    };
    let rrule = if recurring {
        "RRULE:FREQ=WEEKLY;COUNT=10\r\n"
    } else {
        ""
    };
    let (name, other) = someone(rng);
    let ics = format!(
        "BEGIN:VCALENDAR\r\nMETHOD:PUBLISH\r\nPRODID:Microsoft Exchange Server 2010\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:{uid}\r\nSUMMARY;LANGUAGE=en-US:{subject}\r\n{dtstart}\r\n{dtend}\r\n{rrule}ORGANIZER;CN=Owner:mailto:{address}\r\nATTENDEE;ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;CN={name}:mailto:{other}\r\nLOCATION;LANGUAGE=en-US:Room {}\r\nCLASS:PUBLIC\r\nPRIORITY:5\r\nDTSTAMP:{}\r\nTRANSP:OPAQUE\r\nSTATUS:CONFIRMED\r\nSEQUENCE:0\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
        rng.random_range(100..400),
        fmt(fixed_date()),
    );
    (subject, ics.into_bytes(), start)
}

fn contact(rng: &mut ChaCha8Rng, n: usize) -> (String, Vec<u8>) {
    let first = FIRST[rng.random_range(0..FIRST.len())];
    let last = LAST[rng.random_range(0..LAST.len())];
    let email = format!(
        "{}.{}{n}@fabrikam.example",
        first.to_lowercase(),
        last.to_lowercase()
    );
    let vcf = format!(
        "BEGIN:VCARD\r\nVERSION:3.0\r\nN:{last};{first};;;\r\nFN:{first} {last}\r\nORG:Fabrikam\r\nTITLE:Engineer\r\nEMAIL;TYPE=INTERNET:{email}\r\nTEL;TYPE=WORK:+1 425 555 {:04}\r\nEND:VCARD\r\n",
        rng.random_range(0..10_000),
    );
    (format!("{first} {last}"), vcf.into_bytes())
}

/// The subject (or display name) of given bytes: a Subject header, a SUMMARY or an FN line.
pub fn subject_of(bytes: &[u8], kind: ItemKind) -> String {
    let text = String::from_utf8_lossy(bytes);
    let key = match kind {
        ItemKind::Message => "subject:",
        ItemKind::Event => "summary",
        ItemKind::Contact => "fn",
    };
    for line in text.lines() {
        let lower = line.to_ascii_lowercase();
        if kind == ItemKind::Message && line.is_empty() {
            break;
        }
        if lower.starts_with(key) {
            let value = match kind {
                ItemKind::Message => &line[key.len()..],
                _ => line.split_once(':').map(|(_, v)| v).unwrap_or(""),
            };
            return value.trim().to_string();
        }
    }
    String::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::org::OrgState;

    fn org(seed: u64) -> OrgState {
        let text = format!(
            "[organisation]\nprimary_domain = \"contoso.com\"\nseed = {seed}\n[generate]\nmailboxes = 20\nmail_users = 3\nmail_contacts = 3\ndistribution_groups = 2\n[generate.content]\ninbox = 4\ncalendar = 3\ncontacts = 2\n"
        );
        OrgState::from_config(&Config::from_toml(&text).unwrap()).unwrap()
    }

    fn fingerprint(o: &OrgState) -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<(String, Vec<u8>)> = o
            .recipients
            .iter()
            .map(|r| (r.display_name.clone(), r.members.join(",").into_bytes()))
            .collect();
        let mut boxes: Vec<_> = o.mailboxes.keys().cloned().collect();
        boxes.sort();
        for b in boxes {
            for f in &o.mailboxes[&b].folders {
                for i in f.items.values() {
                    v.push((format!("{b}/{}", f.name), i.mime.to_vec()));
                }
            }
        }
        v
    }

    #[test]
    fn the_same_seed_gives_the_same_organisation() {
        assert_eq!(fingerprint(&org(7)), fingerprint(&org(7)));
        assert_ne!(fingerprint(&org(7)), fingerprint(&org(8)));
    }

    #[test]
    fn generated_items_have_the_shape_of_their_kind() {
        let o = org(3);
        let mb = o.mailbox("user0001@contoso.com").unwrap();
        let cal = mb.well_known("calendar").unwrap();
        for i in cal.items.values() {
            let t = String::from_utf8_lossy(&i.mime);
            assert!(t.starts_with("BEGIN:VCALENDAR\r\n") && t.contains("BEGIN:VEVENT"));
            assert_eq!(subject_of(&i.mime, ItemKind::Event), i.subject);
        }
        for i in mb.well_known("contacts").unwrap().items.values() {
            let t = String::from_utf8_lossy(&i.mime);
            assert!(t.starts_with("BEGIN:VCARD\r\nVERSION:3.0"));
            assert_eq!(subject_of(&i.mime, ItemKind::Contact), i.subject);
        }
        for i in mb.well_known("inbox").unwrap().items.values() {
            assert_eq!(subject_of(&i.mime, ItemKind::Message), i.subject);
            assert!(String::from_utf8_lossy(&i.mime).contains("\r\nMessage-ID: <"));
        }
        let groups: Vec<_> = o
            .recipients
            .iter()
            .filter(|r| r.kind == RecipientKind::DistributionGroup)
            .collect();
        assert_eq!(groups.len(), 2);
        assert!(groups.iter().all(|g| !g.members.is_empty()));
    }
}
