//! fake-imap against the real servers it imitates: the same users and mail, seeded through
//! IMAP into a real server and into fake-imap in the matching mode; the same migration through
//! the engine against both; and the protocol answers an admin's migration depends on (LIST
//! patterns, NAMESPACE, the INBOX of a shared root, how an authorization identity is taken).
//! They must agree. Where they cannot, the comparison says why in one line.

mod common;

use std::collections::BTreeMap;

use common::{Login, Migration, endpoint_settings, fixture_mail};
use engine::imap::{Authentication, Security};
use fake_imap::{AdminMode, FakeImapServer, ServerHandle};
use real_servers::{Builder, Kind, RealServer, over_imap, start_or_skip};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const USERS: [(&str, &str); 2] = [("alice", "alicepw"), ("bob", "bobpw")];
/// Courier shows this account as `terry adams`.
const DOTTED: (&str, &str) = ("terry.adams", "terrypw");

fn users(kind: Kind) -> Vec<(&'static str, &'static str)> {
    let mut u = USERS.to_vec();
    if kind == Kind::Courier {
        u.push(DOTTED);
    }
    u
}

fn real(kind: Kind) -> Builder {
    let mut b = match kind {
        Kind::Dovecot => RealServer::dovecot(),
        Kind::Cyrus => RealServer::cyrus(),
        Kind::Courier => RealServer::courier(),
    };
    for (u, p) in users(kind) {
        b = b.user(u, p);
    }
    b.admin("admin", "adminpw")
}

/// fake-imap configured as `kind` is: its admin form, `.` as the delimiter.
async fn fake(kind: Kind) -> ServerHandle {
    let mut f = FakeImapServer::new()
        .delimiter('.')
        .admin("admin", "adminpw");
    f = match kind {
        // Cyrus's admin acts by authzid, which fake-imap's Dovecot mode implements.
        Kind::Dovecot | Kind::Cyrus => f.mode(AdminMode::Dovecot).master_separator('*'),
        Kind::Courier => f.mode(AdminMode::Courier).shared_root("#shared"),
    };
    for (u, p) in users(kind) {
        f = f.user(u, p);
    }
    f.start().await.unwrap()
}

/// The admin form each server is migrated with.
fn login(kind: Kind, user: &str) -> Login {
    match kind {
        Kind::Dovecot => Login {
            user_name: format!("{user}*admin"),
            password: "adminpw".into(),
            user_root: None,
            authentication: Authentication::Basic,
        },
        Kind::Cyrus => Login {
            user_name: format!("{user}*admin"),
            password: "adminpw".into(),
            user_root: None,
            authentication: Authentication::Plain,
        },
        Kind::Courier => Login {
            user_name: "admin".into(),
            password: "adminpw".into(),
            user_root: Some(format!("#shared.{}", user.replace('.', " "))),
            authentication: Authentication::Basic,
        },
    }
}

/// What a migration of one user came to, as the engine reports it.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    status: String,
    failed: bool,
    items: u64,
    /// Target folder -> items.
    folders: BTreeMap<String, usize>,
    /// (folder, reason) of every skip.
    skipped: Vec<(String, String)>,
}

async fn migrate(kind: Kind, port: u16, user: &str) -> Outcome {
    let login = login(kind, user);
    let m = Migration::new(
        endpoint_settings(port, Security::None, None),
        &login,
        "user@contoso.edu",
        None,
    );
    m.batch(&login).await;
    m.run().await;
    let u = m.user();
    let common::Into::Tenant(tenant) = &m.into else {
        unreachable!("into the tenant")
    };
    let mut folders = BTreeMap::new();
    for item in tenant.items("user@contoso.edu", None).unwrap() {
        *folders.entry(item.folder).or_default() += 1;
    }
    let mut skipped: Vec<(String, String)> = m
        .engine
        .db
        .read(|tx| tx.skipped_items("user@contoso.edu"))
        .unwrap()
        .into_iter()
        .map(|s| (s.folder, s.reason.to_string()))
        .collect();
    skipped.sort();
    Outcome {
        status: u.status.as_str().to_string(),
        failed: u.error.is_some(),
        items: u.items_synced,
        folders,
        skipped,
    }
}

/// A bare IMAP line client for the probes.
struct Probe {
    io: BufReader<tokio::net::TcpStream>,
    tag: u32,
}

impl Probe {
    async fn connect(port: u16) -> Self {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let mut p = Self {
            io: BufReader::new(tcp),
            tag: 0,
        };
        p.line().await; // the greeting
        p
    }

    async fn line(&mut self) -> String {
        let mut l = String::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            self.io.read_line(&mut l),
        )
        .await
        .expect("a reply in time")
        .unwrap();
        l.trim_end().to_string()
    }

    /// Sends a command; returns its untagged lines and the tagged status word.
    async fn run(&mut self, command: &str) -> (Vec<String>, String) {
        self.tag += 1;
        let tag = format!("p{}", self.tag);
        self.io
            .get_mut()
            .write_all(format!("{tag} {command}\r\n").as_bytes())
            .await
            .unwrap();
        let mut data = Vec::new();
        loop {
            let l = self.line().await;
            if let Some(rest) = l.strip_prefix(&format!("{tag} ")) {
                let status = rest.split_whitespace().next().unwrap_or("").to_string();
                return (data, status);
            }
            data.push(l);
        }
    }

    /// The mailbox names of a LIST, sorted.
    async fn list(&mut self, pattern: &str) -> Vec<String> {
        let (lines, status) = self.run(&format!("LIST \"\" \"{pattern}\"")).await;
        assert_eq!(status, "OK", "LIST {pattern}: {lines:?}");
        let mut names: Vec<String> = lines
            .iter()
            .filter(|l| l.starts_with("* LIST "))
            .map(|l| {
                // `* LIST (attrs) "d" name`: the name is what follows the delimiter.
                let after = &l[l.find(')').unwrap() + 2..];
                let name = after.split_once(' ').map_or("", |(_, n)| n);
                name.trim_matches('"').replace("\\\"", "\"")
            })
            .collect();
        names.sort();
        names
    }
}

/// SASL PLAIN's message, base64-encoded for AUTHENTICATE.
fn plain(authzid: &str, authcid: &str, password: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("{authzid}\0{authcid}\0{password}"))
}

/// The protocol answers that decide what an admin's migration reads, as comparable text.
async fn probes(kind: Kind, port: u16) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut note = |what: &str, got: String| out.push((what.to_string(), got));
    match kind {
        Kind::Dovecot => {
            let mut p = Probe::connect(port).await;
            let (_, ok) = p.run("LOGIN alice*admin adminpw").await;
            note("LOGIN user*admin", ok);
            note("LIST \"\" \"*\" as alice", p.list("*").await.join(", "));
            condstore(&mut p).await;
        }
        Kind::Cyrus => {
            let mut p = Probe::connect(port).await;
            let (_, ok) = p
                .run(&format!(
                    "AUTHENTICATE PLAIN {}",
                    plain("alice", "admin", "adminpw")
                ))
                .await;
            note("AUTHENTICATE PLAIN authzid=alice", ok);
            note("LIST \"\" \"*\" as alice", p.list("*").await.join(", "));
            condstore(&mut p).await;
        }
        Kind::Courier => {
            let mut p = Probe::connect(port).await;
            let (_, ok) = p.run("LOGIN admin adminpw").await;
            note("LOGIN admin", ok);
            note(
                "LIST \"\" \"*\" (the admin's own only)",
                p.list("*").await.join(", "),
            );
            note(
                "LIST \"\" \"#shared.*\"",
                p.list("#shared.*").await.join(", "),
            );
            let (ns, _) = p.run("NAMESPACE").await;
            note(
                "NAMESPACE names #shared.",
                ns.iter()
                    .any(|l| l.contains("((\"#shared.\" \".\")"))
                    .to_string(),
            );
            let (ex, ok) = p.run("EXAMINE \"#shared.alice\"").await;
            let exists = ex.iter().find(|l| l.ends_with(" EXISTS")).cloned();
            note(
                "EXAMINE #shared.alice (the root is INBOX)",
                format!("{ok} {exists:?}"),
            );
            let (ex, ok) = p.run("EXAMINE \"#shared.terry adams\"").await;
            let exists = ex.iter().find(|l| l.ends_with(" EXISTS")).cloned();
            note(
                "EXAMINE #shared.terry adams (dots as spaces)",
                format!("{ok} {exists:?}"),
            );
            let mut q = Probe::connect(port).await;
            let (_, ok) = q
                .run(&format!(
                    "AUTHENTICATE PLAIN {}",
                    plain("alice", "admin", "adminpw")
                ))
                .await;
            note("AUTHENTICATE PLAIN authzid=alice", ok);
            note(
                "LIST \"\" \"*\" after it (the authzid is ignored)",
                q.list("*").await.join(", "),
            );
        }
    }
    out
}

/// What the engine's skipping of unchanged folders rests on (RFC 7162): EXAMINE (CONDSTORE)
/// tells HIGHESTMODSEQ, which stays while nothing changes and rises with a flag change (UIDNEXT
/// staying) and with an expunge. Run last: it changes alice's INBOX.
async fn condstore(p: &mut Probe) {
    async fn state(p: &mut Probe) -> (Option<u64>, Option<u64>) {
        let (lines, ok) = p.run("EXAMINE INBOX (CONDSTORE)").await;
        assert_eq!(ok, "OK", "EXAMINE INBOX (CONDSTORE): {lines:?}");
        let code = |name: &str| {
            lines.iter().find_map(|l| {
                let rest = l.strip_prefix(&format!("* OK [{name} "))?;
                rest.split(']').next()?.parse::<u64>().ok()
            })
        };
        (code("HIGHESTMODSEQ"), code("UIDNEXT"))
    }
    let first = state(p).await;
    let again = state(p).await;
    for c in ["SELECT INBOX", "STORE 1 +FLAGS (\\Flagged)"] {
        let (lines, ok) = p.run(c).await;
        assert_eq!(ok, "OK", "{c}: {lines:?}");
    }
    let flagged = state(p).await;
    for c in ["SELECT INBOX", "STORE 1 +FLAGS (\\Deleted)", "EXPUNGE"] {
        let (lines, ok) = p.run(c).await;
        assert_eq!(ok, "OK", "{c}: {lines:?}");
    }
    let expunged = state(p).await;
    // The engine relies on each of these: a server, real or fake, that breaks one fails here.
    let holds = [
        first.0.is_some() && first.1.is_some(),
        again == first,
        flagged.0 > again.0 && flagged.1 == again.1,
        expunged.0 > flagged.0,
    ];
    assert_eq!(
        holds, [true; 4],
        "CONDSTORE: {first:?} {again:?} {flagged:?} {expunged:?}"
    );
}

async fn differential(kind: Kind) {
    let Some(real) = start_or_skip(real(kind)).await else {
        return;
    };
    let fake = fake(kind).await;
    let fake_port = fake.imap_addr().port();
    for (user, password) in users(kind) {
        for (what, port) in [("real", real.imap_port()), ("fake", fake_port)] {
            over_imap::seed(kind, port, user, password, &fixture_mail())
                .await
                .unwrap_or_else(|e| panic!("{kind} ({what}): {e}"));
        }
    }
    // The mail as each user sees it: the same folders and messages.
    for (user, password) in users(kind) {
        let summary = |stored: Vec<real_servers::Stored>| {
            let mut s: Vec<(String, Vec<u8>)> =
                stored.into_iter().map(|m| (m.folder, m.raw)).collect();
            s.sort();
            s
        };
        let r = over_imap::mailbox(kind, real.imap_port(), user, password)
            .await
            .unwrap();
        let f = over_imap::mailbox(kind, fake_port, user, password)
            .await
            .unwrap();
        assert_eq!(summary(r), summary(f), "{kind}: {user}'s own view");
    }
    // The same migration against both.
    for (user, _) in users(kind) {
        let r = migrate(kind, real.imap_port(), user).await;
        let f = migrate(kind, fake_port, user).await;
        assert_eq!(r.status, "Synced", "{kind} real: {r:?}");
        assert_eq!(
            r, f,
            "{kind}: migrating {user}, real (left) and fake-imap (right) differ"
        );
    }
    let (r, f) = (
        probes(kind, real.imap_port()).await,
        probes(kind, fake_port).await,
    );
    for ((what, real_says), (_, fake_says)) in r.iter().zip(&f) {
        assert_eq!(
            real_says, fake_says,
            "{kind}: {what}: real (left), fake-imap (right)"
        );
    }
}

#[tokio::test]
async fn dovecot_mode_agrees_with_real_dovecot() {
    differential(Kind::Dovecot).await;
}

#[tokio::test]
async fn fake_imap_agrees_with_real_cyrus() {
    differential(Kind::Cyrus).await;
}

#[tokio::test]
async fn courier_mode_agrees_with_real_courier() {
    differential(Kind::Courier).await;
}
