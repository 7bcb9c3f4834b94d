//! Commands valid in every state: CAPABILITY, NOOP, LOGOUT, ID; and the greeting.

use std::io;

use imap_codec::imap_types::auth::AuthMechanism;
use imap_codec::imap_types::core::{IString, NString, Vec1};
use imap_codec::imap_types::response::{Capability, Code, Data, Greeting, GreetingKind};

use crate::connection::Connection;
use crate::session::{Done, Session, State, send_data};

/// What the server offers in the session's current state.
pub fn capabilities(s: &Session) -> Vec1<Capability<'static>> {
    let mut caps = vec![Capability::Imap4Rev1];
    if matches!(s.state, State::NotAuthenticated) {
        if !s.tls && s.shared.starttls {
            caps.push(Capability::StartTls);
        }
        if s.shared.login_disabled_until_tls && !s.tls {
            caps.push(Capability::LoginDisabled);
        } else {
            caps.push(Capability::Auth(AuthMechanism::Plain));
            caps.push(Capability::SaslIr);
        }
    }
    caps.extend([
        Capability::LiteralPlus,
        Capability::Id,
        Capability::Namespace,
        Capability::UidPlus,
        Capability::Unselect,
        other("CHILDREN"),
    ]);
    let ext = &s.shared.extensions;
    let offered = [
        (ext.idle, Capability::Idle),
        (ext.move_, Capability::Move),
        (ext.enable, Capability::Enable),
        (ext.multiappend, other("MULTIAPPEND")),
        (ext.esearch, other("ESEARCH")),
        (ext.list_extended, Capability::ListExtended),
        (ext.list_extended, other("LIST-STATUS")),
        (ext.special_use, other("SPECIAL-USE")),
        (ext.condstore, Capability::CondStore),
    ];
    caps.extend(offered.into_iter().filter(|(on, _)| *on).map(|(_, c)| c));
    Vec1::try_from(caps).expect("not empty")
}

fn other(name: &'static str) -> Capability<'static> {
    Capability::try_from(name).expect("a valid capability atom")
}

pub async fn greet(s: &mut Session, conn: &mut Connection) -> io::Result<()> {
    let greeting = Greeting::new(
        GreetingKind::Ok,
        Some(Code::Capability(capabilities(s))),
        "fake-imap ready.",
    )
    .expect("valid greeting");
    conn.send_greeting(&greeting).await
}

pub async fn capability(s: &mut Session, conn: &mut Connection) -> io::Result<Done> {
    send_data(conn, Data::Capability(capabilities(s))).await?;
    Ok(Done::ok("CAPABILITY completed"))
}

pub async fn noop(_s: &mut Session, _conn: &mut Connection) -> io::Result<Done> {
    // The session reports EXISTS/EXPUNGE changes after every command, NOOP included.
    Ok(Done::ok("NOOP completed"))
}

pub async fn logout(s: &mut Session, conn: &mut Connection) -> io::Result<Done> {
    s.state = State::Logout;
    let bye_status =
        imap_codec::imap_types::response::Status::bye(None, "Logging out").expect("valid text");
    conn.send(&imap_codec::imap_types::response::Response::Status(
        bye_status,
    ))
    .await?;
    Ok(Done::ok("LOGOUT completed"))
}

pub async fn id(conn: &mut Connection) -> io::Result<Done> {
    let pair = |k: &'static str, v: &'static str| {
        (
            IString::try_from(k).expect("valid"),
            NString(Some(IString::try_from(v).expect("valid"))),
        )
    };
    let parameters = vec![
        pair("name", "fake-imap"),
        pair("vendor", "mailmig"),
        pair("version", env!("CARGO_PKG_VERSION")),
    ];
    send_data(
        conn,
        Data::Id {
            parameters: Some(parameters),
        },
    )
    .await?;
    Ok(Done::ok("ID completed"))
}
