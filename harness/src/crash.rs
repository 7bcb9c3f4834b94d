//! A target that "dies" right after its n-th write: the write reaches the tenant, its answer
//! never reaches the engine, and no later write gets through. Dropping the run when
//! [`CrashSwitch::crashed`] fires is then a kill -9 at exactly that point, which a timer-based
//! kill of an in-process run only hits by luck (an in-process tenant answers in microseconds).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use engine::target::{RecipientCheck, Target, TargetError};
use mailmig_model::{
    DirectoryEntry, DirectoryLinks, DirectoryObject, DirectoryRefusal, FlagUpdate, ImportOutcome,
    ImportRequest, ItemFlags, OrganizationInfo, ProvisionOutcome,
};
use tokio::sync::Notify;

/// Counts writes down to the crash.
pub struct CrashSwitch {
    left: AtomicUsize,
    notify: Notify,
}

impl CrashSwitch {
    /// Crashes after `writes` writes have been applied (0: before the first).
    pub fn after(writes: usize) -> Arc<Self> {
        Arc::new(Self {
            left: AtomicUsize::new(writes),
            notify: Notify::new(),
        })
    }

    /// Resolves once the crash has happened.
    pub async fn crashed(&self) {
        let notified = self.notify.notified();
        if self.is_crashed() {
            return;
        }
        notified.await;
    }

    pub fn is_crashed(&self) -> bool {
        self.left.load(Ordering::SeqCst) == 0
    }

    /// Before a write: a dead process writes nothing.
    async fn before(&self) {
        if self.is_crashed() {
            self.notify.notify_waiters();
            std::future::pending::<()>().await;
        }
    }

    /// After a write was applied: the n-th one's answer is lost with the process.
    async fn after_write(&self) {
        let was = self
            .left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .unwrap_or(0);
        if was <= 1 {
            self.notify.notify_waiters();
            std::future::pending::<()>().await;
        }
    }
}

/// `inner` with a [`CrashSwitch`] on its writes (reads pass through until the crash).
pub struct Crashing {
    pub inner: Arc<dyn Target>,
    pub switch: Arc<CrashSwitch>,
}

impl Crashing {
    async fn write<T>(&self, f: impl Future<Output = T>) -> T {
        self.switch.before().await;
        let r = f.await;
        self.switch.after_write().await;
        r
    }

    async fn read<T>(&self, f: impl Future<Output = T>) -> T {
        self.switch.before().await;
        f.await
    }
}

#[async_trait]
impl Target for Crashing {
    async fn check_recipient(&self, address: &str) -> Result<Option<String>, TargetError> {
        self.read(self.inner.check_recipient(address)).await
    }

    async fn check_recipients(&self, addresses: &[String]) -> Vec<RecipientCheck> {
        self.read(self.inner.check_recipients(addresses)).await
    }

    async fn ensure_folder(&self, address: &str, path: &str) -> Result<String, TargetError> {
        self.write(self.inner.ensure_folder(address, path)).await
    }

    async fn import(
        &self,
        address: &str,
        request: &ImportRequest,
        mime: Bytes,
    ) -> Result<ImportOutcome, TargetError> {
        self.write(self.inner.import(address, request, mime)).await
    }

    async fn source_keys(&self, address: &str) -> Result<Option<HashSet<String>>, TargetError> {
        self.read(self.inner.source_keys(address)).await
    }

    async fn organization(&self) -> Result<Option<OrganizationInfo>, TargetError> {
        self.read(self.inner.organization()).await
    }

    async fn provision(
        &self,
        object: &DirectoryObject,
    ) -> Result<Result<ProvisionOutcome, DirectoryRefusal>, TargetError> {
        self.write(self.inner.provision(object)).await
    }

    async fn set_links(
        &self,
        address: &str,
        links: &DirectoryLinks,
    ) -> Result<Result<(), DirectoryRefusal>, TargetError> {
        self.write(self.inner.set_links(address, links)).await
    }

    async fn directory_entry(&self, address: &str) -> Result<Option<DirectoryEntry>, TargetError> {
        self.read(self.inner.directory_entry(address)).await
    }

    async fn add_members(
        &self,
        group: &str,
        members: &[String],
    ) -> Result<Result<(), DirectoryRefusal>, TargetError> {
        self.write(self.inner.add_members(group, members)).await
    }

    async fn sync_ended(&self, address: &str) {
        self.inner.sync_ended(address).await
    }

    async fn update_flags(
        &self,
        address: &str,
        target_folder: &str,
        source_key: &str,
        flags: &ItemFlags,
    ) -> Result<FlagUpdate, TargetError> {
        self.write(
            self.inner
                .update_flags(address, target_folder, source_key, flags),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_nth_write_is_applied_and_never_answered() {
        let tenant = fake_target::Tenant::new(fake_target::Settings {
            accepted_domains: vec!["contoso.com".into()],
            ..fake_target::Settings::default()
        });
        tenant
            .add_recipient(fake_target::Recipient::mailbox(
                "a@contoso.com",
                true,
                tenant.now(),
            ))
            .unwrap();
        let switch = CrashSwitch::after(2);
        let target = Crashing {
            inner: Arc::new(crate::TenantTarget::new(tenant.clone())),
            switch: switch.clone(),
        };
        let first = target.ensure_folder("a@contoso.com", "One").await;
        assert!(first.is_ok());
        assert!(!switch.is_crashed());
        let second = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            target.ensure_folder("a@contoso.com", "Two"),
        )
        .await;
        assert!(second.is_err(), "the second write is never answered");
        assert!(switch.is_crashed());
        switch.crashed().await;
        let folders: Vec<String> = tenant
            .folders("a@contoso.com")
            .unwrap()
            .into_iter()
            .map(|f| f.path)
            .collect();
        assert!(folders.iter().any(|f| f == "Two"), "but it was applied");
        let third = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            target.ensure_folder("a@contoso.com", "Three"),
        )
        .await;
        assert!(third.is_err());
        assert!(
            !tenant
                .folders("a@contoso.com")
                .unwrap()
                .iter()
                .any(|f| f.path == "Three"),
            "nothing after the crash"
        );
    }
}
