//! A migration world for data-plane tests: a fake-imap source, an engine on a virtual clock,
//! an in-process (or HTTP) fake tenant, and reconciliation of the two.

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use engine::clock::ManualClock;
use engine::control::endpoint::Endpoint;
use engine::control::state::BatchSettings;
use engine::control::{Engine, NewBatch};
use engine::imap::Security;
use engine::pipeline::{Copier, CopyOptions};
use engine::service::{RunOptions, Service};
use engine::target::Target;
use fake_imap::{FakeImapServer, ServerHandle};
use fake_target::inspect::{Reconciliation, reconcile, target_messages};
use fake_target::{Settings, Tenant, TenantApi};
use harness::TenantTarget;
use harness::source_from_fake_imap;

pub struct World {
    pub engine: Arc<Engine>,
    pub clock: ManualClock,
    pub tenant: Tenant,
    pub api: Arc<dyn TenantApi>,
    pub source: ServerHandle,
    pub options: CopyOptions,
    pub _http: Option<fake_target::http::HttpServer>,
    pub dir: tempfile::TempDir,
}

/// Where the tests' source folders land (the engine's well-known mapping, for the names the
/// tests use).
pub fn target_folder(name: &str) -> Option<String> {
    let mapped = match name {
        "INBOX" => "Inbox".to_string(),
        "Sent" => "Sent Items".to_string(),
        other => other.replace('.', "/"),
    };
    Some(mapped)
}

pub async fn world(source: FakeImapServer, users: &[&str]) -> World {
    world_with(source, users, Settings::default(), false).await
}

pub async fn world_with(
    source: FakeImapServer,
    users: &[&str],
    settings: Settings,
    http: bool,
) -> World {
    let source = source.start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_epoch();
    let engine =
        Arc::new(Engine::open(&dir.path().join("state"), Arc::new(clock.clone())).unwrap());
    let addresses: Vec<String> = users.iter().map(|u| format!("{u}@contoso.edu")).collect();
    let tenant = harness::contoso_tenant(Arc::new(clock.clone()), settings, &addresses);
    let (api, server): (Arc<dyn TenantApi>, _) = if http {
        let server = fake_target::http::serve(tenant.clone(), "tok".into())
            .await
            .unwrap();
        (
            Arc::new(fake_target::http::HttpTenant::new(&server.url(), "tok")),
            Some(server),
        )
    } else {
        (Arc::new(tenant.clone()), None)
    };
    engine
        .endpoint_new(Endpoint::imap(
            "src",
            "127.0.0.1",
            source.imap_addr().port(),
            Security::None,
        ))
        .unwrap();
    World {
        engine,
        clock,
        tenant,
        api,
        source,
        options: CopyOptions {
            timeout: std::time::Duration::from_secs(10),
            ..CopyOptions::default()
        },
        _http: server,
        dir,
    }
}

impl World {
    pub fn target(&self) -> Arc<TenantTarget> {
        Arc::new(TenantTarget(self.api.clone()))
    }

    pub fn set_endpoint(&self, f: impl FnOnce(&mut Endpoint)) {
        let mut e = self.engine.endpoint("src").unwrap();
        f(&mut e);
        self.engine.endpoint_set(e).unwrap();
    }

    pub async fn batch(&self, csv: &str) {
        self.batch_with(csv, BatchSettings::default()).await
    }

    pub async fn batch_with(&self, csv: &str, settings: BatchSettings) {
        self.engine
            .batch_new(
                NewBatch {
                    name: "B".into(),
                    source_endpoint: "src".into(),
                    autostart: true,
                    settings,
                },
                Path::new("users.csv"),
                csv.as_bytes(),
                &*self.target() as &dyn Target,
            )
            .await
            .unwrap();
    }

    pub async fn run(&self) {
        self.run_with(self.target()).await
    }

    /// Runs the service until idle, writing to `target`.
    pub async fn run_with(&self, target: Arc<dyn Target>) {
        let copy = Copier::new(self.engine.clone(), target.clone(), self.options.clone());
        Service::new(self.engine.clone(), Arc::new(copy), target)
            .run(RunOptions {
                poll: std::time::Duration::from_millis(5),
                ..RunOptions::default()
            })
            .await
            .unwrap();
    }

    pub async fn reconcile_with(
        &self,
        user: &str,
        map: impl Fn(&str) -> Option<String>,
    ) -> Reconciliation {
        let source = source_from_fake_imap(self.source.store(), user, map).unwrap();
        let target = target_messages(&*self.api, &format!("{user}@contoso.edu"))
            .await
            .unwrap();
        reconcile(&source, &target)
    }

    pub async fn exact(&self, user: &str) {
        let r = self.reconcile_with(user, target_folder).await;
        assert!(r.is_exact(), "{user}: {r:#?}");
    }

    /// (folder, item, reason) of every skipped item recorded for a user.
    pub fn skipped(&self, email: &str) -> Vec<(String, String, String)> {
        self.engine
            .db
            .read(|tx| tx.skipped_items(email))
            .unwrap()
            .into_iter()
            .map(|s| (s.folder, s.item, s.reason.to_string()))
            .collect()
    }
}
