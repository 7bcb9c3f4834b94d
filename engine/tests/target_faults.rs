//! A failing target is reported as the target's failure, in people's words, and spends the
//! target's error budget, not the source's.

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use common::world_with;
use engine::control::status::UserStatus;
use engine::target::{FlagUpdate, ImportOutcome, ImportRequest, ItemFlags, Target, TargetError};
use fake_imap::FakeImapServer;
use fake_target::Settings;
use harness::TenantTarget;

fn terry(n: usize) -> FakeImapServer {
    FakeImapServer::new()
        .seed(9)
        .user("terry", "pw")
        .generated("terry", "INBOX", n)
}

const CSV: &str = "EmailAddress,UserName,Password\nterry@contoso.edu,terry,pw\n";

#[tokio::test]
async fn a_tenant_that_refuses_every_import_fails_the_user_naming_the_target() {
    let w = world_with(terry(5), &["terry"], Settings::default(), true).await;
    w.batch(CSV).await;
    // The batch was validated; then the tenant's token is revoked: every import is refused
    // for good (HTTP 401).
    let url = w._http.as_ref().unwrap().url();
    let revoked = Arc::new(TenantTarget::new(fake_target::http::HttpTenant::new(
        &url, "revoked",
    )));
    w.run_with(revoked).await;
    let u = w.engine.user("terry@contoso.edu").unwrap();
    assert_eq!(u.status, UserStatus::Failed);
    let e = u.error.unwrap();
    assert!(e.starts_with("The target failed: "), "{e}");
    assert!(e.contains("bearer token"), "{e}");
    assert!(!e.contains("source"), "{e}");
    assert_eq!(
        w.source.stats().total(),
        1,
        "a permanent target failure is not retried by reconnecting to the source"
    );
    assert_eq!(u.items_synced, 0);
}

/// Imports fail with a passing fault, forever; everything else works.
struct Flaky(TenantTarget);

#[async_trait]
impl Target for Flaky {
    async fn check_recipient(&self, address: &str) -> Result<Option<String>, TargetError> {
        self.0.check_recipient(address).await
    }
    async fn ensure_folder(&self, address: &str, path: &str) -> Result<String, TargetError> {
        self.0.ensure_folder(address, path).await
    }
    async fn import(
        &self,
        _address: &str,
        _request: &ImportRequest,
        _mime: Bytes,
    ) -> Result<ImportOutcome, TargetError> {
        Err(TargetError::Transient(
            "the connection to the tenant was reset".into(),
        ))
    }
    async fn update_flags(
        &self,
        address: &str,
        folder: &str,
        key: &str,
        flags: &ItemFlags,
    ) -> Result<FlagUpdate, TargetError> {
        self.0.update_flags(address, folder, key, flags).await
    }
}

#[tokio::test]
async fn a_target_that_keeps_failing_spends_its_own_budget() {
    let mut w = world_with(terry(3), &["terry"], Settings::default(), false).await;
    w.options.error_budget = 2;
    w.batch(CSV).await;
    w.run_with(Arc::new(Flaky((*w.target()).clone()))).await;
    let u = w.engine.user("terry@contoso.edu").unwrap();
    assert_eq!(u.status, UserStatus::Failed);
    assert_eq!(
        u.error.as_deref(),
        Some(
            "The target kept failing (3 errors); the last: the connection to the tenant was reset"
        )
    );
}

/// A batch created against a tenant that does not answer: the users stay Validating with the
/// reason as their error, and a run that would go idle with them fails instead of reporting
/// success; once the tenant answers, they are validated and synced.
#[tokio::test]
async fn a_target_that_does_not_answer_the_recipient_check_is_an_error_not_an_idle_success() {
    let w = world_with(terry(3), &["terry"], Settings::default(), true).await;
    // A port where nothing listens, by binding and letting go.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let unreachable: Arc<dyn Target> = Arc::new(TenantTarget::new(
        fake_target::http::HttpTenant::new(&dead, "token"),
    ));
    w.engine
        .batch_new(
            engine::control::NewBatch {
                name: "B".into(),
                source_endpoint: "src".into(),
                autostart: true,
                settings: Default::default(),
            },
            std::path::Path::new("users.csv"),
            CSV.as_bytes(),
            &*unreachable,
        )
        .await
        .unwrap();
    let u = w.engine.user("terry@contoso.edu").unwrap();
    assert_eq!(u.status, UserStatus::Validating);
    let e = u.error.expect("the reason is recorded");
    assert!(e.contains("didn't answer the recipient check"), "{e}");
    let copy =
        engine::pipeline::Copier::new(w.engine.clone(), unreachable.clone(), w.options.clone());
    let err = engine::service::Service::new(w.engine.clone(), Arc::new(copy), unreachable)
        .run(engine::service::RunOptions {
            poll: std::time::Duration::from_millis(5),
            ..Default::default()
        })
        .await
        .expect_err("an idle run with users the target did not answer for is no success");
    let text = err.to_string();
    assert!(text.contains("1 user(s) are still Validating"), "{text}");
    assert!(
        text.contains(&dead[7..]) || text.contains("connect"),
        "{text}"
    );
    // The tenant answers again: validated, synced, the error gone.
    w.run().await;
    let u = w.engine.user("terry@contoso.edu").unwrap();
    assert_eq!(u.status, UserStatus::Synced);
    assert_eq!(u.error, None);
    assert_eq!(u.items_synced, 3);
}
