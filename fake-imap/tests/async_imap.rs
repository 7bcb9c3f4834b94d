//! A real IMAP client library (async-imap on tokio) against fake-imap: plain, STARTTLS and
//! implicit TLS, every admin mode, big messages over TLS, and faults as a client sees them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_imap::{Client, Session};
use fake_imap::{AdminMode, FakeImapServer, Fault, FaultAction, ServerHandle, TlsVersions};
use futures::TryStreamExt;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

type Tls = TlsStream<TcpStream>;

async fn plain(server: &ServerHandle) -> Client<TcpStream> {
    let tcp = TcpStream::connect(server.imap_addr()).await.unwrap();
    let mut client = Client::new(tcp);
    client.read_response().await.unwrap().expect("greeting");
    client
}

async fn tls_over(config: Arc<rustls::ClientConfig>, tcp: TcpStream) -> std::io::Result<Tls> {
    tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

async fn starttls(server: &ServerHandle) -> Client<Tls> {
    let mut client = plain(server).await;
    client
        .run_command_and_check_ok("STARTTLS", None)
        .await
        .unwrap();
    let tcp = client.into_inner();
    Client::new(tls_over(server.client_tls_config(), tcp).await.unwrap())
}

async fn implicit(server: &ServerHandle) -> Client<Tls> {
    let tcp = TcpStream::connect(server.imaps_addr().unwrap())
        .await
        .unwrap();
    let mut client = Client::new(tls_over(server.client_tls_config(), tcp).await.unwrap());
    client.read_response().await.unwrap().expect("greeting");
    client
}

fn basic_server() -> FakeImapServer {
    FakeImapServer::new()
        .implicit_tls(true)
        .seed(5)
        .admin("mailadmin", "P@ssw0rd")
        .user_in_domain("terry.adams", "1091990", Some("contoso-students"))
        .generated("terry.adams", "INBOX", 12)
        .generated("terry.adams", "Archive/2019", 3)
}

/// Fetches a folder's messages and checks them byte for byte against the store.
async fn fetch_all_matches_store<T>(
    session: &mut Session<T>,
    server: &ServerHandle,
    user: &str,
    folder: &str,
) where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + std::fmt::Debug + Send,
{
    session.examine(folder).await.unwrap();
    let fetched: Vec<_> = session
        .uid_fetch("1:*", "(UID RFC822.SIZE BODY.PEEK[])")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let stored = server.store().messages(user, folder).unwrap();
    assert_eq!(fetched.len(), stored.len());
    for (f, s) in fetched.iter().zip(&stored) {
        assert_eq!(f.uid, Some(s.uid));
        assert_eq!(f.size, Some(s.raw.len() as u32));
        assert_eq!(f.body(), Some(&s.raw[..]), "UID {} differs", s.uid);
    }
}

#[tokio::test]
async fn plain_login_list_and_fetch() {
    let server = basic_server().start().await.unwrap();
    let mut session = plain(&server)
        .await
        .login("terry.adams", "1091990")
        .await
        .map_err(|e| e.0)
        .unwrap();
    let names: Vec<String> = session
        .list(Some(""), Some("*"))
        .await
        .unwrap()
        .map_ok(|n| n.name().to_string())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(names, vec!["Archive", "Archive/2019", "INBOX"]);
    fetch_all_matches_store(&mut session, &server, "terry.adams", "INBOX").await;
    fetch_all_matches_store(&mut session, &server, "terry.adams", "Archive/2019").await;
    session.logout().await.unwrap();
}

#[tokio::test]
async fn starttls_session() {
    let server = basic_server().start().await.unwrap();
    let mut session = starttls(&server)
        .await
        .login("terry.adams", "1091990")
        .await
        .map_err(|e| e.0)
        .unwrap();
    fetch_all_matches_store(&mut session, &server, "terry.adams", "INBOX").await;
}

#[tokio::test]
async fn implicit_tls_session() {
    let server = basic_server().start().await.unwrap();
    let mut session = implicit(&server)
        .await
        .login("terry.adams", "1091990")
        .await
        .map_err(|e| e.0)
        .unwrap();
    fetch_all_matches_store(&mut session, &server, "terry.adams", "INBOX").await;
}

/// A 5 MB message, bigger than any TLS record or buffer, arrives byte-identical.
#[tokio::test]
async fn five_megabyte_message_over_tls_is_byte_identical() {
    let server = basic_server().start().await.unwrap();
    let mut raw = b"Subject: big\r\nMessage-ID: <big@x>\r\n\r\n".to_vec();
    let mut x: u32 = 1;
    while raw.len() < 5 * 1024 * 1024 {
        for _ in 0..76 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            raw.push(b'!' + (x >> 16) as u8 % 90);
        }
        raw.extend_from_slice(b"\r\n");
    }
    let date = chrono::DateTime::parse_from_rfc3339("2021-01-01T00:00:00Z").unwrap();
    let (_, uid) = server
        .store()
        .append("terry.adams", "INBOX", raw.clone(), &[], date)
        .unwrap();
    for tls in ["starttls", "implicit"] {
        let client = if tls == "starttls" {
            starttls(&server).await
        } else {
            implicit(&server).await
        };
        let mut session = client
            .login("terry.adams", "1091990")
            .await
            .map_err(|e| e.0)
            .unwrap();
        session.examine("INBOX").await.unwrap();
        let fetched: Vec<_> = session
            .uid_fetch(uid.to_string(), "BODY.PEEK[]")
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(fetched.len(), 1);
        assert!(
            fetched[0].body() == Some(&raw[..]),
            "{tls}: 5 MB body differs"
        );
    }
}

async fn inbox_count<T>(session: &mut Session<T>) -> u32
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + std::fmt::Debug + Send,
{
    session.examine("INBOX").await.unwrap().exists
}

struct Plain(&'static str);
impl async_imap::Authenticator for Plain {
    type Response = String;
    fn process(&mut self, _: &[u8]) -> String {
        self.0.to_string()
    }
}

#[tokio::test]
async fn dovecot_master_user_by_login_and_by_sasl_authzid() {
    let server = basic_server()
        .mode(AdminMode::Dovecot)
        .start()
        .await
        .unwrap();
    // async-imap quotes the user name, so the '*' separator reaches the server intact.
    let mut s = starttls(&server)
        .await
        .login("terry.adams*mailadmin", "P@ssw0rd")
        .await
        .map_err(|e| e.0)
        .unwrap();
    assert_eq!(inbox_count(&mut s).await, 12);
    let mut s = starttls(&server)
        .await
        .authenticate("PLAIN", Plain("terry.adams\0mailadmin\0P@ssw0rd"))
        .await
        .map_err(|e| e.0)
        .unwrap();
    assert_eq!(inbox_count(&mut s).await, 12);
    let refused = starttls(&server)
        .await
        .login("terry.adams*mailadmin", "1091990")
        .await;
    assert!(
        refused.is_err(),
        "the user's own password is not the admin's"
    );
}

#[tokio::test]
async fn exchange_admin_login() {
    let server = basic_server()
        .mode(AdminMode::Exchange)
        .start()
        .await
        .unwrap();
    let mut s = implicit(&server)
        .await
        .login("contoso-students/mailadmin/terry.adams", "P@ssw0rd")
        .await
        .map_err(|e| e.0)
        .unwrap();
    assert_eq!(inbox_count(&mut s).await, 12);
    assert!(
        implicit(&server)
            .await
            .login("other/mailadmin/terry.adams", "P@ssw0rd")
            .await
            .is_err()
    );
}

#[tokio::test]
async fn mirapoint_admin_login() {
    let server = basic_server()
        .mode(AdminMode::Mirapoint)
        .start()
        .await
        .unwrap();
    let mut s = plain(&server)
        .await
        .login("#terry.adams@contoso-students#mailadmin#", "P@ssw0rd")
        .await
        .map_err(|e| e.0)
        .unwrap();
    assert_eq!(inbox_count(&mut s).await, 12);
}

#[tokio::test]
async fn plain_mode_refuses_admin_forms() {
    let server = basic_server().mode(AdminMode::Plain).start().await.unwrap();
    assert!(
        plain(&server)
            .await
            .login("terry.adams*mailadmin", "P@ssw0rd")
            .await
            .is_err()
    );
    let mut s = plain(&server)
        .await
        .login("terry.adams", "1091990")
        .await
        .map_err(|e| e.0)
        .unwrap();
    assert_eq!(inbox_count(&mut s).await, 12);
}

async fn names<T>(s: &mut async_imap::Session<T>, pattern: &str) -> Vec<String>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + std::fmt::Debug + Send,
{
    s.list(Some(""), Some(pattern))
        .await
        .unwrap()
        .map_ok(|n| n.name().to_string())
        .try_collect()
        .await
        .unwrap()
}

#[tokio::test]
async fn courier_admin_reads_users_through_shared_folders() {
    let server = basic_server()
        .mode(AdminMode::Courier)
        .start()
        .await
        .unwrap();
    let mut s = implicit(&server)
        .await
        .login("mailadmin", "P@ssw0rd")
        .await
        .map_err(|e| e.0)
        .unwrap();
    // As on real Courier: `*` lists the admin's own folders only; the shared tree answers a
    // pattern that names it; an account's root is its INBOX, and a dot in the account's name
    // is shown as a space.
    let own = names(&mut s, "*").await;
    assert!(own.iter().all(|n| !n.starts_with("/users")), "{own:?}");
    let mut shared = names(&mut s, "\"/users/terry adams*\"").await;
    shared.sort();
    assert_eq!(
        shared,
        vec![
            "/users/terry adams",
            "/users/terry adams/Archive",
            "/users/terry adams/Archive/2019",
        ]
    );
    let mailbox = s.examine("/users/terry adams").await.unwrap();
    assert_eq!(mailbox.exists, 12);
}

#[tokio::test]
async fn a_client_trusting_another_ca_is_refused() {
    let server = basic_server().start().await.unwrap();
    let other = basic_server().start().await.unwrap();
    let tcp = TcpStream::connect(server.imaps_addr().unwrap())
        .await
        .unwrap();
    let err = tls_over(other.client_tls_config(), tcp).await.unwrap_err();
    assert!(
        err.to_string().contains("UnknownIssuer")
            || err.to_string().contains("invalid peer certificate"),
        "{err}"
    );
}

#[tokio::test]
async fn tls_versions_can_be_limited() {
    let server = basic_server()
        .tls_versions(TlsVersions::Tls13Only)
        .start()
        .await
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(server.ca_der().clone()).unwrap();
    let tls12_only = Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    );
    let tcp = TcpStream::connect(server.imaps_addr().unwrap())
        .await
        .unwrap();
    assert!(
        tls_over(tls12_only.clone(), tcp).await.is_err(),
        "TLS 1.2 client vs TLS 1.3-only server"
    );
    let tcp = TcpStream::connect(server.imaps_addr().unwrap())
        .await
        .unwrap();
    assert!(tls_over(server.client_tls_config(), tcp).await.is_ok());
}

#[tokio::test]
async fn throttling_is_seen_and_lifts_after_the_hold() {
    let server = basic_server()
        .fault(
            Fault::new(FaultAction::Throttle)
                .user("terry.adams")
                .command("UID FETCH")
                .times(1)
                .backoff_ms(200)
                .hold_ms(200),
        )
        .start()
        .await
        .unwrap();
    let mut s = plain(&server)
        .await
        .login("terry.adams", "1091990")
        .await
        .map_err(|e| e.0)
        .unwrap();
    s.examine("INBOX").await.unwrap();
    // async-imap's fetch stream ends quietly on a tagged NO, so check the status directly.
    let err = s
        .run_command_and_check_ok("UID FETCH 1:* (UID)")
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("Suggested Backoff Time: 200 milliseconds"),
        "{err}"
    );
    // Still held: a second connection of the same user is throttled too.
    let mut other = plain(&server)
        .await
        .login("terry.adams", "1091990")
        .await
        .map_err(|e| e.0)
        .unwrap();
    let err = other.run_command_and_check_ok("NOOP").await.unwrap_err();
    assert!(err.to_string().contains("throttled"), "{err}");
    tokio::time::sleep(Duration::from_millis(250)).await;
    let all: Vec<_> = s
        .uid_fetch("1:*", "UID")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(all.len(), 12);
}

#[tokio::test]
async fn slow_server_delays_each_response() {
    let server = basic_server()
        .fault(Fault::new(FaultAction::Delay).command("NOOP").ms(150))
        .start()
        .await
        .unwrap();
    let mut s = plain(&server)
        .await
        .login("terry.adams", "1091990")
        .await
        .map_err(|e| e.0)
        .unwrap();
    let started = Instant::now();
    s.noop().await.unwrap();
    s.noop().await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn dropped_mid_literal_is_an_error_for_the_client() {
    let server = basic_server()
        .fault(Fault::new(FaultAction::DropMidLiteral).command("UID FETCH"))
        .start()
        .await
        .unwrap();
    let mut s = plain(&server)
        .await
        .login("terry.adams", "1091990")
        .await
        .map_err(|e| e.0)
        .unwrap();
    s.examine("INBOX").await.unwrap();
    let result = match s.uid_fetch("1:*", "BODY.PEEK[]").await {
        Ok(stream) => stream.try_collect::<Vec<_>>().await.map(|v| v.len()),
        Err(e) => Err(e),
    };
    assert!(
        result.is_err(),
        "a half-sent literal must not look like a message: {result:?}"
    );
}

#[tokio::test]
async fn uidvalidity_change_is_visible_on_the_next_select() {
    let server = basic_server().start().await.unwrap();
    let mut s = plain(&server)
        .await
        .login("terry.adams", "1091990")
        .await
        .map_err(|e| e.0)
        .unwrap();
    let before = s.examine("INBOX").await.unwrap().uid_validity;
    server
        .store()
        .reset_uid_validity("terry.adams", "INBOX")
        .unwrap();
    let after = s.examine("INBOX").await.unwrap().uid_validity;
    assert_ne!(before, after);
}

/// The same seed replays the same faults; another seed gives another run.
#[tokio::test]
async fn same_seed_same_run() {
    async fn run(seed: u64) -> Vec<bool> {
        let server = basic_server()
            .seed(seed)
            .fault(
                Fault::new(FaultAction::Throttle)
                    .command("NOOP")
                    .probability(0.4)
                    .hold_ms(0),
            )
            .start()
            .await
            .unwrap();
        let mut s = plain(&server)
            .await
            .login("terry.adams", "1091990")
            .await
            .map_err(|e| e.0)
            .unwrap();
        let mut out = Vec::new();
        for _ in 0..40 {
            out.push(s.run_command_and_check_ok("NOOP").await.is_ok());
        }
        out
    }
    let a = run(21).await;
    assert_eq!(a, run(21).await);
    assert_ne!(a, run(22).await);
    assert!(a.iter().any(|ok| !ok) && a.iter().any(|ok| *ok));
}

/// Dropping the handle shuts the server down: open sessions get BYE, the port closes.
#[tokio::test]
async fn dropping_the_handle_says_bye_and_closes() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let server = basic_server().start().await.unwrap();
    let addr = server.imap_addr();
    let mut conn = BufReader::new(TcpStream::connect(addr).await.unwrap());
    let mut line = String::new();
    conn.read_line(&mut line).await.unwrap();
    assert!(line.starts_with("* OK"), "{line}");
    drop(server);
    line.clear();
    conn.read_line(&mut line).await.unwrap();
    assert_eq!(line, "* BYE Server shutting down\r\n");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
}
