//! Framing over any byte stream: commands in, responses out.
//!
//! Plain TCP, STARTTLS-upgraded and implicit-TLS connections share this code through a boxed
//! stream. imap-codec's `Fragmentizer` splits input into lines and literals with a hard cap on
//! what is buffered, so an over-size literal is refused (or, if the client pushed it with
//! LITERAL+, read and dropped) without ever being held in memory. Parsing and encoding are
//! imap-codec's; this file only moves bytes and decides when to ask for a literal.

use std::io;
use std::time::Duration;

use bounded_static::IntoBoundedStatic;
use imap_codec::fragmentizer::{DecodeMessageError, FragmentInfo, Fragmentizer};
use imap_codec::imap_types::auth::AuthenticateData;
use imap_codec::imap_types::command::Command;
use imap_codec::imap_types::core::{LiteralMode, Tag};
use imap_codec::imap_types::response::{CommandContinuationRequest, Greeting, Response};
use imap_codec::{
    AuthenticateDataCodec, CommandCodec, GreetingCodec, ResponseCodec,
    encode::{Encoder, Fragment},
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};

/// Any stream a session can run over.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Room for the command line around a literal of the maximum size.
const LINE_SLACK: u32 = 64 * 1024;
const READ_CHUNK: usize = 16 * 1024;
/// What a client may send in one command before it has logged in (Dovecot's default line
/// limit, 64 KB): an unauthenticated connection never makes the server buffer more.
pub const PREAUTH_LIMIT: usize = 64 * 1024;

/// A literal the client announced, for the session to accept or refuse.
#[derive(Debug)]
pub struct Announcement {
    pub tag: Option<Tag<'static>>,
    /// The command name, upper case (`APPEND`, `LOGIN`, ...), as far as the line shows it.
    pub command: String,
    pub length: u32,
    pub sync: bool,
}

/// What the session does with an announced literal.
pub enum LiteralDecision {
    Accept,
    /// Refuse it: send this response instead of a continuation request (sync literals only).
    Refuse(Response<'static>),
    /// Read half of it, then close the connection (fault injection).
    DropHalfway,
}

/// What a client sent while idling.
pub enum IdleInput {
    Done,
    Other,
    Closed,
}

/// One unit of client input.
pub enum Incoming {
    /// A command, with what an extension adds to its base form.
    Command(Command<'static>, Option<crate::extended::Extra>),
    /// An extension's syntax, misused: BAD with this text.
    Bad {
        tag: Option<Tag<'static>>,
        text: String,
    },
    /// Well-formed but naming no mailbox there can be (8-bit bytes in a mailbox name): NO,
    /// as Dovecot answers, not BAD.
    No {
        tag: Option<Tag<'static>>,
        text: String,
    },
    /// A message that imap-codec could not parse; the tag if one could be read.
    Malformed {
        tag: Option<Tag<'static>>,
    },
    /// A literal over the limit that the client sent anyway (LITERAL+), now discarded.
    TooBig {
        tag: Option<Tag<'static>>,
    },
    /// A sync literal the session refused; the refusal was already sent.
    Refused,
    Closed,
}

pub struct Connection {
    stream: BufWriter<Box<dyn Stream>>,
    fragmentizer: Fragmentizer,
    max_literal: u32,
    scratch: Vec<u8>,
    /// Delay added before every flush of a response (fault injection: a slow server).
    pub response_delay: Option<Duration>,
    /// Set until the client has logged in: the most a command may take before then.
    pub preauth_limit: Option<usize>,
    /// Bytes received since the last complete command (what the fragmentizer may hold).
    unanswered: usize,
    /// While set, responses are kept here, one entry per response, instead of being sent
    /// (so two commands' replies can be interleaved: [`Connection::capture`]).
    captured: Option<Vec<Vec<u8>>>,
}

impl Connection {
    pub fn new(stream: Box<dyn Stream>, max_literal: u32) -> Self {
        Self {
            stream: BufWriter::with_capacity(32 * 1024, stream),
            fragmentizer: Fragmentizer::new(max_literal.saturating_add(LINE_SLACK)),
            max_literal,
            scratch: vec![0; READ_CHUNK],
            response_delay: None,
            preauth_limit: Some(PREAUTH_LIMIT),
            unanswered: 0,
            captured: None,
        }
    }

    /// Hands back the raw stream for a TLS upgrade. Bytes the client pipelined after STARTTLS
    /// are dropped on purpose: accepting them would allow plaintext command injection.
    pub fn into_stream(self) -> Box<dyn Stream> {
        self.stream.into_inner()
    }

    async fn fill(&mut self) -> io::Result<bool> {
        let n = self.stream.read(&mut self.scratch).await?;
        if n == 0 {
            return Ok(false);
        }
        self.fragmentizer.enqueue_bytes(&self.scratch[..n]);
        self.unanswered += n;
        Ok(true)
    }

    /// Reads the next command. `decide` is asked about every announced literal.
    pub async fn read_command(
        &mut self,
        mut decide: impl FnMut(&Announcement) -> LiteralDecision,
    ) -> io::Result<Incoming> {
        loop {
            let Some(fragment) = self.fragmentizer.progress() else {
                if !self.fill().await? {
                    return Ok(Incoming::Closed);
                }
                if let Some(limit) = self.preauth_limit
                    && self.unanswered > limit
                {
                    return self.refuse_preauth().await;
                }
                continue;
            };
            if let FragmentInfo::Line {
                announcement: Some(ann),
                ..
            } = fragment
            {
                let announcement = Announcement {
                    tag: self.fragmentizer.decode_tag().map(|t| t.into_static()),
                    command: command_name(self.fragmentizer.message_bytes()),
                    length: ann.length,
                    sync: ann.mode == LiteralMode::Sync,
                };
                let over_preauth = self
                    .preauth_limit
                    .is_some_and(|limit| announcement.length as usize > limit);
                if over_preauth && !announcement.sync {
                    // It is on its way and we will not hold it: end the connection.
                    return self.refuse_preauth().await;
                }
                let decision = if announcement.length > self.max_literal || over_preauth {
                    LiteralDecision::Refuse(too_big(announcement.tag.clone()))
                } else {
                    decide(&announcement)
                };
                match decision {
                    LiteralDecision::Accept if announcement.sync => {
                        let cont =
                            CommandContinuationRequest::basic(None, "Ready for literal data")
                                .expect("valid text");
                        self.send(&Response::CommandContinuationRequest(cont))
                            .await?;
                        self.flush().await?;
                    }
                    LiteralDecision::Accept => {}
                    LiteralDecision::Refuse(response) if announcement.sync => {
                        self.fragmentizer.skip_message();
                        self.unanswered = 0;
                        self.send(&response).await?;
                        self.flush().await?;
                        return Ok(Incoming::Refused);
                    }
                    // A non-sync literal is on its way whatever we say: let the fragmentizer
                    // swallow it (truncated to its cap) and report TooBig when it is complete.
                    LiteralDecision::Refuse(_) => self.fragmentizer.poison_message(),
                    LiteralDecision::DropHalfway => {
                        if announcement.sync {
                            let cont = CommandContinuationRequest::basic(None, "Ready")
                                .expect("valid text");
                            self.send(&Response::CommandContinuationRequest(cont))
                                .await?;
                            self.flush().await?;
                        }
                        let mut left = announcement.length / 2;
                        while left > 0 {
                            let want = self.scratch.len().min(left as usize);
                            let n = self.stream.read(&mut self.scratch[..want]).await?;
                            if n == 0 {
                                break;
                            }
                            left -= n as u32;
                        }
                        let _ = self.stream.shutdown().await;
                        return Ok(Incoming::Closed);
                    }
                }
            }
            if !self.fragmentizer.is_message_complete() {
                continue;
            }
            self.unanswered = 0;
            let tag = self.fragmentizer.decode_tag().map(|t| t.into_static());
            return Ok(
                match self.fragmentizer.decode_message(&CommandCodec::default()) {
                    Ok(command) => Incoming::Command(command.into_static(), None),
                    Err(DecodeMessageError::MessageTooLong { .. })
                    | Err(DecodeMessageError::MessagePoisoned { .. }) => Incoming::TooBig { tag },
                    Err(_) => {
                        let bytes = self.fragmentizer.message_bytes();
                        match crate::extended::parse(bytes) {
                            crate::extended::Parsed::Command(command, extra) => {
                                Incoming::Command(*command, Some(extra))
                            }
                            crate::extended::Parsed::Bad(text) => Incoming::Bad { tag, text },
                            crate::extended::Parsed::NotOurs => match lenient_login(bytes) {
                                Some(command) => Incoming::Command(command, None),
                                None if names_mailbox_in_8bit(bytes) => Incoming::No {
                                    tag,
                                    text: "Mailbox name is not valid mUTF-7".into(),
                                },
                                None => Incoming::Malformed { tag },
                            },
                        }
                    }
                },
            );
        }
    }

    /// Ends a connection that sent more before login than a server holds.
    async fn refuse_preauth(&mut self) -> io::Result<Incoming> {
        use imap_codec::imap_types::response::Status;
        let bye = Status::bye(None, "Too long argument before login").expect("valid text");
        self.send(&Response::Status(bye)).await?;
        let _ = self.shutdown().await;
        Ok(Incoming::Closed)
    }

    /// Writes bytes as they are (responses imap-codec has no type for, such as ESEARCH).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write(bytes).await?;
        self.end_response();
        Ok(())
    }

    /// Waits for the `DONE` that ends IDLE. Cancel-safe: bytes read stay queued.
    pub async fn read_idle_done(&mut self) -> io::Result<IdleInput> {
        loop {
            match self.fragmentizer.progress() {
                None => {
                    if !self.fill().await? {
                        return Ok(IdleInput::Closed);
                    }
                }
                Some(_) if self.fragmentizer.is_message_complete() => {
                    self.unanswered = 0;
                    let done = self
                        .fragmentizer
                        .decode_message(&imap_codec::IdleDoneCodec::default())
                        .is_ok();
                    return Ok(if done {
                        IdleInput::Done
                    } else {
                        IdleInput::Other
                    });
                }
                Some(_) => {}
            }
        }
    }

    /// Reads one line of an AUTHENTICATE exchange.
    pub async fn read_auth_data(&mut self) -> io::Result<Option<AuthenticateData<'static>>> {
        loop {
            match self.fragmentizer.progress() {
                None => {
                    if !self.fill().await? {
                        return Ok(None);
                    }
                }
                Some(_) if self.fragmentizer.is_message_complete() => {
                    let decoded = self
                        .fragmentizer
                        .decode_message(&AuthenticateDataCodec::default())
                        .map(|d| d.into_static());
                    // Undecodable data counts as a cancelled exchange.
                    return Ok(Some(decoded.unwrap_or(AuthenticateData::Cancel)));
                }
                Some(_) => {}
            }
        }
    }

    /// From now on, responses are kept (one entry each) instead of sent, until
    /// [`Connection::captured`] hands them back; flushes do nothing meanwhile.
    pub fn capture(&mut self) {
        self.captured = Some(vec![Vec::new()]);
    }

    /// The responses kept since [`Connection::capture`], each whole; sending resumes.
    pub fn captured(&mut self) -> Vec<Vec<u8>> {
        let mut kept = self.captured.take().unwrap_or_default();
        kept.retain(|r| !r.is_empty());
        kept
    }

    /// Writes bytes now, or keeps them in the response being captured.
    async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self.captured.as_mut().and_then(|c| c.last_mut()) {
            Some(current) => {
                current.extend_from_slice(bytes);
                Ok(())
            }
            None => self.stream.write_all(bytes).await,
        }
    }

    /// Ends a response: the next bytes captured start the next one.
    fn end_response(&mut self) {
        if let Some(c) = self.captured.as_mut() {
            c.push(Vec::new());
        }
    }

    /// Queues a response (sent on the next flush, or earlier if the buffer fills).
    pub async fn send(&mut self, response: &Response<'_>) -> io::Result<()> {
        for fragment in ResponseCodec::default().encode(response) {
            match fragment {
                Fragment::Line { data } | Fragment::Literal { data, .. } => {
                    self.write(&data).await?
                }
            }
        }
        self.end_response();
        Ok(())
    }

    pub async fn send_greeting(&mut self, greeting: &Greeting<'_>) -> io::Result<()> {
        let bytes = GreetingCodec::default().encode(greeting).dump();
        self.stream.write_all(&bytes).await?;
        self.flush().await
    }

    /// Sends a response whose literals were encoded empty, writing `bodies` in their place
    /// straight from the caller's buffers: a big message is never copied into an encode
    /// buffer. With `truncate`, stops halfway through the first literal and closes the
    /// connection (fault injection).
    pub async fn send_with_literals(
        &mut self,
        response: &Response<'_>,
        bodies: &[&[u8]],
        truncate: bool,
    ) -> io::Result<()> {
        let mut fragments = ResponseCodec::default().encode(response).peekable();
        let mut next_body = bodies.iter();
        while let Some(fragment) = fragments.next() {
            match fragment {
                Fragment::Line { mut data } => {
                    if matches!(fragments.peek(), Some(Fragment::Literal { data, .. }) if data.is_empty())
                    {
                        let body = next_body.clone().next().map_or(0, |b| b.len());
                        patch_literal_length(&mut data, body);
                    }
                    self.write(&data).await?;
                }
                // A literal with content is the response's own (an 8-bit ENVELOPE string);
                // the empty ones are the placeholders.
                Fragment::Literal { data, .. } if !data.is_empty() => {
                    self.write(&data).await?;
                }
                Fragment::Literal { .. } => {
                    let body = next_body.next().copied().unwrap_or(b"");
                    if truncate {
                        // What was kept goes first: the break comes where the client is.
                        for r in self.captured() {
                            self.stream.write_all(&r).await?;
                        }
                        self.stream.write_all(&body[..body.len() / 2]).await?;
                        self.stream.flush().await?;
                        return self.stream.shutdown().await;
                    }
                    self.write(body).await?;
                }
            }
        }
        self.end_response();
        Ok(())
    }

    /// Sends responses kept by [`Connection::capture`] (in the order given).
    pub async fn send_captured(&mut self, responses: &[Vec<u8>]) -> io::Result<()> {
        for r in responses {
            self.stream.write_all(r).await?;
        }
        Ok(())
    }

    pub async fn flush(&mut self) -> io::Result<()> {
        if self.captured.is_some() {
            return Ok(());
        }
        if let Some(delay) = self.response_delay {
            tokio::time::sleep(delay).await;
        }
        self.stream.flush().await
    }

    pub async fn shutdown(&mut self) -> io::Result<()> {
        self.stream.flush().await?;
        self.stream.shutdown().await
    }
}

fn too_big(tag: Option<Tag<'static>>) -> Response<'static> {
    use imap_codec::imap_types::response::{Code, Status};
    let status = match tag {
        Some(tag) => Status::no(
            Some(tag),
            Some(Code::TooBig),
            "Literal exceeds the server's limit",
        ),
        None => Status::bad(None, None, "Literal exceeds the server's limit"),
    };
    Response::Status(status.expect("valid text"))
}

/// Rewrites the `{0}` that ends a line announcing an empty literal to `{len}`.
fn patch_literal_length(line: &mut Vec<u8>, len: usize) {
    if line.ends_with(b"{0}\r\n") {
        line.truncate(line.len() - 5);
        line.extend_from_slice(format!("{{{len}}}\r\n").as_bytes());
    }
}

/// The command word of a raw command line (`a1 UID FETCH ...` -> `UID FETCH`).
fn command_name(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(&line[..line.len().min(200)]);
    let mut words = text.split_ascii_whitespace().skip(1);
    let first = words.next().unwrap_or("").to_ascii_uppercase();
    if first == "UID" {
        format!("UID {}", words.next().unwrap_or("").to_ascii_uppercase())
    } else {
        first
    }
}

/// A mailbox command whose line holds 8-bit bytes (a raw UTF-8 name, which IMAP4rev1 cannot
/// carry: names are modified UTF-7). APPEND's message is a literal and does not count.
fn names_mailbox_in_8bit(message: &[u8]) -> bool {
    const TAKES_A_MAILBOX: [&str; 11] = [
        "CREATE",
        "DELETE",
        "RENAME",
        "SELECT",
        "EXAMINE",
        "SUBSCRIBE",
        "UNSUBSCRIBE",
        "STATUS",
        "LIST",
        "LSUB",
        "APPEND",
    ];
    let line_end = message
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(message.len());
    let line = &message[..line_end];
    let verb = command_name(line);
    TAKES_A_MAILBOX.contains(&verb.as_str()) && line.iter().any(|b| !b.is_ascii())
}

/// `LOGIN user*admin pw` with bare atoms that hold list wildcards (`*`, `%`) or other
/// characters RFC 3501 keeps out of atoms: Dovecot and Courier accept them, and so do clients
/// such as Python's imaplib, which sends a master-user login unquoted (and the password
/// quoted). Such a line is read as if both arguments were quoted strings.
fn lenient_login(line: &[u8]) -> Option<Command<'static>> {
    use imap_codec::decode::Decoder;
    let text = std::str::from_utf8(line).ok()?.strip_suffix("\r\n")?;
    let (tag, rest) = text.split_once(' ')?;
    let (verb, rest) = rest.split_once(' ')?;
    if !verb.eq_ignore_ascii_case("LOGIN") {
        return None;
    }
    let (user, rest) = argument(rest)?;
    let (password, rest) = argument(rest.strip_prefix(' ')?)?;
    if !rest.is_empty() {
        return None;
    }
    let q = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    let quoted = format!("{tag} LOGIN {} {}\r\n", q(&user), q(&password));
    let (rest, command) = CommandCodec::default().decode(quoted.as_bytes()).ok()?;
    rest.is_empty().then(|| command.into_static())
}

/// One LOGIN argument: a quoted string (unescaped) or a bare run of visible characters; and
/// what follows it.
fn argument(s: &str) -> Option<(String, &str)> {
    if let Some(body) = s.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = body.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => out.push(chars.next()?.1),
                '"' => return Some((out, &body[i + 1..])),
                c => out.push(c),
            }
        }
        return None;
    }
    let end = s.find(' ').unwrap_or(s.len());
    let token = &s[..end];
    let visible = !token.is_empty()
        && token
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'\\' | b'(' | b')' | b'{'));
    visible.then(|| (token.to_string(), &s[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_length_is_patched_only_at_the_end() {
        let mut line = b"* 1 FETCH (BODY[] {0}\r\n".to_vec();
        patch_literal_length(&mut line, 1234);
        assert_eq!(line, b"* 1 FETCH (BODY[] {1234}\r\n");
        let mut other = b"* OK {0} here\r\n".to_vec();
        patch_literal_length(&mut other, 5);
        assert_eq!(other, b"* OK {0} here\r\n");
    }

    #[test]
    fn command_name_reads_the_uid_form() {
        assert_eq!(command_name(b"a1 uid fetch 1:* (FLAGS)\r\n"), "UID FETCH");
        assert_eq!(command_name(b"a2 APPEND INBOX {12}\r\n"), "APPEND");
        assert_eq!(command_name(b""), "");
    }
}
