//! Not-authenticated state: STARTTLS, LOGIN, AUTHENTICATE PLAIN.

use std::io;

use imap_codec::imap_types::auth::{AuthMechanism, AuthenticateData};
use imap_codec::imap_types::core::{AString, Tag};
use imap_codec::imap_types::response::{Code, CommandContinuationRequest, Response, Status};

use crate::admin::Login;
use crate::connection::Connection;
use crate::faults::FaultAction;
use crate::session::{Done, Session, State, other_code};

fn auth_failed() -> Done {
    Done::No(
        Some(other_code("AUTHENTICATIONFAILED")),
        "Authentication failed.".into(),
    )
}

fn logged_in(s: &mut Session, login: Login) -> Done {
    tracing::debug!(user = %login.authenticated_as, owner = %login.view.owner(), "logged in");
    s.login = Some(login);
    s.state = State::Authenticated;
    // As Dovecot does: the capabilities after login come with the OK, saving a round trip.
    Done::Ok(
        Some(Code::Capability(crate::cmd::any::capabilities(s))),
        "Logged in".into(),
    )
}

pub async fn starttls(
    s: &mut Session,
    conn: &mut Connection,
    tag: Tag<'static>,
) -> io::Result<Done> {
    if s.tls || !s.shared.starttls || !matches!(s.state, State::NotAuthenticated) {
        return Ok(Done::Bad("STARTTLS not available".into()));
    }
    let ok = Status::ok(Some(tag), None, "Begin TLS negotiation now").expect("valid");
    conn.send(&Response::Status(ok)).await?;
    conn.flush().await?;
    // Swap the connection for a TLS one over the same socket.
    let placeholder = Connection::new(Box::new(tokio::io::duplex(1).0), 0);
    let plain = std::mem::replace(conn, placeholder).into_stream();
    let tls = s.shared.tls.accept(plain).await?;
    *conn = Connection::new(Box::new(tls), s.shared.max_literal);
    s.tls = true;
    Ok(Done::Answered)
}

pub async fn login(
    s: &mut Session,
    username: AString<'static>,
    password: AString<'static>,
) -> Done {
    if !matches!(s.state, State::NotAuthenticated) {
        return Done::Bad("Already logged in".into());
    }
    if s.shared.login_disabled_until_tls && !s.tls {
        return Done::No(
            Some(other_code("PRIVACYREQUIRED")),
            "LOGIN is disabled until STARTTLS".into(),
        );
    }
    let user = String::from_utf8_lossy(username.as_ref()).to_string();
    let pass = String::from_utf8_lossy(password.as_ref()).to_string();
    match s.shared.directory.login(&user, &pass) {
        Some(login) => logged_in(s, login),
        None => {
            // "User is authenticated but not connected": OK now, every command fails later.
            if s.fault(FaultAction::LoginThenFail).is_some()
                && let Some(login) = s.shared.directory.owner_of(&user)
            {
                s.broken = true;
                return logged_in(s, login);
            }
            auth_failed()
        }
    }
}

pub async fn authenticate(
    s: &mut Session,
    conn: &mut Connection,
    mechanism: AuthMechanism<'static>,
    initial: Option<Vec<u8>>,
) -> io::Result<Done> {
    if !matches!(s.state, State::NotAuthenticated) {
        return Ok(Done::Bad("Already logged in".into()));
    }
    if !matches!(mechanism, AuthMechanism::Plain) {
        return Ok(Done::No(
            None,
            "Unsupported authentication mechanism".into(),
        ));
    }
    if s.shared.login_disabled_until_tls && !s.tls {
        return Ok(Done::No(
            Some(other_code("PRIVACYREQUIRED")),
            "Authentication is disabled until STARTTLS".into(),
        ));
    }
    let data = match initial {
        Some(data) => data,
        None => {
            // An empty challenge: "+ " and nothing else (RFC 4616).
            let cont = CommandContinuationRequest::base64(Vec::new());
            conn.send(&Response::CommandContinuationRequest(cont))
                .await?;
            conn.flush().await?;
            match conn.read_auth_data().await? {
                None => return Ok(Done::Closed),
                Some(AuthenticateData::Cancel) => {
                    return Ok(Done::Bad("Authentication cancelled".into()));
                }
                Some(AuthenticateData::Continue(secret)) => secret.declassify().to_vec(),
            }
        }
    };
    // RFC 4616: authzid NUL authcid NUL password.
    let mut parts = data.split(|&b| b == 0);
    let (Some(authzid), Some(authcid), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Ok(auth_failed());
    };
    let text = |b: &[u8]| String::from_utf8_lossy(b).to_string();
    Ok(
        match s
            .shared
            .directory
            .sasl_plain(&text(authzid), &text(authcid), &text(password))
        {
            Some(login) => logged_in(s, login),
            None => auth_failed(),
        },
    )
}
