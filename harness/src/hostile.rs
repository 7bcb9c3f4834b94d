//! A hostile IMAP server: just enough IMAP for a migration (greeting, CAPABILITY, LOGIN, LIST,
//! EXAMINE, UID FETCH, LOGOUT), answered with raw bytes so it can break every rule on demand:
//! a greeting that never comes, stalls at each step, endless untagged noise, literals longer or
//! shorter than announced, a 2 GB literal announcement, 8-bit keywords, folder names that are not
//! modified UTF-7 or hold 8-bit bytes or CR/LF, repeated and out-of-order UIDs.
//!
//! It is a test double of broken servers, so its parsing is deliberately naive: one command per
//! line, arguments split on spaces, quotes stripped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What the server does wrong (each once per connection unless said otherwise).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Misbehaviour {
    /// Accept the connection and never say a word.
    NeverGreet,
    /// Answer nothing to the first command with this verb (`EXAMINE`, `LIST`, `FETCH`).
    StallOn(&'static str),
    /// In the body FETCH, send half of this message's literal, then nothing.
    StallMidLiteral { uid: u32 },
    /// After EXAMINE's data, send `* OK noise` lines forever, never the tagged reply.
    EndlessUntagged,
    /// Announce this message's literal `by` bytes longer than what is sent.
    LiteralShorterThanAnnounced { uid: u32, by: usize },
    /// Announce it `by` bytes shorter than what is sent.
    LiteralLongerThanAnnounced { uid: u32, by: usize },
    /// Announce a 2 GB literal for this message (and send a little).
    HugeLiteral { uid: u32 },
    /// Give this message an 8-bit keyword (`$Läbel`) in every FETCH.
    EightBitKeyword { uid: u32 },
    /// Report each UID twice, in reverse order, in the listing.
    RepeatedAndOutOfOrderUids,
}

/// A folder: its name exactly as sent in LIST and taken by EXAMINE, and its messages.
#[derive(Clone, Debug)]
pub struct HostileFolder {
    pub wire: Vec<u8>,
    pub messages: Vec<Vec<u8>>,
}

impl HostileFolder {
    /// `count` small messages, each different.
    pub fn new(wire: &[u8], count: usize) -> Self {
        let name = String::from_utf8_lossy(wire).to_string();
        Self {
            wire: wire.to_vec(),
            messages: (1..=count)
                .map(|i| {
                    format!(
                        "From: a@example.org\r\nSubject: {name} {i}\r\nMessage-ID: <{i}.{}@hostile>\r\n\r\nbody {i}\r\n",
                        name.len()
                    )
                    .into_bytes()
                })
                .collect(),
        }
    }
}

#[derive(Clone, Debug)]
struct Script {
    folders: Vec<HostileFolder>,
    misbehaviour: Option<Misbehaviour>,
    /// Misbehave on the first this many connections only (0: always).
    connections: usize,
}

/// A running hostile server on 127.0.0.1; dropped, it stops.
pub struct HostileServer {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for HostileServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HostileServer {
    /// Serves `folders` (INBOX should be among them), misbehaving as told on every
    /// connection, or only on the first `connections` of them.
    pub async fn start(
        folders: Vec<HostileFolder>,
        misbehaviour: Option<Misbehaviour>,
        connections: usize,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let accepted = Arc::new(AtomicUsize::new(0));
        let script = Arc::new(Script {
            folders,
            misbehaviour,
            connections,
        });
        let counter = accepted.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                let script = script.clone();
                tokio::spawn(async move {
                    let bad = script.connections == 0 || n <= script.connections;
                    let misbehaviour = if bad {
                        script.misbehaviour.clone()
                    } else {
                        None
                    };
                    let _ = serve(tcp, &script.folders, misbehaviour).await;
                });
            }
        });
        Ok(Self {
            addr,
            accepted,
            task,
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// The arguments of a command line, quotes stripped.
fn args(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ' ' if !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// UIDs a UID set names (`1,3:5,7`), limited to `1..=max`.
fn uids(set: &str, max: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for part in set.split(',') {
        let bound = |s: &str| {
            if s == "*" {
                Some(max)
            } else {
                s.parse::<u32>().ok()
            }
        };
        match part.split_once(':') {
            Some((a, b)) => {
                if let (Some(a), Some(b)) = (bound(a), bound(b)) {
                    out.extend(a.min(b)..=a.max(b).min(max));
                }
            }
            None => {
                if let Some(u) = bound(part)
                    && u >= 1
                    && u <= max
                {
                    out.push(u);
                }
            }
        }
    }
    out
}

async fn serve(
    tcp: TcpStream,
    folders: &[HostileFolder],
    bad: Option<Misbehaviour>,
) -> std::io::Result<()> {
    if bad == Some(Misbehaviour::NeverGreet) {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        return Ok(());
    }
    let (read, mut write) = tcp.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"* OK hostile IMAP ready\r\n").await?;
    let mut selected: Option<usize> = None;
    let mut line = Vec::new();
    loop {
        line.clear();
        if lines.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_string();
        let a = args(&text);
        let (Some(tag), Some(verb)) = (a.first(), a.get(1)) else {
            continue;
        };
        let verb = verb.to_ascii_uppercase();
        let is_fetch = verb == "UID" && a.get(2).is_some_and(|v| v.eq_ignore_ascii_case("FETCH"));
        if let Some(Misbehaviour::StallOn(on)) = &bad
            && (verb == *on || (is_fetch && *on == "FETCH"))
        {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return Ok(());
        }
        let mut out: Vec<u8> = Vec::new();
        match verb.as_str() {
            "CAPABILITY" => out.extend_from_slice(b"* CAPABILITY IMAP4rev1\r\n"),
            "LOGIN" | "LOGOUT" | "NOOP" => {}
            "LIST" => {
                let pattern = a.get(3).map(String::as_str).unwrap_or("*");
                if pattern.is_empty() {
                    out.extend_from_slice(b"* LIST (\\Noselect) \"/\" \"\"\r\n");
                } else {
                    for f in folders {
                        out.extend_from_slice(b"* LIST () \"/\" ");
                        if f.wire.iter().any(|b| !(0x20..=0x7e).contains(b)) {
                            // Raw bytes where the grammar has no room for them.
                            out.extend_from_slice(b"\"");
                            out.extend_from_slice(&f.wire);
                            out.extend_from_slice(b"\"");
                        } else {
                            out.extend_from_slice(
                                format!("\"{}\"", String::from_utf8_lossy(&f.wire)).as_bytes(),
                            );
                        }
                        out.extend_from_slice(b"\r\n");
                    }
                }
            }
            "EXAMINE" | "SELECT" => {
                // The name is everything after the verb, as sent (quotes stripped).
                let name = text.splitn(3, ' ').nth(2).unwrap_or("").trim_matches('"');
                match folders.iter().position(|f| f.wire == name.as_bytes()) {
                    Some(i) => {
                        selected = Some(i);
                        out.extend_from_slice(
                            format!(
                                "* {} EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n",
                                folders[i].messages.len()
                            )
                            .as_bytes(),
                        );
                        if bad == Some(Misbehaviour::EndlessUntagged) {
                            write.write_all(&out).await?;
                            loop {
                                write.write_all(b"* OK noise\r\n").await?;
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                        }
                    }
                    None => {
                        write
                            .write_all(format!("{tag} NO no such folder\r\n").as_bytes())
                            .await?;
                        continue;
                    }
                }
            }
            "UID" if is_fetch => {
                let Some(f) = selected.map(|i| &folders[i]) else {
                    write
                        .write_all(format!("{tag} BAD no folder\r\n").as_bytes())
                        .await?;
                    continue;
                };
                let set = a.get(3).map(String::as_str).unwrap_or("");
                let items = a[4..].join(" ").to_ascii_uppercase();
                let mut wanted = uids(set, f.messages.len() as u32);
                if items.contains("RFC822.SIZE")
                    && bad == Some(Misbehaviour::RepeatedAndOutOfOrderUids)
                {
                    wanted = wanted.iter().rev().flat_map(|&u| [u, u]).collect();
                }
                for (n, uid) in wanted.into_iter().enumerate() {
                    let body = &f.messages[uid as usize - 1];
                    let keyword = match &bad {
                        Some(Misbehaviour::EightBitKeyword { uid: u }) if *u == uid => {
                            " $L\u{e4}bel"
                        }
                        _ => "",
                    };
                    let mut reply = format!("* {} FETCH (UID {uid}", n + 1).into_bytes();
                    if items.contains("FLAGS") {
                        reply.extend_from_slice(format!(" FLAGS (\\Seen{keyword})").as_bytes());
                    }
                    if items.contains("INTERNALDATE") {
                        reply.extend_from_slice(b" INTERNALDATE \"01-Mar-2025 10:00:00 +0000\"");
                    }
                    if items.contains("RFC822.SIZE") {
                        reply.extend_from_slice(format!(" RFC822.SIZE {}", body.len()).as_bytes());
                    }
                    if items.contains("BODY.PEEK[]") {
                        let announced = match &bad {
                            Some(Misbehaviour::LiteralShorterThanAnnounced { uid: u, by })
                                if *u == uid =>
                            {
                                body.len() + by
                            }
                            Some(Misbehaviour::LiteralLongerThanAnnounced { uid: u, by })
                                if *u == uid =>
                            {
                                body.len().saturating_sub(*by)
                            }
                            Some(Misbehaviour::HugeLiteral { uid: u }) if *u == uid => {
                                2_147_483_648
                            }
                            _ => body.len(),
                        };
                        reply.extend_from_slice(format!(" BODY[] {{{announced}}}\r\n").as_bytes());
                        if matches!(&bad, Some(Misbehaviour::StallMidLiteral { uid: u }) if *u == uid)
                        {
                            reply.extend_from_slice(&body[..body.len() / 2]);
                            write.write_all(&out).await?;
                            write.write_all(&reply).await?;
                            tokio::time::sleep(Duration::from_secs(3600)).await;
                            return Ok(());
                        }
                        reply.extend_from_slice(body);
                        if matches!(&bad, Some(Misbehaviour::HugeLiteral { uid: u }) if *u == uid) {
                            write.write_all(&out).await?;
                            write.write_all(&reply).await?;
                            // The rest would be 2 GB: the client must not wait for it.
                            tokio::time::sleep(Duration::from_secs(3600)).await;
                            return Ok(());
                        }
                    }
                    reply.extend_from_slice(b")\r\n");
                    out.extend_from_slice(&reply);
                }
            }
            _ => {
                write
                    .write_all(format!("{tag} BAD unknown command\r\n").as_bytes())
                    .await?;
                continue;
            }
        }
        out.extend_from_slice(format!("{tag} OK done\r\n").as_bytes());
        write.write_all(&out).await?;
        if verb == "LOGOUT" {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets() {
        assert_eq!(uids("1,3:4,9", 5), vec![1, 3, 4]);
        assert_eq!(uids("1:*", 3), vec![1, 2, 3]);
        assert_eq!(args("a1 LOGIN \"x y\" z"), vec!["a1", "LOGIN", "x y", "z"]);
    }
}
