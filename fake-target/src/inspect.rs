//! Looking at a migrated mailbox: export it as .eml files with a manifest, and reconcile it
//! against the source (missing, duplicated, flag and date mismatches).

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::api::TenantApi;
use crate::error::Error;
use crate::model::ItemFlags;

/// A content fingerprint: SHA-256 of the exact bytes.
pub fn fingerprint(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ManifestEntry {
    pub id: String,
    pub folder: String,
    pub file: String,
    pub source_key: String,
    pub size: u64,
    pub received_time: DateTime<Utc>,
    pub flags: Vec<String>,
    pub sha256: String,
}

/// Writes every item of a mailbox to `dir/<n>.eml` and `dir/manifest.json`.
pub async fn export_mailbox(
    tenant: &dyn TenantApi,
    address: &str,
    dir: &Path,
) -> Result<Vec<ManifestEntry>, Error> {
    std::fs::create_dir_all(dir)?;
    let mut manifest = Vec::new();
    for (n, item) in tenant.items(address, None).await?.into_iter().enumerate() {
        let bytes = tenant.item_bytes(address, &item.id).await?;
        let file = format!("{:06}.eml", n + 1);
        std::fs::write(dir.join(&file), &bytes)?;
        manifest.push(ManifestEntry {
            id: item.id,
            folder: item.folder,
            file,
            source_key: item.source_key,
            size: item.size,
            received_time: item.received_time,
            flags: item.flags,
            sha256: fingerprint(&bytes),
        });
    }
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::Storage(e.to_string()))?;
    std::fs::write(dir.join("manifest.json"), json)?;
    Ok(manifest)
}

/// One message as the source has it, in the target's terms (its target folder).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceMessage {
    /// How a report names it, e.g. `INBOX UID 42`.
    pub label: String,
    pub folder: String,
    pub fingerprint: String,
    pub flags: ItemFlags,
    pub received_time: Option<DateTime<Utc>>,
}

/// One item as the target has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetMessage {
    pub id: String,
    pub folder: String,
    pub fingerprint: String,
    pub flags: ItemFlags,
    pub received_time: DateTime<Utc>,
}

/// What differs between a source mailbox and its target.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reconciliation {
    /// In the source, not in the target (labels).
    pub missing: Vec<String>,
    /// More copies in the target than in the source: (folder, fingerprint, copies in target).
    pub duplicated: Vec<(String, String, usize)>,
    /// In the target, not in the source (ids).
    pub unexpected: Vec<String>,
    /// (label, source flags, target flags)
    pub flag_mismatches: Vec<(String, Vec<String>, Vec<String>)>,
    /// (label, source time, target time)
    pub date_mismatches: Vec<(String, DateTime<Utc>, DateTime<Utc>)>,
}

impl Reconciliation {
    pub fn is_exact(&self) -> bool {
        self.missing.is_empty()
            && self.duplicated.is_empty()
            && self.unexpected.is_empty()
            && self.flag_mismatches.is_empty()
            && self.date_mismatches.is_empty()
    }
}

/// Matches messages by (folder, content); copies are counted, so a duplicate is caught even
/// when the source itself has two identical messages.
pub fn reconcile(source: &[SourceMessage], target: &[TargetMessage]) -> Reconciliation {
    let key = |folder: &str, fp: &str| (folder.to_ascii_lowercase(), fp.to_string());
    type Copies<'a> = (Vec<&'a SourceMessage>, Vec<&'a TargetMessage>);
    let mut by_key: BTreeMap<(String, String), Copies<'_>> = BTreeMap::new();
    for s in source {
        by_key
            .entry(key(&s.folder, &s.fingerprint))
            .or_default()
            .0
            .push(s);
    }
    for t in target {
        by_key
            .entry(key(&t.folder, &t.fingerprint))
            .or_default()
            .1
            .push(t);
    }
    let mut out = Reconciliation::default();
    for ((folder, fp), (s, t)) in by_key {
        if t.len() > s.len() && !s.is_empty() {
            out.duplicated.push((folder.clone(), fp.clone(), t.len()));
        }
        if s.is_empty() {
            out.unexpected.extend(t.iter().map(|t| t.id.clone()));
        }
        for (i, src) in s.iter().enumerate() {
            let Some(tgt) = t.get(i) else {
                out.missing.push(src.label.clone());
                continue;
            };
            if src.flags != tgt.flags {
                out.flag_mismatches.push((
                    src.label.clone(),
                    src.flags.to_imap(),
                    tgt.flags.to_imap(),
                ));
            }
            if let Some(when) = src.received_time
                && when != tgt.received_time
            {
                out.date_mismatches
                    .push((src.label.clone(), when, tgt.received_time));
            }
        }
    }
    out
}

/// A mailbox's items as reconciliation input.
pub async fn target_messages(
    tenant: &dyn TenantApi,
    address: &str,
) -> Result<Vec<TargetMessage>, Error> {
    let mut out = Vec::new();
    for item in tenant.items(address, None).await? {
        let bytes = tenant.item_bytes(address, &item.id).await?;
        out.push(TargetMessage {
            fingerprint: fingerprint(&bytes),
            flags: ItemFlags::from_imap(&item.flags),
            id: item.id,
            folder: item.folder,
            received_time: item.received_time,
        });
    }
    Ok(out)
}
