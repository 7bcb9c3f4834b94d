//! Replays the IMAP transcripts in `tests/transcripts/*.txt` against a fresh server each.
//!
//! A transcript file is a server config and a dialogue:
//!
//! ```text
//! # comments start with '#'
//! --- config
//! [server]
//! mode = "dovecot"
//! [[users]]
//! name = "terry"
//! password = "pw"
//! --- transcript
//! S: * OK [CAPABILITY IMAP4rev1 ...] fake-imap ready.
//! C: a1 LOGIN terry pw
//! S: a1 OK Logged in
//! ```
//!
//! `C:` lines are sent with CRLF. `S:` lines must match the next line the server sends;
//! `...` in an `S:` line matches any text. `S~` skips server lines until one matches. Directives: `!starttls` (upgrade to TLS trusting the
//! server's CA), `!closed` (the server must have closed the connection), `!sleep MS`,
//! `!deliver USER FOLDER SUBJECT` and `!expunge USER FOLDER UID` (another client's changes),
//! `!flags USER FOLDER UID [FLAG...]` (another client replaces a message's flags),
//! `!implicit-tls` (first line: connect to the implicit-TLS port).
//! A step may start with a connection number (`2 C: ...`, `2 S: ...`): connection 1 is the
//! default; another one is opened the first time it is named (its greeting is an `S:` step).
//! Set `TRANSCRIPT_PRINT=1` to print what the server sent.

use std::path::{Path, PathBuf};
use std::time::Duration;

use fake_imap::{Config, FakeImapServer, ServerHandle};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/transcripts")
}

struct Transcript {
    config: Config,
    steps: Vec<(usize, String)>,
}

fn parse(path: &Path) -> Transcript {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (mut config_text, mut steps) = (String::new(), Vec::new());
    let mut section = "";
    for (i, line) in text.lines().enumerate() {
        match line {
            "--- config" => section = "config",
            "--- transcript" => section = "transcript",
            _ if section == "config" => {
                config_text.push_str(line);
                config_text.push('\n');
            }
            _ if section == "transcript" && !line.starts_with('#') && !line.trim().is_empty() => {
                steps.push((i + 1, line.to_string()))
            }
            _ => {}
        }
    }
    let mut config = Config::from_toml(&config_text)
        .unwrap_or_else(|e| panic!("{}: config: {e}", path.display()));
    config.resolve_paths(&dir());
    Transcript { config, steps }
}

/// `...` matches any run of characters.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split("...").collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let mut rest = text;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            let Some(at) = rest.find(part) else {
                return false;
            };
            rest = &rest[at + part.len()..];
        }
    }
    true
}

async fn connect(server: &ServerHandle, implicit: bool) -> BufReader<Box<dyn Io>> {
    let addr = if implicit {
        server.imaps_addr().expect("implicit TLS enabled in config")
    } else {
        server.imap_addr()
    };
    let tcp = TcpStream::connect(addr).await.expect("connect");
    // Consecutive `C:` lines are pipelined, as a client without Nagle's delay sends them.
    tcp.set_nodelay(true).expect("nodelay");
    let io: Box<dyn Io> = if implicit {
        Box::new(tls(server, tcp).await)
    } else {
        Box::new(tcp)
    };
    BufReader::new(io)
}

async fn tls<S: AsyncRead + AsyncWrite + Unpin>(
    server: &ServerHandle,
    io: S,
) -> tokio_rustls::client::TlsStream<S> {
    let connector = tokio_rustls::TlsConnector::from(server.client_tls_config());
    connector
        .connect(ServerName::try_from("localhost").unwrap(), io)
        .await
        .expect("TLS handshake with the server's CA")
}

async fn run(name: &str) {
    let path = dir().join(format!("{name}.txt"));
    let t = parse(&path);
    let server = FakeImapServer::from_config(t.config)
        .start()
        .await
        .expect("server starts");
    let print = std::env::var_os("TRANSCRIPT_PRINT").is_some();
    let implicit = t.steps.first().is_some_and(|(_, s)| s == "!implicit-tls");
    let mut conns = vec![Some(connect(&server, implicit).await)];
    let where_ = |n: usize| format!("{}:{n}", path.display());
    for (n, step) in &t.steps {
        let (index, step) = match step.split_once(' ') {
            Some((d, rest)) if d.len() == 1 && d.as_bytes()[0].is_ascii_digit() => {
                (usize::from(d.as_bytes()[0] - b'0'), rest.to_string())
            }
            _ => (1, step.clone()),
        };
        let step = &step;
        if conns.len() < index {
            conns.resize_with(index, || None);
        }
        if conns[index - 1].is_none() {
            conns[index - 1] = Some(connect(&server, false).await);
        }
        let conn = conns[index - 1].as_mut().expect("opened above");
        if let Some(line) = step.strip_prefix("C: ").or_else(|| step.strip_prefix("C:")) {
            let mut bytes = line.as_bytes().to_vec();
            bytes.extend_from_slice(b"\r\n");
            conn.get_mut().write_all(&bytes).await.expect("send");
            conn.get_mut().flush().await.expect("flush");
        } else if let Some((skip, want)) = step
            .strip_prefix("S: ")
            .map(|w| (false, w))
            .or_else(|| step.strip_prefix("S~ ").map(|w| (true, w)))
        {
            loop {
                let mut got = Vec::new();
                let read =
                    tokio::time::timeout(Duration::from_secs(5), conn.read_until(b'\n', &mut got))
                        .await
                        .unwrap_or_else(|_| {
                            panic!("{}: timed out waiting for {want:?}", where_(*n))
                        });
                let count = read.unwrap_or_else(|e| panic!("{}: read failed: {e}", where_(*n)));
                assert!(
                    count > 0,
                    "{}: connection closed, wanted {want:?}",
                    where_(*n)
                );
                let got = String::from_utf8_lossy(&got);
                let got = got.strip_suffix("\r\n").unwrap_or(&got);
                if print {
                    println!("S: {got}");
                }
                if skip && !glob(want, got) {
                    continue;
                }
                assert!(
                    glob(want, got),
                    "{}:\n  want: {want}\n   got: {got}",
                    where_(*n)
                );
                break;
            }
        } else if step == "!starttls" {
            let io = conns[index - 1].take().expect("open").into_inner();
            conns[index - 1] = Some(BufReader::new(
                Box::new(tls(&server, io).await) as Box<dyn Io>
            ));
        } else if step == "!closed" {
            let mut rest = Vec::new();
            let n_read =
                tokio::time::timeout(Duration::from_secs(5), conn.read_until(b'\n', &mut rest))
                    .await
                    .unwrap_or_else(|_| panic!("{}: connection still open", where_(*n)));
            assert!(
                matches!(n_read, Ok(0) | Err(_)),
                "{}: expected the connection closed, got {:?}",
                where_(*n),
                String::from_utf8_lossy(&rest)
            );
        } else if let Some(ms) = step.strip_prefix("!sleep ") {
            tokio::time::sleep(Duration::from_millis(ms.parse().expect("!sleep MS"))).await;
        } else if let Some(args) = step.strip_prefix("!deliver ") {
            let mut a = args.splitn(3, ' ');
            let (user, folder, subject) = (a.next().unwrap(), a.next().unwrap(), a.next().unwrap());
            let raw = format!("Subject: {subject}\r\nFrom: x@example.org\r\n\r\nbody\r\n");
            let date = chrono::DateTime::parse_from_rfc3339("2021-03-04T05:06:07Z").unwrap();
            server
                .store()
                .append(user, folder, raw.into_bytes(), &[], date)
                .expect("deliver");
        } else if let Some(args) = step.strip_prefix("!expunge ") {
            let a: Vec<&str> = args.split(' ').collect();
            let uid: u32 = a[2].parse().expect("UID");
            server
                .store()
                .expunge_uids(a[0], a[1], &[uid])
                .expect("expunge");
        } else if let Some(args) = step.strip_prefix("!flags ") {
            let a: Vec<&str> = args.split(' ').collect();
            let uid: u32 = a[2].parse().expect("UID");
            server
                .store()
                .set_flags(a[0], a[1], uid, &a[3..])
                .expect("flags");
        } else if step == "!implicit-tls" {
        } else {
            panic!("{}: unknown step {step:?}", where_(*n));
        }
    }
}

macro_rules! transcripts {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                run(stringify!($name)).await;
            }
        )*

        /// Every file in the folder is replayed by some test above.
        #[test]
        fn every_transcript_file_is_listed() {
            let listed = [$(stringify!($name)),*];
            for entry in std::fs::read_dir(dir()).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "txt") {
                    let stem = path.file_stem().unwrap().to_string_lossy().to_string();
                    assert!(listed.contains(&stem.as_str()), "{stem}.txt is not listed in transcripts!()");
                }
            }
        }
    };
}

transcripts!(
    admin_courier,
    admin_dovecot,
    admin_dovecot_login,
    admin_exchange,
    admin_mirapoint,
    admin_plain,
    any_state,
    append,
    authenticate_plain,
    authenticate_plain_ir,
    copy,
    courier_shared_dot,
    envelope_search,
    expunge,
    ext_condstore,
    ext_idle_move_enable,
    ext_list_extended,
    ext_multiappend_esearch,
    ext_switched_off,
    fault_bye_after_commands,
    fault_drop_mid_literal_append,
    fault_drop_mid_literal_fetch,
    fault_expunge_during_fetch,
    fault_fetch_no,
    fault_login_then_fail,
    fault_missing_header,
    fault_rewrite_headers,
    fault_throttle_disconnect,
    fault_throttle_exchange,
    fault_throttle_gmail,
    fault_uidvalidity_change,
    fault_wrong_sequence,
    fault_wrong_size,
    fetch,
    fetch_mime,
    implicit_tls,
    login,
    login_bare_master_user,
    login_literals,
    mailboxes,
    names_subscriptions,
    no_starttls,
    odd_folder_names,
    other_sessions,
    quirk_bye_after_errors,
    quirk_concurrent_fetches,
    quirk_courier_examine,
    quirk_exchange_append,
    quirk_folder_names_target,
    quirk_idle_timeout,
    quirk_quota_and_generic_limit,
    recent_sessions,
    search,
    select_examine_status,
    starttls,
    store,
);

#[test]
fn glob_matches() {
    assert!(glob("a ... c", "a b c"));
    assert!(glob(
        "* OK [UIDVALIDITY ...] UIDs valid",
        "* OK [UIDVALIDITY 1001] UIDs valid"
    ));
    assert!(!glob("a ... c", "a b d"));
    assert!(glob("exact", "exact") && !glob("exact", "exactly"));
}
