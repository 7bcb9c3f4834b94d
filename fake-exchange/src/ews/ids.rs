//! Opaque identifiers, as EWS hands them out: folder and item ids name their mailbox (so an id
//! of another mailbox is checked against the caller's rights), change keys carry the change
//! counter, sync states the folder and the counter a client has seen. All base64; a client must
//! not look inside, and a damaged one is ErrorInvalidIdMalformed / ErrorInvalidSyncStateData.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FolderRef {
    pub mailbox: String,
    pub folder: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemRef {
    pub mailbox: String,
    pub item: u64,
}

fn decode(id: &str, tag: &str) -> Option<Vec<String>> {
    let bytes = STANDARD.decode(id.trim()).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let mut parts = text.split('\u{1}');
    if parts.next()? != tag {
        return None;
    }
    Some(parts.map(str::to_string).collect())
}

fn encode(parts: &[&str]) -> String {
    STANDARD.encode(parts.join("\u{1}"))
}

impl FolderRef {
    pub fn encode(&self) -> String {
        encode(&["AAMkF", &self.mailbox, &self.folder.to_string()])
    }

    pub fn decode(id: &str) -> Option<Self> {
        let p = decode(id, "AAMkF")?;
        match p.as_slice() {
            [mailbox, folder] => Some(Self {
                mailbox: mailbox.clone(),
                folder: folder.parse().ok()?,
            }),
            _ => None,
        }
    }
}

impl ItemRef {
    pub fn encode(&self) -> String {
        encode(&["AAMkI", &self.mailbox, &self.item.to_string()])
    }

    pub fn decode(id: &str) -> Option<Self> {
        let p = decode(id, "AAMkI")?;
        match p.as_slice() {
            [mailbox, item] => Some(Self {
                mailbox: mailbox.clone(),
                item: item.parse().ok()?,
            }),
            _ => None,
        }
    }
}

pub fn change_key(seq: u64) -> String {
    encode(&["CQAAA", &seq.to_string()])
}

/// A sync state: which mailbox and folder (or the hierarchy) and the counter seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncState {
    pub scope: String,
    pub seq: u64,
}

impl SyncState {
    pub fn encode(&self) -> String {
        encode(&["H4sIS", &self.scope, &self.seq.to_string()])
    }

    pub fn decode(text: &str) -> Option<Self> {
        let p = decode(text, "H4sIS")?;
        match p.as_slice() {
            [scope, seq] => Some(Self {
                scope: scope.clone(),
                seq: seq.parse().ok()?,
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_reject_each_other() {
        let f = FolderRef {
            mailbox: "alice@contoso.com".into(),
            folder: 3,
        };
        let i = ItemRef {
            mailbox: "alice@contoso.com".into(),
            item: 42,
        };
        assert_eq!(FolderRef::decode(&f.encode()), Some(f.clone()));
        assert_eq!(ItemRef::decode(&i.encode()), Some(i.clone()));
        assert_eq!(ItemRef::decode(&f.encode()), None);
        assert_eq!(FolderRef::decode("DUMMY"), None);
        assert_eq!(SyncState::decode("not a state"), None);
        let s = SyncState {
            scope: "alice@contoso.com/3".into(),
            seq: 9,
        };
        assert_eq!(SyncState::decode(&s.encode()), Some(s));
    }
}
