//! The workloads the benchmarks measure, shared by the criterion benchmarks (`benches/`, wall
//! clock, for people) and the instruction-count gate (`benches/gate.rs`, for CI): fake-imap
//! -> engine -> an in-memory fake tenant, in one process.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use engine::Engine;
use engine::clock::ManualClock;
use engine::control::NewBatch;
use engine::control::endpoint::Endpoint;
use engine::imap::Security;
use engine::pipeline::{Copier, CopyOptions};
use engine::service::{RunOptions, Service};
use engine::target::Target;
use fake_imap::generate::GeneratorConfig;
use fake_imap::{FakeImapServer, ServerHandle};
use fake_target::{Recipient, Settings, Tenant};
use harness::TenantTarget;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A state and a tenant with one batch of one user (`u@contoso.edu`, logging in as `u`) on
/// `server`, started.
pub struct Run {
    pub engine: Arc<Engine>,
    pub target: Arc<TenantTarget>,
    pub clock: ManualClock,
    _dir: tempfile::TempDir,
}

pub async fn prepare(server: &ServerHandle) -> Run {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let clock = ManualClock::at_epoch();
    let engine = Arc::new(
        Engine::open(&dir.path().join("state"), Arc::new(clock.clone())).expect("a state"),
    );
    let tenant = Tenant::with_clock(
        Settings {
            accepted_domains: vec!["contoso.edu".into()],
            ..Settings::default()
        },
        Arc::new(clock.clone()),
    );
    tenant
        .add_recipient(Recipient::mailbox("u@contoso.edu", true, tenant.now()))
        .expect("a recipient");
    let target = Arc::new(TenantTarget(Arc::new(tenant)));
    engine
        .endpoint_new(Endpoint::imap(
            "src",
            "127.0.0.1",
            server.imap_addr().port(),
            Security::None,
        ))
        .expect("an endpoint");
    engine
        .batch_new(
            NewBatch {
                name: "B".into(),
                source_endpoint: "src".into(),
                autostart: true,
                ..NewBatch::default()
            },
            Path::new("bench.csv"),
            b"EmailAddress,UserName,Password\nu@contoso.edu,u,pw\n",
            &*target as &dyn Target,
        )
        .await
        .expect("a batch");
    Run {
        engine,
        target,
        clock,
        _dir: dir,
    }
}

/// Runs the service until nothing is due. The service's tick is an hour, so it wakes only when
/// the sync ends: a tick every few milliseconds would make the work counted depend on how long
/// the sync took in wall-clock time (under valgrind, on a busy machine: many more ticks).
pub async fn sync(run: &Run) {
    let copy = Copier {
        engine: run.engine.clone(),
        target: run.target.clone(),
        options: CopyOptions::default(),
    };
    Service::new(run.engine.clone(), Arc::new(copy), run.target.clone())
        .run(RunOptions {
            poll: Duration::from_secs(3600),
            ..RunOptions::default()
        })
        .await
        .expect("the service runs");
}

/// A fake-imap server whose user `u` has `count` messages of `size` bytes in INBOX; and their
/// bytes.
pub async fn server(count: usize, size: usize) -> (ServerHandle, u64) {
    let generator = GeneratorConfig {
        min_size: size,
        max_size: size,
        ..GeneratorConfig::default()
    };
    let server = FakeImapServer::new()
        .user("u", "pw")
        .generator(generator)
        .generated("u", "INBOX", count)
        .start()
        .await
        .expect("fake-imap starts");
    let bytes = server
        .store()
        .messages("u", "INBOX")
        .expect("INBOX")
        .iter()
        .map(|m| m.raw.len() as u64)
        .sum();
    (server, bytes)
}

/// One pipelined `UID FETCH 1:* (UID FLAGS INTERNALDATE BODY.PEEK[])` of INBOX, read to the
/// end; the bytes received.
pub async fn fetch_all(addr: std::net::SocketAddr) -> usize {
    let mut tcp = TcpStream::connect(addr).await.expect("a connection");
    tcp.write_all(
        b"a LOGIN u pw\r\nb EXAMINE INBOX\r\nc UID FETCH 1:* (UID FLAGS INTERNALDATE BODY.PEEK[])\r\nd LOGOUT\r\n",
    )
    .await
    .expect("the commands are sent");
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0;
    loop {
        let n = tcp.read(&mut buf).await.expect("the answer");
        if n == 0 {
            return total;
        }
        total += n;
    }
}

/// A migration CSV of `rows` users in Dovecot's master-user form.
pub fn csv(rows: usize, domain: &str) -> String {
    let mut csv = String::from("EmailAddress,UserName,Password\n");
    for i in 0..rows {
        csv.push_str(&format!("u{i}@{domain},u{i}*mailadmin,P@ssw0rd\n"));
    }
    csv
}
