//! The TOML configuration of a fake tenant (`mailmig fake-target serve --config FILE.toml`, and
//! scenario files). Unknown keys are errors.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::error::Error;
use crate::model::DEFAULT_MAX_MESSAGE_SIZE;
use crate::throttle::ThrottleConfig;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    #[serde(default)]
    pub tenant: TenantSection,
    #[serde(default)]
    pub throttle: ThrottleConfig,
    #[serde(default)]
    pub mailboxes: Vec<MailboxSection>,
    #[serde(default)]
    pub recipients: Vec<RecipientSection>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantSection {
    pub accepted_domains: Vec<String>,
    pub max_message_size: u64,
    /// Bearer token of the HTTP API; generated and printed when absent.
    pub token: Option<String>,
    /// Directory synchronisation on (cutover refuses such tenants).
    pub directory_sync: bool,
    /// Seeds the transient-fault draws.
    pub seed: u64,
    /// Share of imports answered with a transient error before anything is written (HTTP 503).
    pub transient_error_rate: f64,
    /// Share of imports that are written but answered with a transient error, as when the
    /// acknowledgement is lost: a retry must find the item already there.
    pub lost_ack_rate: f64,
    /// Delay added to every call (a slow tenant).
    pub delay_ms: u64,
    /// Keep the tenant in this SQLite file (relative to the config file) instead of in memory.
    pub database: Option<PathBuf>,
}

impl Default for TenantSection {
    fn default() -> Self {
        Self {
            accepted_domains: Vec::new(),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            token: None,
            directory_sync: false,
            seed: 0,
            transient_error_rate: 0.0,
            lost_ack_rate: 0.0,
            delay_ms: 0,
            database: None,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailboxSection {
    pub address: String,
    #[serde(default = "yes")]
    pub licensed: bool,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub quota_bytes: Option<u64>,
    /// When the unlicensed grace period started (RFC 3339); defaults to the tenant's start.
    #[serde(default)]
    pub grace_started: Option<DateTime<Utc>>,
}

fn yes() -> bool {
    true
}

/// Recipients that are not user mailboxes.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipientSection {
    pub address: String,
    /// mailUser | mailContact | distributionGroup | mailEnabledSecurityGroup
    pub kind: String,
    #[serde(default)]
    pub members: Vec<String>,
}

impl TenantConfig {
    pub fn from_file(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let mut config = Self::from_toml(&text).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        if let Some(db) = &config.tenant.database
            && db.is_relative()
        {
            config.tenant.database = Some(path.parent().unwrap_or(Path::new(".")).join(db));
        }
        Ok(config)
    }

    pub fn from_toml(text: &str) -> Result<Self, Error> {
        let config: TenantConfig =
            toml::from_str(text).map_err(|e| Error::Invalid(e.to_string()))?;
        for (field, rate) in [
            (
                "tenant.transient_error_rate",
                config.tenant.transient_error_rate,
            ),
            ("tenant.lost_ack_rate", config.tenant.lost_ack_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(Error::Invalid(format!("{field} must be between 0 and 1")));
            }
        }
        Ok(config)
    }
}
