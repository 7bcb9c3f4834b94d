//! Every admin mode x every security mode x every target kind: fake-imap -> engine -> the
//! in-process tenant, the tenant over HTTP, or a second fake-imap; each copy checked message by
//! message.

use std::path::Path;
use std::sync::Arc;

use engine::clock::ManualClock;
use engine::control::endpoint::Endpoint;
use engine::control::status::UserStatus;
use engine::control::{Engine, NewBatch};
use engine::imap::Security;
use engine::pipeline::{Copier, CopyOptions};
use engine::service::{RunOptions, Service};
use engine::target::Target;
use engine::target::imap::{ImapTarget, ImapTargetConfig, KEY_HEADER};
use fake_imap::{AdminMode, FakeImapServer};
use fake_target::inspect::{fingerprint, reconcile, target_messages};
use fake_target::{Settings, TenantApi};
use harness::TenantTarget;
use harness::source_from_fake_imap;

#[derive(Clone, Copy, Debug)]
enum Kind {
    InProcess,
    Http,
    Imap,
}

fn csv_for(mode: AdminMode) -> (&'static str, Option<&'static str>) {
    match mode {
        AdminMode::Plain => ("terry", None),
        AdminMode::Dovecot => ("terry*mailadmin", None),
        AdminMode::Exchange => ("contoso-students/mailadmin/terry", None),
        AdminMode::Mirapoint => ("#terry@contoso-students#mailadmin#", None),
        AdminMode::Courier => ("mailadmin", Some("/users/terry")),
    }
}

async fn one(mode: AdminMode, security: Security, kind: Kind) {
    let label = format!("{mode:?}/{security:?}/{kind:?}");
    let source = FakeImapServer::new()
        .mode(mode)
        .implicit_tls(true)
        .seed(3)
        .admin("mailadmin", "P@ssw0rd")
        .user_in_domain("terry", "P@ssw0rd", Some("contoso-students"))
        .generated("terry", "INBOX", 3)
        .generated("terry", "Sent", 2)
        .start()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, source.ca_pem()).unwrap();
    let clock = ManualClock::at_epoch();
    let engine =
        Arc::new(Engine::open(&dir.path().join("state"), Arc::new(clock.clone())).unwrap());
    let port = match security {
        Security::Ssl => source.imaps_addr().unwrap().port(),
        _ => source.imap_addr().port(),
    };
    let mut endpoint = Endpoint::imap("src", "127.0.0.1", port, security);
    endpoint.imap_settings_mut().unwrap().ca_file = Some(ca);
    engine.endpoint_new(endpoint).unwrap();

    let tenant = harness::contoso_tenant(
        Arc::new(clock.clone()),
        Settings::default(),
        &["terry@contoso.edu".to_string()],
    );
    let imap_target_server = FakeImapServer::new()
        .mode(AdminMode::Dovecot)
        .admin("root", "rootpw")
        .user("terry", "x")
        .start()
        .await
        .unwrap();
    let mut _http = None;
    let target: Arc<dyn Target> = match kind {
        Kind::InProcess => Arc::new(TenantTarget(Arc::new(tenant.clone()))),
        Kind::Http => {
            let server = fake_target::http::serve(tenant.clone(), "tok".into())
                .await
                .unwrap();
            let client: Arc<dyn TenantApi> =
                Arc::new(fake_target::http::HttpTenant::new(&server.url(), "tok"));
            _http = Some(server);
            Arc::new(TenantTarget(client))
        }
        Kind::Imap => Arc::new(ImapTarget::new(ImapTargetConfig {
            remote_server: "127.0.0.1".into(),
            port: imap_target_server.imap_addr().port(),
            security: Security::None,
            ca_file: None,
            username_format: "{local}*root".into(),
            password: "rootpw".into(),
            source_key_header: false,
        })),
    };
    let (user_name, root) = csv_for(mode);
    let csv = match root {
        Some(r) => format!(
            "EmailAddress,UserName,Password,UserRoot\nterry@contoso.edu,{user_name},P@ssw0rd,{r}\n"
        ),
        None => {
            format!("EmailAddress,UserName,Password\nterry@contoso.edu,\"{user_name}\",P@ssw0rd\n")
        }
    };
    engine
        .batch_new(
            NewBatch {
                name: "B".into(),
                source_endpoint: "src".into(),
                autostart: true,
                ..NewBatch::default()
            },
            Path::new("u.csv"),
            csv.as_bytes(),
            &*target,
        )
        .await
        .unwrap();
    let copy = Copier {
        engine: engine.clone(),
        target: target.clone(),
        options: CopyOptions::default(),
    };
    Service::new(engine.clone(), Arc::new(copy), target.clone())
        .run(RunOptions::default())
        .await
        .unwrap();
    let u = engine.user("terry@contoso.edu").unwrap();
    assert_eq!(
        (u.status, u.items_synced),
        (UserStatus::Synced, 5),
        "{label}: {:?}",
        u.error
    );

    match kind {
        Kind::InProcess | Kind::Http => {
            let map = |f: &str| {
                Some(if f == "INBOX" {
                    "Inbox".to_string()
                } else {
                    "Sent Items".to_string()
                })
            };
            let source_msgs = source_from_fake_imap(source.store(), "terry", map).unwrap();
            let target_msgs = target_messages(&tenant, "terry@contoso.edu").await.unwrap();
            let r = reconcile(&source_msgs, &target_msgs);
            assert!(r.is_exact(), "{label}: {r:#?}");
        }
        Kind::Imap => {
            for (src, dst) in [("INBOX", "INBOX"), ("Sent", "Sent Items")] {
                let mut want: Vec<String> = source
                    .store()
                    .messages("terry", src)
                    .unwrap()
                    .iter()
                    .map(|m| fingerprint(&m.raw))
                    .collect();
                let mut got: Vec<String> = imap_target_server
                    .store()
                    .messages("terry", dst)
                    .unwrap()
                    .iter()
                    .map(|m| {
                        // Exact copies: no key header in front.
                        assert!(!m.raw.starts_with(KEY_HEADER.as_bytes()));
                        fingerprint(&m.raw)
                    })
                    .collect();
                want.sort();
                got.sort();
                assert_eq!(want, got, "{label}: {src}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_mode_security_mode_and_target_kind() {
    for mode in [
        AdminMode::Plain,
        AdminMode::Dovecot,
        AdminMode::Exchange,
        AdminMode::Mirapoint,
        AdminMode::Courier,
    ] {
        for security in [Security::None, Security::Ssl, Security::Tls] {
            for kind in [Kind::InProcess, Kind::Http, Kind::Imap] {
                one(mode, security, kind).await;
            }
        }
    }
}
