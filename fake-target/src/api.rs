//! The one interface to a tenant, whichever face it has (in-process or HTTP).

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::Error;
use crate::model::{
    DirectoryEntry, DirectoryLinks, DirectoryObject, FlagUpdate, FolderInfo, ImportOutcome,
    ImportRequest, ItemFlags, ItemInfo, OrganizationInfo, ProvisionOutcome, RecipientInfo,
};
use crate::tenant::Tenant;

#[async_trait]
pub trait TenantApi: Send + Sync {
    async fn users(&self) -> Result<Vec<RecipientInfo>, Error>;
    async fn create_folder(&self, address: &str, path: &str) -> Result<String, Error>;
    async fn folders(&self, address: &str) -> Result<Vec<FolderInfo>, Error>;
    async fn import(
        &self,
        address: &str,
        request: &ImportRequest,
        mime: Bytes,
    ) -> Result<ImportOutcome, Error>;
    /// Imports in order as one call; one answer per message. The default imports one at a
    /// time; after a failure of a call itself the rest are not tried and carry that failure
    /// (what was acknowledged before it stays so).
    async fn import_many(
        &self,
        address: &str,
        batch: &[(ImportRequest, Bytes)],
    ) -> Vec<Result<ImportOutcome, Error>> {
        let mut out = Vec::with_capacity(batch.len());
        for (request, mime) in batch {
            match self.import(address, request, mime.clone()).await {
                Ok(o) => out.push(Ok(o)),
                Err(e) => {
                    let message = e.to_string();
                    let transient = e.is_transient();
                    out.push(Err(e));
                    while out.len() < batch.len() {
                        out.push(Err(Error::NotTried {
                            message: message.clone(),
                            transient,
                        }));
                    }
                    break;
                }
            }
        }
        out
    }
    async fn update_flags(
        &self,
        address: &str,
        source_key: &str,
        flags: &ItemFlags,
    ) -> Result<FlagUpdate, Error>;
    async fn items(&self, address: &str, folder: Option<&str>) -> Result<Vec<ItemInfo>, Error>;
    async fn item_bytes(&self, address: &str, id: &str) -> Result<Bytes, Error>;

    // The directory (cutover's provisioning; see directory.rs).
    async fn organization(&self) -> Result<OrganizationInfo, Error>;
    async fn provision(&self, object: &DirectoryObject) -> Result<ProvisionOutcome, Error>;
    async fn set_links(&self, address: &str, links: &DirectoryLinks) -> Result<(), Error>;
    async fn add_members(&self, group: &str, members: &[String]) -> Result<(), Error>;
    async fn directory_entry(&self, address: &str) -> Result<Option<DirectoryEntry>, Error>;
}

#[async_trait]
impl TenantApi for Tenant {
    async fn users(&self) -> Result<Vec<RecipientInfo>, Error> {
        Ok(self.recipients())
    }
    async fn create_folder(&self, address: &str, path: &str) -> Result<String, Error> {
        Tenant::create_folder(self, address, path)
    }
    async fn folders(&self, address: &str) -> Result<Vec<FolderInfo>, Error> {
        Tenant::folders(self, address)
    }
    async fn import(
        &self,
        address: &str,
        request: &ImportRequest,
        mime: Bytes,
    ) -> Result<ImportOutcome, Error> {
        Tenant::import(self, address, request, mime).await
    }
    async fn import_many(
        &self,
        address: &str,
        batch: &[(ImportRequest, Bytes)],
    ) -> Vec<Result<ImportOutcome, Error>> {
        Tenant::import_many(self, address, batch)
            .await
            .into_iter()
            .map(Ok)
            .collect()
    }
    async fn update_flags(
        &self,
        address: &str,
        source_key: &str,
        flags: &ItemFlags,
    ) -> Result<FlagUpdate, Error> {
        Tenant::update_flags(self, address, source_key, flags)
    }
    async fn items(&self, address: &str, folder: Option<&str>) -> Result<Vec<ItemInfo>, Error> {
        Tenant::items(self, address, folder)
    }
    async fn item_bytes(&self, address: &str, id: &str) -> Result<Bytes, Error> {
        Tenant::item_bytes(self, address, id)
    }
    async fn organization(&self) -> Result<OrganizationInfo, Error> {
        Ok(Tenant::organization(self))
    }
    async fn provision(&self, object: &DirectoryObject) -> Result<ProvisionOutcome, Error> {
        Tenant::provision(self, object)
    }
    async fn set_links(&self, address: &str, links: &DirectoryLinks) -> Result<(), Error> {
        Tenant::set_links(self, address, links)
    }
    async fn add_members(&self, group: &str, members: &[String]) -> Result<(), Error> {
        Tenant::add_members(self, group, members)
    }
    async fn directory_entry(&self, address: &str) -> Result<Option<DirectoryEntry>, Error> {
        Ok(Tenant::directory_entry(self, address))
    }
}
