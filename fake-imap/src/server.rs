//! Listeners and the accept loop. Every server binds 127.0.0.1 on an OS-chosen port; dropping
//! the handle (or `shutdown`) stops the accept loops and says BYE to every open session.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

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
    fn enter(&self) -> StatsGuard<'_> {
        let now = self.open.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        self.total.fetch_add(1, Ordering::SeqCst);
        StatsGuard(self)
    }
}

struct StatsGuard<'a>(&'a Stats);
impl Drop for StatsGuard<'_> {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
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
    let _guard = shared.stats.enter();
    let _ = socket.set_nodelay(true);
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
