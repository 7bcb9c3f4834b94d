//! Listeners and the accept loop. Every server binds 127.0.0.1 on an OS-chosen port; dropping
//! the handle (or `shutdown`) stops the accept loops and says BYE to every open session.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::admin::Directory;
use crate::connection::{Connection, Stream};
use crate::faults::{Faults, Quirks};
use crate::session::Session;
use crate::store::Store;

/// Everything the sessions of one server share.
pub(crate) struct Shared {
    pub store: Store,
    pub directory: Directory,
    pub faults: Faults,
    pub quirks: Quirks,
    pub extensions: crate::config::Extensions,
    pub tls: TlsAcceptor,
    pub starttls: bool,
    pub login_disabled_until_tls: bool,
    pub max_literal: u32,
    pub seed: u64,
    pub stats: Stats,
}

/// Connection counters, for tests that watch a client's concurrency from outside.
#[derive(Default)]
pub struct Stats {
    open: AtomicUsize,
    peak: AtomicUsize,
    total: AtomicUsize,
}

impl Stats {
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }
    pub fn total(&self) -> usize {
        self.total.load(Ordering::SeqCst)
    }
}

/// A connection, counted open from its accept until its socket closes. The count drops
/// before the socket does (fields drop in order), so a client that saw the server close a
/// connection never finds it still counted: "at most N at once" holds as clients see it.
struct Counted {
    _open: OpenGuard,
    socket: TcpStream,
}

struct OpenGuard(Arc<Shared>);

impl OpenGuard {
    fn enter(shared: Arc<Shared>) -> Self {
        let stats = &shared.stats;
        let now = stats.open.fetch_add(1, Ordering::SeqCst) + 1;
        stats.peak.fetch_max(now, Ordering::SeqCst);
        stats.total.fetch_add(1, Ordering::SeqCst);
        Self(shared)
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.stats.open.fetch_sub(1, Ordering::SeqCst);
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.socket).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.socket).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.socket).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.socket).poll_shutdown(cx)
    }
}

pub(crate) async fn bind() -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

pub(crate) async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    implicit_tls: bool,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut session_number: u64 = 0;
    loop {
        let accepted = tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => accepted,
        };
        let Ok((socket, peer)) = accepted else {
            continue;
        };
        session_number += 1;
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        let number = session_number;
        tokio::spawn(async move {
            if let Err(e) = serve(socket, shared, implicit_tls, shutdown, number).await {
                tracing::debug!(%peer, error = %e, "session ended with an error");
            }
        });
    }
}

async fn serve(
    socket: TcpStream,
    shared: Arc<Shared>,
    implicit_tls: bool,
    shutdown: watch::Receiver<bool>,
    number: u64,
) -> std::io::Result<()> {
    let _ = socket.set_nodelay(true);
    let socket = Counted {
        _open: OpenGuard::enter(shared.clone()),
        socket,
    };
    let stream: Box<dyn Stream> = if implicit_tls {
        Box::new(shared.tls.accept(socket).await?)
    } else {
        Box::new(socket)
    };
    let conn = Connection::new(stream, shared.max_literal);
    Session::new(shared.clone(), implicit_tls, number)
        .run(conn, shutdown)
        .await
}
