//! mailmig's own IMAP client: commands written by hand (they are few and simple), replies cut
//! into messages by [`Framer`] (lines and the literals they announce, copied in bulk) and
//! decoded with imap-codec's response decoder.
//!
//! Why not a client library: every reply is read to its tagged status (a NO or a cut connection
//! is never a short list); a reply the decoder cannot read is handed to the caller as raw
//! bytes, so one damaged message costs that message, not the user; every read has an idle
//! timeout and every command a deadline that only useful data extends, so a stalled or
//! babbling server cannot hold a sync; a stop signal interrupts a blocked read; and the trace
//! log never shows a password, a SASL blob or a message body.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use imap_codec::ResponseCodec;
use imap_codec::decode::Decoder;
use imap_codec::imap_types::response::{Data, Response, Status};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;

use super::ImapStream;

/// How long the client waits.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// No byte from the server for this long ends the connection.
    pub idle: Duration,
    /// A command gets this long; a reply that brings data (message bytes, a listing entry)
    /// gives it this long again, so big transfers are never cut while they progress.
    pub command: Duration,
    /// The largest single reply (a message's literal included) read into memory.
    pub max_message: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(60),
            command: Duration::from_secs(60),
            max_message: 64 * 1024 * 1024,
        }
    }
}

/// Why the connection cannot go on. After any of these it is closed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    #[error("the server sent nothing for {0:?}")]
    Idle(Duration),
    #[error("the server did not finish {command} within {after:?}")]
    Deadline { command: String, after: Duration },
    #[error("stopped")]
    Stopped,
    #[error("the server closed the connection")]
    Closed,
    #[error("I/O: {0}")]
    Io(String),
    #[error("the server announced {size} bytes in one reply, over the limit of {max}")]
    TooBig {
        size: u32,
        max: u32,
        /// The UID the reply was about, when its first line names one.
        uid: Option<u32>,
    },
    #[error("the server said BYE: {0}")]
    Bye(String),
    /// A tagged BAD: the server did not understand the command.
    #[error("{command} was refused as a bad command: {text}")]
    Bad { command: String, text: String },
    /// The server answered something that is not IMAP.
    #[error("the server's reply could not be read: {0}")]
    Garbled(String),
}

/// An untagged reply, decoded or not.
pub enum Untagged<'a> {
    Decoded(&'a Response<'a>),
    /// A FETCH decoded with its one literal (the body) taken out: empty in the response,
    /// and here.
    DecodedWithBody(&'a Response<'a>, &'a [u8]),
    /// What the decoder could not read (a wrong literal length, 8-bit in an atom, ...), as sent.
    Raw(&'a [u8]),
}

/// How a command ended: OK, or NO with the server's words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Done {
    Ok(String),
    No(String),
}

impl Done {
    pub fn is_ok(&self) -> bool {
        matches!(self, Done::Ok(_))
    }
}

/// A piece of a command: text as is, a literal (sent as `{n}` plus the bytes), or a line sent
/// once the server asks for it with `+` (an AUTHENTICATE response).
pub enum Part<'a> {
    Text(&'a str),
    Literal(&'a [u8]),
    Continued(&'a str),
}

/// The first line of a reply, shortened for a log or an error message.
pub fn first_line(raw: &[u8]) -> String {
    let end = raw
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(raw.len());
    let line = String::from_utf8_lossy(&raw[..end.min(160)]);
    let mut out: String = line
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if end > 160 {
        out.push('…');
    }
    out
}

/// `UID n` in a raw FETCH reply, to know which message a damaged reply was about.
pub fn uid_in(raw: &[u8]) -> Option<u32> {
    let text = String::from_utf8_lossy(&raw[..raw.len().min(512)]).to_ascii_uppercase();
    let at = text.find("UID ")? + 4;
    text[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .ok()
}

/// What the trace log may show of a command: never credentials.
fn redacted(command: &str) -> String {
    let mut words = command.splitn(3, ' ');
    let verb = words.next().unwrap_or("");
    match verb.to_ascii_uppercase().as_str() {
        "LOGIN" => format!("LOGIN {} <password hidden>", words.next().unwrap_or("")),
        "AUTHENTICATE" => format!("AUTHENTICATE {} <hidden>", words.next().unwrap_or("")),
        _ => command.chars().take(200).collect(),
    }
}

/// Cuts a server's byte stream into whole messages: a line, and when it ends by announcing a
/// literal (`{n}`, `~{n}`), the literal's bytes and the line that follows, again and again.
/// Bytes are copied in bulk; a message is handed out as one slice for the decoder.
#[derive(Debug, Default)]
pub struct Framer {
    buf: Vec<u8>,
    /// Where the current message starts.
    start: usize,
    /// The start of the line of the current message not yet looked at.
    cursor: usize,
    /// The end of the last complete message, once [`Framer::next`] found one.
    end: Option<usize>,
    /// The current message's literals: where the `{n}` announcement starts and where its data
    /// starts, as offsets from the message's start, and the data's length.
    literals: Vec<(usize, usize, usize)>,
}

/// A message with its one literal taken out, and that literal.
pub type Split<'a> = (Vec<u8>, &'a [u8]);

/// What [`Framer::next`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Framed {
    /// More bytes are needed.
    Need,
    /// A whole message: [`Framer::message`].
    Message,
    /// A message grows past the limit (a literal announced as this big).
    TooBig(u64),
}

/// The length a line announces for the literal that follows it: `... {123}\r\n`.
fn announced(line: &[u8]) -> Option<u64> {
    let line = line.strip_suffix(b"\n")?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = line.strip_suffix(b"}")?;
    let line = line.strip_suffix(b"+").unwrap_or(line);
    let open = line.iter().rposition(|&b| b == b'{')?;
    let digits = &line[open + 1..];
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

impl Framer {
    /// Appends bytes from the server.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start * 2 >= self.buf.len() {
            // What was handed out goes; the rest moves to the front in one copy.
            self.buf.drain(..self.start);
            self.cursor -= self.start;
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Looks for the next whole message, no bigger than `max` bytes.
    pub fn next(&mut self, max: u64) -> Framed {
        if let Some(end) = self.end.take() {
            self.start = end;
            self.cursor = end;
            self.literals.clear();
        }
        loop {
            let Some(nl) = self.buf[self.cursor..].iter().position(|&b| b == b'\n') else {
                return if (self.buf.len() - self.start) as u64 > max {
                    Framed::TooBig((self.buf.len() - self.start) as u64)
                } else {
                    Framed::Need
                };
            };
            let line_end = self.cursor + nl + 1;
            match announced(&self.buf[self.cursor..line_end]) {
                Some(n) if n + (line_end - self.start) as u64 > max => {
                    return Framed::TooBig(n);
                }
                Some(n) => {
                    let literal_end = line_end + n as usize;
                    if self.buf.len() < literal_end {
                        return Framed::Need; // the line is looked at again: it is short
                    }
                    let line = &self.buf[self.cursor..line_end];
                    let brace = line.iter().rposition(|&b| b == b'{').unwrap_or(0);
                    let announce = self.cursor + brace - self.start;
                    self.literals
                        .push((announce, line_end - self.start, n as usize));
                    self.cursor = literal_end;
                }
                None => {
                    self.end = Some(line_end);
                    return Framed::Message;
                }
            }
        }
    }

    /// The message [`Framer::next`] found, or what there is of the current one.
    pub fn message(&self) -> &[u8] {
        &self.buf[self.start..self.end.unwrap_or(self.buf.len())]
    }

    /// A FETCH reply with its one literal (of `min` bytes or more: the message's body) taken
    /// out: the announcement becomes `{0}` and the bytes are returned beside it. imap-codec
    /// checks a literal byte by byte, through a call per byte; a message body does not need
    /// that check. Only a reply with a single literal is split, so the literal taken is the
    /// body whatever other items come with it; other replies (a LIST's literal name, a FETCH
    /// with several literals) are decoded whole.
    pub fn split_body_literal(&self, min: usize) -> Option<Split<'_>> {
        let [(announce, data, len)] = self.literals[..] else {
            return None;
        };
        let message = self.message();
        if len < min || !is_fetch(message) {
            return None;
        }
        // The line's end (CRLF, or LF alone) stays after the new announcement.
        let eol = if message[data - 2] == b'\r' {
            data - 2
        } else {
            data - 1
        };
        let mut compact = Vec::with_capacity(256);
        compact.extend_from_slice(&message[..announce]);
        compact.extend_from_slice(b"{0}");
        compact.extend_from_slice(&message[eol..data]);
        compact.extend_from_slice(&message[data + len..]);
        Some((compact, &message[data..data + len]))
    }

    /// Bytes of the current message that arrived so far (for progress).
    fn pending(&self) -> usize {
        self.buf.len() - self.start
    }
}

pub struct Client {
    stream: Option<ImapStream>,
    frag: Framer,
    scratch: Vec<u8>,
    next_tag: u32,
    limits: Limits,
    stop: Option<watch::Receiver<bool>>,
    /// The server takes `{n+}` literals without waiting (LITERAL+).
    pub literal_plus: bool,
    /// When the server last sent a byte.
    last_byte: Instant,
    /// Tagged completions of pipelined commands that came while another command's replies
    /// were read (a server may run them at once), by tag: their status line after the tag.
    early: HashMap<String, String>,
}

impl Client {
    pub fn new(stream: ImapStream, limits: Limits) -> Self {
        Self {
            stream: Some(stream),
            frag: Framer::default(),
            scratch: vec![0; 64 * 1024],
            next_tag: 0,
            limits,
            stop: None,
            literal_plus: false,
            last_byte: Instant::now(),
            early: HashMap::new(),
        }
    }

    /// A stop signal: once true, a blocked read ends with [`ClientError::Stopped`].
    pub fn set_stop(&mut self, stop: watch::Receiver<bool>) {
        self.stop = Some(stop);
    }

    /// The connection, for a TLS upgrade (STARTTLS).
    pub fn into_stream(mut self) -> Option<ImapStream> {
        self.stream.take()
    }

    fn broken(&mut self, e: ClientError) -> ClientError {
        self.stream = None;
        e
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        let Some(stream) = self.stream.as_mut() else {
            return Err(ClientError::Closed);
        };
        let written = async {
            stream.write_all(bytes).await?;
            stream.flush().await
        };
        match tokio::time::timeout(self.limits.idle, written).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.broken(ClientError::Io(e.to_string()))),
            Err(_) => Err(self.broken(ClientError::Idle(self.limits.idle))),
        }
    }

    /// More bytes from the server, within the idle timeout, the deadline and the stop signal.
    async fn fill(&mut self, deadline: Instant, command: &str) -> Result<(), ClientError> {
        let idle = self.limits.idle;
        let Some(stream) = self.stream.as_mut() else {
            return Err(ClientError::Closed);
        };
        let stop = self.stop.clone();
        let stopped = async move {
            match stop {
                Some(mut s) => {
                    let _ = s.wait_for(|v| *v).await;
                }
                None => std::future::pending().await,
            }
        };
        let read = tokio::time::timeout(idle, stream.read(&mut self.scratch));
        let last_byte = self.last_byte;
        let outcome = tokio::select! {
            r = read => match r {
                Ok(Ok(0)) => Err(ClientError::Closed),
                Ok(Ok(n)) => Ok(n),
                Ok(Err(e)) => Err(ClientError::Io(e.to_string())),
                Err(_) => Err(ClientError::Idle(idle)),
            },
            // A server silent for the idle time as well is told so, not that it was slow.
            _ = tokio::time::sleep_until(deadline) => if last_byte.elapsed() >= idle {
                Err(ClientError::Idle(idle))
            } else {
                Err(ClientError::Deadline {
                    command: command.split(' ').next().unwrap_or("").to_string(),
                    after: self.limits.command,
                })
            },
            _ = stopped => Err(ClientError::Stopped),
        };
        match outcome {
            Ok(n) => {
                self.last_byte = Instant::now();
                self.frag.push(&self.scratch[..n]);
                Ok(())
            }
            Err(e) => Err(self.broken(e)),
        }
    }

    /// Reads until a whole reply is buffered. Bytes of a reply being received count as
    /// progress (a big message that keeps coming is never cut by the deadline).
    async fn next(&mut self, deadline: &mut Instant, command: &str) -> Result<(), ClientError> {
        loop {
            match self.frag.next(u64::from(self.limits.max_message)) {
                Framed::Message => return Ok(()),
                Framed::TooBig(size) => {
                    let uid = uid_in(self.frag.message());
                    let e = ClientError::TooBig {
                        size: u32::try_from(size).unwrap_or(u32::MAX),
                        max: self.limits.max_message,
                        uid,
                    };
                    return Err(self.broken(e));
                }
                Framed::Need => {
                    let before = self.frag.pending();
                    self.fill(*deadline, command).await?;
                    if before > 0 {
                        *deadline = Instant::now() + self.limits.command;
                    }
                }
            }
        }
    }

    /// Sends LOGOUT and waits until the server closes the connection, for at most `within`.
    /// Its replies (BYE, then OK) are not parsed: the close is the answer that matters.
    pub async fn logout(&mut self, within: Duration) {
        if self.send("LOGOUT").await.is_err() {
            return;
        }
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        let drain = async {
            loop {
                match stream.read(&mut self.scratch).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        };
        let _ = tokio::time::timeout(within, drain).await;
        self.stream = None;
    }

    /// Reads the greeting; returns its text, or why the server is not an IMAP server.
    pub async fn greeting(&mut self) -> Result<String, ClientError> {
        let mut deadline = Instant::now() + self.limits.command;
        self.next(&mut deadline, "greeting").await?;
        let raw = self.frag.message().to_vec();
        let decoded = imap_codec::GreetingCodec::default()
            .decode(&raw)
            .map(|(_, g)| (g.kind, g.text.to_string()));
        match decoded {
            Ok((imap_codec::imap_types::response::GreetingKind::Bye, text)) => {
                Err(self.broken(ClientError::Bye(text)))
            }
            Ok((_, text)) => Ok(text),
            Err(_) => Err(self.broken(ClientError::Garbled(first_line(&raw)))),
        }
    }

    /// Sends a command and reads its replies to the tagged one, handing each untagged reply to
    /// `on_untagged`. `parts` are the command's text after the tag (literals included).
    pub async fn run(
        &mut self,
        parts: &[Part<'_>],
        mut on_untagged: impl FnMut(Untagged<'_>),
    ) -> Result<Done, ClientError> {
        self.next_tag += 1;
        let tag = format!("m{}", self.next_tag);
        let shown: String = parts
            .iter()
            .map(|p| match p {
                Part::Text(t) => t.to_string(),
                Part::Literal(l) => format!("{{{} bytes}}", l.len()),
                Part::Continued(_) => " <continued>".to_string(),
            })
            .collect();
        let command = redacted(&shown);
        tracing::trace!(%tag, command = %command, "IMAP command");
        let mut deadline = Instant::now() + self.limits.command;
        let mut line = format!("{tag} ").into_bytes();
        for part in parts {
            match part {
                Part::Text(t) => line.extend_from_slice(t.as_bytes()),
                Part::Literal(bytes) if self.literal_plus && bytes.len() <= 64 * 1024 => {
                    // Nothing to wait for: small literals go out with the text around them,
                    // in few writes (a MULTIAPPEND of thousands of messages).
                    line.extend_from_slice(format!("{{{}+}}\r\n", bytes.len()).as_bytes());
                    line.extend_from_slice(bytes);
                    if line.len() >= 64 * 1024 {
                        self.write(&line).await?;
                        line.clear();
                    }
                }
                Part::Literal(bytes) => {
                    let plus = if self.literal_plus { "+" } else { "" };
                    line.extend_from_slice(format!("{{{}{plus}}}\r\n", bytes.len()).as_bytes());
                    self.write(&line).await?;
                    line.clear();
                    if !self.literal_plus
                        && let Some(early) =
                            self.continuation(&tag, &command, &mut deadline).await?
                    {
                        return early;
                    }
                    self.write(bytes).await?;
                }
                Part::Continued(text) => {
                    line.extend_from_slice(b"\r\n");
                    self.write(&line).await?;
                    line.clear();
                    if let Some(early) = self.continuation(&tag, &command, &mut deadline).await? {
                        return early;
                    }
                    line.extend_from_slice(text.as_bytes());
                }
            }
        }
        line.extend_from_slice(b"\r\n");
        self.write(&line).await?;
        self.replies(&tag, &command, &mut deadline, &mut on_untagged)
            .await
    }

    /// Sends a command (text only) without waiting for its replies, which
    /// [`Client::replies_to`] reads later: the server can work on it while the client is busy
    /// with an earlier command's answer.
    pub async fn send(&mut self, text: &str) -> Result<String, ClientError> {
        self.next_tag += 1;
        let tag = format!("m{}", self.next_tag);
        tracing::trace!(%tag, command = %redacted(text), "IMAP command");
        self.write(format!("{tag} {text}\r\n").as_bytes()).await?;
        Ok(tag)
    }

    /// The replies of a command [`Client::send`] sent, to its tagged one. A server may run
    /// pipelined commands at once and interleave their untagged replies: `on_untagged` sees
    /// those of any command in flight; a completion that came earlier is returned at once.
    pub async fn replies_to(
        &mut self,
        tag: &str,
        command: &str,
        mut on_untagged: impl FnMut(Untagged<'_>),
    ) -> Result<Done, ClientError> {
        if let Some(rest) = self.early.remove(tag) {
            return tagged_reply(command, &rest);
        }
        let mut deadline = Instant::now() + self.limits.command;
        self.replies(tag, command, &mut deadline, &mut on_untagged)
            .await
    }

    /// APPENDs sent back to back, up to `window` of them in flight: with LITERAL+ each command
    /// and its message go without waiting for anything; otherwise each literal still waits for
    /// its `+`, but never for the earlier commands' completions. How each ended, in order:
    /// `None` for those the connection broke before (they may or may not have landed), with
    /// the error in [`Appended::broke`].
    pub async fn append_pipelined(&mut self, items: &[Append<'_>], window: usize) -> Appended {
        let mut done: Vec<Option<Result<Done, ClientError>>> = items.iter().map(|_| None).collect();
        let mut inflight: VecDeque<(String, usize)> = VecDeque::new();
        let broke = self
            .append_all(items, window.max(1), &mut done, &mut inflight)
            .await
            .err();
        Appended { done, broke }
    }

    async fn append_all(
        &mut self,
        items: &[Append<'_>],
        window: usize,
        done: &mut [Option<Result<Done, ClientError>>],
        inflight: &mut VecDeque<(String, usize)>,
    ) -> Result<(), ClientError> {
        // Small messages are sent in few writes (a TLS record and a syscall each); big ones
        // go straight from the caller's buffer.
        const BATCH: usize = 64 * 1024;
        let mut out: Vec<u8> = Vec::with_capacity(BATCH + 512);
        let mut deadline = Instant::now() + self.limits.command;
        'items: for (i, item) in items.iter().enumerate() {
            while inflight.len() >= window {
                if !out.is_empty() {
                    self.write(&out).await?;
                    out.clear();
                }
                self.pipelined_reply(inflight, done, &mut deadline, None)
                    .await?;
            }
            self.next_tag += 1;
            let tag = format!("m{}", self.next_tag);
            tracing::trace!(%tag, bytes = item.message.len(), "IMAP command APPEND (pipelined)");
            let plus = if self.literal_plus { "+" } else { "" };
            out.extend_from_slice(
                format!(
                    "{tag} APPEND {}{{{}{plus}}}\r\n",
                    item.head,
                    item.message.len()
                )
                .as_bytes(),
            );
            if !self.literal_plus {
                self.write(&out).await?;
                out.clear();
                loop {
                    match self
                        .pipelined_reply(inflight, done, &mut deadline, Some((&tag, i)))
                        .await?
                    {
                        Pipelined::Continue => break,
                        // Refused before its literal (a size limit): nothing more to send.
                        Pipelined::Ended => continue 'items,
                        Pipelined::Other => {}
                    }
                }
            }
            if item.message.len() > BATCH {
                if !out.is_empty() {
                    self.write(&out).await?;
                    out.clear();
                }
                self.write(item.message).await?;
            } else {
                out.extend_from_slice(item.message);
            }
            out.extend_from_slice(b"\r\n");
            inflight.push_back((tag, i));
            if out.len() >= BATCH {
                self.write(&out).await?;
                out.clear();
            }
        }
        if !out.is_empty() {
            self.write(&out).await?;
        }
        while !inflight.is_empty() {
            self.pipelined_reply(inflight, done, &mut deadline, None)
                .await?;
        }
        Ok(())
    }

    /// One reply while APPENDs are in flight: a completion is put in its place, a `+` is for
    /// the command `waiting` for it.
    async fn pipelined_reply(
        &mut self,
        inflight: &mut VecDeque<(String, usize)>,
        done: &mut [Option<Result<Done, ClientError>>],
        deadline: &mut Instant,
        waiting: Option<(&str, usize)>,
    ) -> Result<Pipelined, ClientError> {
        self.next(deadline, "APPEND").await?;
        let raw = self.frag.message();
        if raw.starts_with(b"+") {
            return Ok(if waiting.is_some() {
                Pipelined::Continue
            } else {
                Pipelined::Other
            });
        }
        if raw.starts_with(b"* ") {
            let line = first_line(raw);
            if line
                .get(2..5)
                .is_some_and(|w| w.eq_ignore_ascii_case("BYE"))
            {
                let text = line.get(5..).unwrap_or("").trim().to_string();
                return Err(self.broken(ClientError::Bye(text)));
            }
            return Ok(Pipelined::Other);
        }
        let line = first_line(raw);
        let (tag, rest) = line.split_once(' ').unwrap_or((&line, ""));
        let ended = tagged_reply("APPEND", rest);
        *deadline = Instant::now() + self.limits.command;
        if let Some((own, i)) = waiting
            && own == tag
        {
            done[i] = Some(ended);
            return Ok(Pipelined::Ended);
        }
        if let Some(at) = inflight.iter().position(|(t, _)| t == tag) {
            let (_, i) = inflight.remove(at).expect("found");
            done[i] = Some(ended);
        }
        Ok(Pipelined::Other)
    }

    /// Waits for the `+` that lets a literal go. `Some` when the server ended the command
    /// instead (a size limit, an unknown mechanism): how it ended; the connection stays usable.
    async fn continuation(
        &mut self,
        tag: &str,
        command: &str,
        deadline: &mut Instant,
    ) -> Result<Option<Result<Done, ClientError>>, ClientError> {
        loop {
            self.next(deadline, command).await?;
            let raw = self.frag.message();
            if raw.starts_with(b"+") {
                return Ok(None);
            }
            if let Some(rest) = raw.strip_prefix(format!("{tag} ").as_bytes()) {
                return Ok(Some(tagged_reply(command, &first_line(rest))));
            }
        }
    }

    async fn replies(
        &mut self,
        tag: &str,
        command: &str,
        deadline: &mut Instant,
        on_untagged: &mut impl FnMut(Untagged<'_>),
    ) -> Result<Done, ClientError> {
        let tagged = format!("{tag} ");
        loop {
            self.next(deadline, command).await?;
            let raw = self.frag.message();
            if raw.starts_with(tagged.as_bytes()) {
                // The server's own words after the status: `NO [THROTTLED] slow down`.
                let rest = first_line(&raw[tagged.len()..]);
                tracing::trace!(%tag, reply = %rest, "IMAP reply");
                // A BAD leaves the connection in step: the server waits for the next command.
                return tagged_reply(command, &rest);
            }
            if let Some((other, rest)) = own_tagged(raw) {
                // Another pipelined command of this client completed first.
                tracing::trace!(tag = %other, reply = %rest, "IMAP reply");
                self.early.insert(other, rest);
                continue;
            }
            let step = {
                let raw = self.frag.message();
                let split = self.frag.split_body_literal(BODY_LITERAL);
                let (bytes, body): (&[u8], Option<&[u8]>) = match &split {
                    Some((compact, body)) => (compact, Some(body)),
                    None => (raw, None),
                };
                let decoded = ResponseCodec::default().decode(bytes);
                let hand = |r| match body {
                    None => Untagged::Decoded(r),
                    Some(body) => Untagged::DecodedWithBody(r, body),
                };
                match &decoded {
                    Ok((rest, _)) if !rest.is_empty() => {
                        on_untagged(Untagged::Raw(raw));
                        Step::Other
                    }
                    Ok((_, Response::Status(Status::Bye(bye)))) => Step::Bye(bye.text.to_string()),
                    Ok((_, r @ Response::Data(d))) => {
                        if let Data::Capability(caps) = d
                            && caps.as_ref().iter().any(|c| c.to_string() == "LITERAL+")
                        {
                            self.literal_plus = true;
                        }
                        on_untagged(hand(r));
                        Step::Useful
                    }
                    Ok((_, r)) => {
                        on_untagged(hand(r));
                        Step::Other
                    }
                    Err(_) => {
                        tracing::debug!(reply = %first_line(raw), "an IMAP reply could not be decoded");
                        on_untagged(Untagged::Raw(raw));
                        Step::Other
                    }
                }
            };
            let useful = match step {
                Step::Bye(text) => return Err(self.broken(ClientError::Bye(text))),
                Step::Useful => true,
                Step::Other => false,
            };
            if useful {
                *deadline = Instant::now() + self.limits.command;
            }
        }
    }
}

/// One message for [`Client::append_pipelined`]: the command's text between `APPEND ` and
/// the literal ([`super::commands::append_head`]), and the message as it is to be stored.
pub struct Append<'a> {
    pub head: String,
    pub message: &'a [u8],
}

/// How pipelined APPENDs ended (see [`Client::append_pipelined`]).
pub struct Appended {
    pub done: Vec<Option<Result<Done, ClientError>>>,
    pub broke: Option<ClientError>,
}

enum Pipelined {
    /// The `+` the waiting command's literal needed.
    Continue,
    /// The waiting command ended before its literal went.
    Ended,
    Other,
}

/// A tagged reply's status and text (`NO [THROTTLED] slow down` -> No).
fn tagged_reply(command: &str, rest: &str) -> Result<Done, ClientError> {
    let (kind, text) = rest.split_once(' ').unwrap_or((rest, ""));
    match kind.to_ascii_uppercase().as_str() {
        "OK" => Ok(Done::Ok(text.to_string())),
        "NO" => Ok(Done::No(text.to_string())),
        _ => Err(ClientError::Bad {
            command: command.to_string(),
            text: text.to_string(),
        }),
    }
}

/// Literals this big are taken out of a reply before it is decoded (see
/// [`Framer::split_body_literal`]); smaller ones are not worth the copy of the rest.
const BODY_LITERAL: usize = 256;

/// A completion of one of this client's commands (`m<n> ...`): its tag and status line.
fn own_tagged(message: &[u8]) -> Option<(String, String)> {
    let rest = message.strip_prefix(b"m")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || rest.get(digits) != Some(&b' ') {
        return None;
    }
    let tag = String::from_utf8_lossy(&message[..=digits]).into_owned();
    Some((tag, first_line(&rest[digits + 1..])))
}

/// `* <n> FETCH ...`: an untagged FETCH reply.
fn is_fetch(message: &[u8]) -> bool {
    let Some(rest) = message.strip_prefix(b"* ") else {
        return false;
    };
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    digits > 0
        && rest
            .get(digits..digits + 7)
            .is_some_and(|w| w.eq_ignore_ascii_case(b" FETCH "))
}

/// What one untagged reply means for the command in flight.
enum Step {
    Bye(String),
    /// Data the command asked for: the deadline moves on.
    Useful,
    Other,
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::DuplexStream;

    fn bodies() -> Vec<Vec<u8>> {
        (0..5)
            .map(|i| format!("Subject: {i}\r\n\r\nbody {i}\r\n").into_bytes())
            .collect()
    }

    fn appends(bodies: &[Vec<u8>]) -> Vec<Append<'_>> {
        bodies
            .iter()
            .map(|b| Append {
                head: "\"INBOX\" ".into(),
                message: b,
            })
            .collect()
    }

    async fn read_exactly(server: &mut DuplexStream, n: usize) -> Vec<u8> {
        let mut got = vec![0u8; n];
        server.read_exact(&mut got).await.unwrap();
        got
    }

    /// With LITERAL+ every APPEND and its message are written before the server answers
    /// any: a client that waited for a completion or a `+` would stall here. The
    /// completions come back in order, with the target's UIDs.
    #[tokio::test]
    async fn literal_plus_appends_all_go_out_before_any_reply() {
        let (near, mut server) = tokio::io::duplex(1 << 20);
        let mut c = Client::new(ImapStream::Memory(near), Limits::default());
        c.literal_plus = true;
        let bodies = bodies();
        let items = appends(&bodies);
        let mut expected = Vec::new();
        for (i, b) in bodies.iter().enumerate() {
            let tag = i + 1;
            expected.extend(format!("m{tag} APPEND \"INBOX\" {{{}+}}\r\n", b.len()).bytes());
            expected.extend(b);
            expected.extend(b"\r\n");
        }
        let serve = async {
            let got = read_exactly(&mut server, expected.len()).await;
            for i in 1..=5 {
                let reply = format!("m{i} OK [APPENDUID 9 {}] done\r\n", 100 + i);
                server.write_all(reply.as_bytes()).await.unwrap();
            }
            got
        };
        let both = async { tokio::join!(c.append_pipelined(&items, 16), serve) };
        let (appended, got) = tokio::time::timeout(Duration::from_secs(5), both)
            .await
            .expect("the client sent every APPEND without waiting");
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&expected)
        );
        assert!(appended.broke.is_none());
        let uids: Vec<Option<(u32, u32)>> = appended
            .done
            .iter()
            .map(|d| match d {
                Some(Ok(Done::Ok(text))) => super::super::commands::appenduid(text),
                _ => None,
            })
            .collect();
        assert_eq!(uids, (101..=105).map(|u| Some((9, u))).collect::<Vec<_>>());
    }

    /// Without LITERAL+ each literal waits for its `+`, but never for the earlier commands'
    /// completions: all five are sent before the first OK comes.
    #[tokio::test]
    async fn without_literal_plus_only_each_literal_waits_for_its_continuation() {
        let (near, mut server) = tokio::io::duplex(1 << 20);
        let mut c = Client::new(ImapStream::Memory(near), Limits::default());
        let bodies = bodies();
        let items = appends(&bodies);
        let serve = async {
            for (i, b) in bodies.iter().enumerate() {
                let line = format!("m{} APPEND \"INBOX\" {{{}}}\r\n", i + 1, b.len());
                let got = read_exactly(&mut server, line.len()).await;
                assert_eq!(String::from_utf8_lossy(&got), line);
                server.write_all(b"+ go ahead\r\n").await.unwrap();
                let got = read_exactly(&mut server, b.len() + 2).await;
                assert_eq!(&got[..b.len()], &b[..]);
            }
            for i in 1..=5 {
                let reply = format!("m{i} OK done\r\n");
                server.write_all(reply.as_bytes()).await.unwrap();
            }
        };
        let both = async { tokio::join!(c.append_pipelined(&items, 16), serve) };
        let (appended, ()) = tokio::time::timeout(Duration::from_secs(5), both)
            .await
            .expect("no APPEND waited for an earlier one's completion");
        assert!(appended.broke.is_none());
        assert!(
            appended
                .done
                .iter()
                .all(|d| matches!(d, Some(Ok(Done::Ok(_)))))
        );
    }

    /// A connection cut with APPENDs in flight: those answered are known, the others are
    /// unknown (they may have landed), never reported as done or as refused.
    #[tokio::test]
    async fn appends_in_flight_when_the_connection_breaks_are_unknown() {
        let (near, mut server) = tokio::io::duplex(1 << 20);
        let mut c = Client::new(ImapStream::Memory(near), Limits::default());
        c.literal_plus = true;
        let bodies = bodies();
        let items = appends(&bodies);
        let serve = async move {
            let mut buf = [0u8; 64];
            let _ = server.read(&mut buf).await.unwrap();
            server
                .write_all(b"m1 OK done\r\nm2 NO [OVERQUOTA] full\r\n")
                .await
                .unwrap();
            drop(server);
        };
        let both = async { tokio::join!(c.append_pipelined(&items, 16), serve) };
        let (appended, ()) = tokio::time::timeout(Duration::from_secs(5), both)
            .await
            .unwrap();
        assert!(appended.broke.is_some());
        assert!(matches!(appended.done[0], Some(Ok(Done::Ok(_)))));
        assert!(matches!(appended.done[1], Some(Ok(Done::No(_)))));
        assert!(appended.done[2..].iter().all(Option::is_none));
    }

    #[test]
    fn credentials_never_reach_the_trace() {
        assert_eq!(
            redacted("LOGIN \"terry*admin\" \"s3cret\""),
            "LOGIN \"terry*admin\" <password hidden>"
        );
        assert_eq!(
            redacted("AUTHENTICATE PLAIN dGVycnkAYWRtaW4Ac2VjcmV0"),
            "AUTHENTICATE PLAIN <hidden>"
        );
        assert_eq!(redacted("UID FETCH 1:* (UID)"), "UID FETCH 1:* (UID)");
    }

    #[test]
    fn messages_are_cut_at_lines_and_announced_literals() {
        let mut f = Framer::default();
        f.push(b"* 1 FETCH (UID 7 BODY[] {5}\r\nab");
        assert_eq!(f.next(1000), Framed::Need);
        f.push(b"c\r\n)\r\n* OK x\r");
        assert_eq!(f.next(1000), Framed::Message);
        assert_eq!(f.message(), b"* 1 FETCH (UID 7 BODY[] {5}\r\nabc\r\n)\r\n");
        assert_eq!(f.next(1000), Framed::Need);
        f.push(b"\na1 OK done\r\n");
        assert_eq!(f.next(1000), Framed::Message);
        assert_eq!(f.message(), b"* OK x\r\n");
        assert_eq!(f.next(1000), Framed::Message);
        assert_eq!(f.message(), b"a1 OK done\r\n");
        // A FETCH's one literal comes out of the reply before it is decoded.
        let mut g = Framer::default();
        g.push(b"* 1 FETCH (UID 1 BODY[] {6}\r\nabcdef FLAGS (\\Seen))\r\n");
        assert_eq!(g.next(1000), Framed::Message);
        let (compact, taken) = g.split_body_literal(4).unwrap();
        assert_eq!(
            compact,
            b"* 1 FETCH (UID 1 BODY[] {0}\r\n FLAGS (\\Seen))\r\n"
        );
        assert_eq!(taken, b"abcdef");
        assert!(
            g.split_body_literal(100).is_none(),
            "too small to be worth it"
        );
        // With two literals which one is the body depends on the items: decoded whole.
        let mut g = Framer::default();
        g.push(b"* 1 FETCH (BODY[HEADER] {2}\r\nxy UID 1 BODY[] {6}\r\nabcdef)\r\n");
        assert_eq!(g.next(1000), Framed::Message);
        assert!(g.split_body_literal(1).is_none());
        // Not a FETCH: a LIST's name is never taken out.
        let mut g = Framer::default();
        g.push(b"* LIST () \"/\" {6}\r\nabcdef\r\n");
        assert_eq!(g.next(1000), Framed::Message);
        assert!(g.split_body_literal(1).is_none());
        // A 2 GB announcement is refused before a byte of it is awaited.
        f.push(b"* 2 FETCH (UID 8 BODY[] {2147483648}\r\nxy");
        assert_eq!(f.next(1 << 20), Framed::TooBig(2_147_483_648));
        assert_eq!(announced(b"x {12+}\r\n"), Some(12));
        assert_eq!(announced(b"x ~{3}\r\n"), Some(3));
        assert_eq!(announced(b"x {}\r\n"), None);
        assert_eq!(announced(b"x {1a}\r\n"), None);
    }

    #[test]
    fn a_damaged_reply_still_names_its_uid() {
        assert_eq!(uid_in(b"* 3 FETCH (UID 42 FLAGS ($L\xc3\xa4bel)"), Some(42));
        assert_eq!(uid_in(b"* 3 FETCH (FLAGS ())"), None);
        assert_eq!(first_line(b"* OK \x1b[31mred\r\nnext"), "* OK ?[31mred");
    }
}
