//! Scripted misbehaviour, declared in `[faults]`: Autodiscover errors and redirections, an
//! unreachable directory, throttling, conversions that fail, mailboxes being moved, a store that
//! is down, connections closed mid-response. Deterministic: counters, not clocks.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Deserialize;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultsConfig {
    /// Applied in order; the first that matches a request decides it.
    pub autodiscover: Vec<AutodiscoverFault>,
    pub ldap: LdapFaults,
    pub ews: EwsFaults,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutodiscoverFault {
    /// Only requests sent to this host name (`contoso.com`, `autodiscover.contoso.com`).
    #[serde(default)]
    pub host: Option<String>,
    /// Only requests for this address.
    #[serde(default)]
    pub address: Option<String>,
    pub action: AutodiscoverAction,
    /// The error code for `error` (500, 501, 600, 601, 602, 603).
    #[serde(default)]
    pub code: Option<u32>,
    /// The address or URL for `redirect-addr` and `redirect-url`.
    #[serde(default)]
    pub to: Option<String>,
    /// The length of a `redirect-chain` (an 11-hop chain breaks the 10-redirection limit).
    #[serde(default)]
    pub hops: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AutodiscoverAction {
    /// HTTP 401 whatever the credentials (a client tries the next URL).
    Unauthorized,
    /// HTTP 404: this URL is not an Autodiscover endpoint.
    NotFound,
    /// An Autodiscover `<Error>` with `code`.
    Error,
    /// `redirectAddr` to `to`.
    RedirectAddr,
    /// `redirectUrl` to `to`.
    RedirectUrl,
    /// `redirectAddr` back to the address asked (a loop).
    RedirectLoop,
    /// `redirectAddr` to `hop1.<local>@domain`, which redirects to hop2..., `hops` times.
    RedirectChain,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LdapFaults {
    /// No LDAP listener: connections to the directory are refused.
    pub unreachable: bool,
    /// Binds succeed but every search answers `busy` (51).
    pub busy: bool,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EwsFaults {
    /// The first N EWS requests are answered ErrorServerBusy.
    pub busy_first: u64,
    /// Every Nth EWS request (after `busy_first`) is answered ErrorServerBusy.
    pub busy_every: u64,
    /// The BackOffMilliseconds of ErrorServerBusy.
    pub back_off_ms: u64,
    /// Every Nth EWS request is answered HTTP 503.
    pub http_503_every: u64,
    /// Every EWS request takes this long (a slow server; requests pile up against the
    /// concurrent-connection limit).
    pub delay_ms: u64,
    /// Every Nth EWS request has its response cut off halfway and the connection closed.
    pub close_mid_response_every: u64,
    /// Mailboxes being moved (ErrorMailboxMoveInProgress).
    pub moving: Vec<String>,
    /// The mailbox store is down (ErrorMailboxStoreUnavailable).
    pub store_unavailable: bool,
    /// Items whose GetItem fails: `mailbox`, `folder` path, the item's position in the folder
    /// (0 = oldest), and the code (ErrorItemCorrupt or ErrorContentConversionFailed).
    pub broken_items: Vec<BrokenItem>,
}

impl Default for EwsFaults {
    fn default() -> Self {
        Self {
            busy_first: 0,
            busy_every: 0,
            back_off_ms: 200,
            http_503_every: 0,
            delay_ms: 0,
            close_mid_response_every: 0,
            moving: Vec::new(),
            store_unavailable: false,
            broken_items: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokenItem {
    pub mailbox: String,
    pub folder: String,
    pub index: usize,
    pub code: BrokenCode,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum BrokenCode {
    ErrorItemCorrupt,
    ErrorContentConversionFailed,
}

impl BrokenCode {
    pub fn as_str(self) -> &'static str {
        match self {
            BrokenCode::ErrorItemCorrupt => "ErrorItemCorrupt",
            BrokenCode::ErrorContentConversionFailed => "ErrorContentConversionFailed",
        }
    }
}

/// What the EWS fault counters decide for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EwsDecision {
    Serve,
    Busy,
    Http503,
    CloseMidResponse,
}

/// The counters behind the every-Nth faults.
#[derive(Debug, Default)]
pub struct EwsCounters {
    requests: AtomicU64,
    /// Item changes (Create, Update, ReadFlagChange, Delete) SyncFolderItems answered.
    item_changes: AtomicU64,
}

impl EwsCounters {
    pub fn decide(&self, f: &EwsFaults) -> EwsDecision {
        let n = self.requests.fetch_add(1, Ordering::SeqCst) + 1;
        if n <= f.busy_first {
            return EwsDecision::Busy;
        }
        let every = |k: u64| k > 0 && n.is_multiple_of(k);
        if every(f.busy_every) {
            EwsDecision::Busy
        } else if every(f.http_503_every) {
            EwsDecision::Http503
        } else if every(f.close_mid_response_every) {
            EwsDecision::CloseMidResponse
        } else {
            EwsDecision::Serve
        }
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    pub fn count_item_changes(&self, n: usize) {
        self.item_changes.fetch_add(n as u64, Ordering::SeqCst);
    }

    pub fn item_changes(&self) -> u64 {
        self.item_changes.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_decide_first_and_every_nth() {
        let f = EwsFaults {
            busy_first: 2,
            http_503_every: 5,
            close_mid_response_every: 7,
            ..Default::default()
        };
        let c = EwsCounters::default();
        let got: Vec<_> = (0..10).map(|_| c.decide(&f)).collect();
        use EwsDecision::*;
        assert_eq!(
            got,
            [
                Busy,
                Busy,
                Serve,
                Serve,
                Http503,
                Serve,
                CloseMidResponse,
                Serve,
                Serve,
                Http503
            ]
        );
    }
}
