//! mailmig's own IMAP client: commands written by hand (they are few and simple), replies read
//! with imap-codec's fragmentizer and response decoder.
//!
//! Why not a client library: every reply is read to its tagged status (a NO or a cut connection
//! is never a short list); a reply the decoder cannot read is handed to the caller as raw
//! bytes, so one damaged message costs that message, not the user; every read has an idle
//! timeout and every command a deadline that only useful data extends, so a stalled or
//! babbling server cannot hold a sync; a stop signal interrupts a blocked read; and the trace
//! log never shows a password, a SASL blob or a message body.

use std::time::Duration;

use imap_codec::ResponseCodec;
use imap_codec::fragmentizer::{DecodeMessageError, FragmentInfo, Fragmentizer};
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

pub struct Client {
    stream: Option<ImapStream>,
    frag: Fragmentizer,
    scratch: Vec<u8>,
    next_tag: u32,
    limits: Limits,
    stop: Option<watch::Receiver<bool>>,
    /// The server takes `{n+}` literals without waiting (LITERAL+).
    pub literal_plus: bool,
}

impl Client {
    pub fn new(stream: ImapStream, limits: Limits) -> Self {
        Self {
            stream: Some(stream),
            frag: Fragmentizer::new(limits.max_message),
            scratch: vec![0; 64 * 1024],
            next_tag: 0,
            limits,
            stop: None,
            literal_plus: false,
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
        let outcome = tokio::select! {
            r = read => match r {
                Ok(Ok(0)) => Err(ClientError::Closed),
                Ok(Ok(n)) => Ok(n),
                Ok(Err(e)) => Err(ClientError::Io(e.to_string())),
                Err(_) => Err(ClientError::Idle(idle)),
            },
            _ = tokio::time::sleep_until(deadline) => Err(ClientError::Deadline {
                command: command.split(' ').next().unwrap_or("").to_string(),
                after: self.limits.command,
            }),
            _ = stopped => Err(ClientError::Stopped),
        };
        match outcome {
            Ok(n) => {
                self.frag.enqueue_bytes(&self.scratch[..n]);
                Ok(())
            }
            Err(e) => Err(self.broken(e)),
        }
    }

    /// Reads until a whole reply is buffered. Literal bytes count as progress.
    async fn next(&mut self, deadline: &mut Instant, command: &str) -> Result<(), ClientError> {
        loop {
            match self.frag.progress() {
                None => self.fill(*deadline, command).await?,
                Some(FragmentInfo::Line {
                    announcement: Some(a),
                    ..
                }) if a.length > self.limits.max_message => {
                    let uid = uid_in(self.frag.message_bytes());
                    let e = ClientError::TooBig {
                        size: a.length,
                        max: self.limits.max_message,
                        uid,
                    };
                    return Err(self.broken(e));
                }
                Some(FragmentInfo::Literal { .. }) => {
                    *deadline = Instant::now() + self.limits.command;
                }
                Some(_) => {}
            }
            if self.frag.is_message_complete() {
                return Ok(());
            }
        }
    }

    /// Reads the greeting; returns its text, or why the server is not an IMAP server.
    pub async fn greeting(&mut self) -> Result<String, ClientError> {
        let mut deadline = Instant::now() + self.limits.command;
        self.next(&mut deadline, "greeting").await?;
        let raw = self.frag.message_bytes().to_vec();
        let decoded = self
            .frag
            .decode_message(&imap_codec::GreetingCodec::default())
            .map(|g| (g.kind, g.text.to_string()));
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
            let raw = self.frag.message_bytes();
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
            let raw = self.frag.message_bytes();
            if raw.starts_with(tagged.as_bytes()) {
                // The server's own words after the status: `NO [THROTTLED] slow down`.
                let rest = first_line(&raw[tagged.len()..]);
                tracing::trace!(%tag, reply = %rest, "IMAP reply");
                // A BAD leaves the connection in step: the server waits for the next command.
                return tagged_reply(command, &rest);
            }
            let step = {
                let decoded = self.frag.decode_message(&ResponseCodec::default());
                match &decoded {
                    Ok(Response::Status(Status::Bye(bye))) => Step::Bye(bye.text.to_string()),
                    Ok(r @ Response::Data(d)) => {
                        if let Data::Capability(caps) = d
                            && caps.as_ref().iter().any(|c| c.to_string() == "LITERAL+")
                        {
                            self.literal_plus = true;
                        }
                        on_untagged(Untagged::Decoded(r));
                        Step::Useful
                    }
                    Ok(r) => {
                        on_untagged(Untagged::Decoded(r));
                        Step::Other
                    }
                    Err(DecodeMessageError::DecodingRemainder { .. })
                    | Err(DecodeMessageError::DecodingFailure(_)) => {
                        let raw = self.frag.message_bytes();
                        tracing::debug!(reply = %first_line(raw), "an IMAP reply could not be decoded");
                        on_untagged(Untagged::Raw(raw));
                        Step::Other
                    }
                    Err(_) => Step::Garbled(first_line(self.frag.message_bytes())),
                }
            };
            let useful = match step {
                Step::Bye(text) => return Err(self.broken(ClientError::Bye(text))),
                Step::Garbled(line) => return Err(self.broken(ClientError::Garbled(line))),
                Step::Useful => true,
                Step::Other => false,
            };
            if useful {
                *deadline = Instant::now() + self.limits.command;
            }
        }
    }
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

/// What one untagged reply means for the command in flight.
enum Step {
    Bye(String),
    Garbled(String),
    /// Data the command asked for: the deadline moves on.
    Useful,
    Other,
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn a_damaged_reply_still_names_its_uid() {
        assert_eq!(uid_in(b"* 3 FETCH (UID 42 FLAGS ($L\xc3\xa4bel)"), Some(42));
        assert_eq!(uid_in(b"* 3 FETCH (FLAGS ())"), None);
        assert_eq!(first_line(b"* OK \x1b[31mred\r\nnext"), "* OK ?[31mred");
    }
}
