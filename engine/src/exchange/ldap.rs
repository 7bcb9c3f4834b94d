//! A small LDAP client over ldap3_proto's codec: simple bind, the rootDSE, and subtree searches
//! with the paged-results control (AD returns at most 1,000 entries a page, like NSPI). Plain
//! LDAP or LDAPS through the engine's TLS; every wait bounded.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use ldap3_proto::LdapCodec;
use ldap3_proto::control::LdapControl;
use ldap3_proto::proto::{
    LdapBindCred, LdapBindRequest, LdapDerefAliases, LdapFilter, LdapMsg, LdapOp, LdapResultCode,
    LdapSearchRequest, LdapSearchScope,
};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

use super::http::HttpClient;
use super::{ExchangeError, resolve};
use crate::tls::{self, Protocol};

pub const PAGE_SIZE: i64 = 1000;
/// A directory of 50,000 recipients is 50 pages; more than this many means a server that
/// never ends its answer.
const MAX_PAGES: usize = 1_000;

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// An entry: its DN and attributes (values as text; AD's binary ones are not asked for).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    pub dn: String,
    pub attrs: Vec<(String, Vec<String>)>,
}

impl Entry {
    pub fn values(&self, name: &str) -> &[String] {
        self.attrs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map_or(&[], |(_, v)| v.as_slice())
    }

    pub fn first(&self, name: &str) -> Option<&str> {
        self.values(name).first().map(String::as_str)
    }
}

pub struct Ldap {
    framed: Framed<Box<dyn Io>, LdapCodec>,
    next_id: i32,
    timeout: Duration,
    server: String,
}

impl Ldap {
    /// Connects to `server:port` (through the client's `--connect-to` names), in TLS when
    /// `ldaps`.
    pub async fn connect(
        http: &HttpClient,
        server: &str,
        port: u16,
        ldaps: bool,
    ) -> Result<Self, ExchangeError> {
        let timeout = http.timeout();
        let what = format!("the directory at {server}:{port}");
        let connect = async {
            let (host, to_port) = resolve(http.connect_to(), server, port);
            let tcp = TcpStream::connect((host, to_port)).await.map_err(|e| {
                ExchangeError::Unreachable(format!(
                    "The connection to {what} could not be completed: {e}"
                ))
            })?;
            let _ = tcp.set_nodelay(true);
            let io: Box<dyn Io> = if ldaps {
                let name = ServerName::try_from(server.to_string()).map_err(|e| {
                    ExchangeError::Invalid(format!("invalid server name {server}: {e}"))
                })?;
                let tls = tokio_rustls::TlsConnector::from(http.tls_config())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| {
                        ExchangeError::Certificate(format!(
                            "{what}: {}",
                            tls::advice(&e, server, Protocol::Ldaps)
                        ))
                    })?;
                Box::new(tls)
            } else {
                Box::new(tcp)
            };
            Ok(io)
        };
        let io = tokio::time::timeout(timeout, connect).await.map_err(|_| {
            ExchangeError::Unreachable(format!(
                "The connection to {what} timed out after {}s.",
                timeout.as_secs()
            ))
        })??;
        Ok(Self {
            framed: Framed::new(io, LdapCodec::default()),
            next_id: 1,
            timeout,
            server: format!("{server}:{port}"),
        })
    }

    async fn send(&mut self, op: LdapOp, ctrl: Vec<LdapControl>) -> Result<i32, ExchangeError> {
        let msgid = self.next_id;
        self.next_id += 1;
        let send = self.framed.send(LdapMsg { msgid, op, ctrl });
        match tokio::time::timeout(self.timeout, send).await {
            Ok(Ok(())) => Ok(msgid),
            Ok(Err(e)) => Err(ExchangeError::Transient(format!(
                "the directory at {}: {e}",
                self.server
            ))),
            Err(_) => Err(self.timed_out()),
        }
    }

    fn timed_out(&self) -> ExchangeError {
        ExchangeError::Transient(format!(
            "the directory at {} did not answer within {}s",
            self.server,
            self.timeout.as_secs()
        ))
    }

    async fn receive(&mut self) -> Result<LdapMsg, ExchangeError> {
        match tokio::time::timeout(self.timeout, self.framed.next()).await {
            Ok(Some(Ok(m))) => Ok(m),
            Ok(Some(Err(e))) => Err(ExchangeError::Transient(format!(
                "the directory at {} sent what is not LDAP: {e}",
                self.server
            ))),
            Ok(None) => Err(ExchangeError::Transient(format!(
                "the directory at {} closed the connection",
                self.server
            ))),
            Err(_) => Err(self.timed_out()),
        }
    }

    /// A simple bind. AD takes a DN, a UPN or `DOMAIN\user`.
    pub async fn bind(&mut self, user: &str, password: &str) -> Result<(), ExchangeError> {
        let id = self
            .send(
                LdapOp::BindRequest(LdapBindRequest {
                    version: 3,
                    dn: user.to_string(),
                    cred: LdapBindCred::Simple(password.to_string()),
                }),
                vec![],
            )
            .await?;
        loop {
            let m = self.receive().await?;
            if m.msgid != id {
                continue;
            }
            let LdapOp::BindResponse(r) = m.op else {
                return Err(ExchangeError::Directory(format!(
                    "the directory at {} answered a bind with something else",
                    self.server
                )));
            };
            return match r.res.code {
                LdapResultCode::Success => Ok(()),
                LdapResultCode::InvalidCredentials => Err(ExchangeError::Unauthorized(format!(
                    "the directory at {} refused the credentials of {user}: {}",
                    self.server, r.res.message
                ))),
                other => Err(ExchangeError::Directory(format!(
                    "the directory at {} refused the bind of {user}: {other:?} {}",
                    self.server, r.res.message
                ))),
            };
        }
    }

    /// A search, paged when `paged`; every entry of every page.
    pub async fn search(
        &mut self,
        base: &str,
        scope: LdapSearchScope,
        filter: LdapFilter,
        attrs: &[&str],
        paged: bool,
    ) -> Result<Vec<Entry>, ExchangeError> {
        let mut out = Vec::new();
        let mut cookie: Vec<u8> = Vec::new();
        for _ in 0..MAX_PAGES {
            let ctrl = if paged {
                vec![LdapControl::SimplePagedResults {
                    size: PAGE_SIZE,
                    cookie: cookie.clone(),
                }]
            } else {
                vec![]
            };
            let id = self
                .send(
                    LdapOp::SearchRequest(LdapSearchRequest {
                        base: base.to_string(),
                        scope: scope.clone(),
                        aliases: LdapDerefAliases::Never,
                        sizelimit: 0,
                        timelimit: 0,
                        typesonly: false,
                        filter: filter.clone(),
                        attrs: attrs.iter().map(|a| a.to_string()).collect(),
                    }),
                    ctrl,
                )
                .await?;
            let next = loop {
                let m = self.receive().await?;
                if m.msgid != id {
                    continue;
                }
                match m.op {
                    LdapOp::SearchResultEntry(e) => out.push(Entry {
                        dn: e.dn,
                        attrs: e
                            .attributes
                            .into_iter()
                            .map(|a| {
                                let vals = a
                                    .vals
                                    .into_iter()
                                    .map(|v| String::from_utf8_lossy(&v).into_owned())
                                    .collect();
                                (a.atype, vals)
                            })
                            .collect(),
                    }),
                    LdapOp::SearchResultReference(_) => {}
                    LdapOp::SearchResultDone(r) => {
                        if r.code != LdapResultCode::Success {
                            return Err(ExchangeError::Directory(format!(
                                "the directory at {} refused the search of {base}: {:?} {}",
                                self.server, r.code, r.message
                            )));
                        }
                        break m.ctrl.into_iter().find_map(|c| match c {
                            LdapControl::SimplePagedResults { cookie, .. } => Some(cookie),
                            _ => None,
                        });
                    }
                    _ => {
                        return Err(ExchangeError::Directory(format!(
                            "the directory at {} answered a search with something else",
                            self.server
                        )));
                    }
                }
            };
            match next {
                Some(c) if paged && !c.is_empty() => cookie = c,
                _ => return Ok(out),
            }
        }
        Err(ExchangeError::Directory(format!(
            "the directory at {} sent more than {MAX_PAGES} pages",
            self.server
        )))
    }

    pub async fn unbind(mut self) {
        let _ = self.send(LdapOp::UnbindRequest, vec![]).await;
    }
}
