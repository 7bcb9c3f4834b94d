//! Durable state: endpoints, the target, batches and users, and the copy's checkpoint
//! ([`checkpoint`]), in SQLite in the state directory. Every change is one transaction; the
//! file is readable by its owner only (it holds passwords). The schema is versioned, and older
//! state files are migrated when opened. No SQL lives outside this module.

pub mod checkpoint;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};

use crate::control::endpoint::{Endpoint, EndpointType};
use crate::control::status::{BatchStatus, UserStatus};
use crate::error::Error;
use crate::sync::SyncKind;
use mailmig_model::DirectoryKind;

/// 2: endpoints carry their type (`kind` column, `endpointType` in the JSON).
/// 3: indexes for scheduling by status, due time and running flag (v2 files gain them).
/// 4: the due index without running users, the copied totals' covering index.
/// 5: users carry the recipient kind of a cutover (`kind`; NULL for an IMAP row).
/// 6: users carry what the source holds (`source_items`, `source_bytes`).
/// 7: each copy carries the target's id of it (`copied.target_id`; NULL before).
/// 8: folders as their last complete copies saw them (`folders_seen`).
pub const SCHEMA_VERSION: i64 = 8;
pub const DB_FILE: &str = "mailmig.sqlite";

/// Settings of a batch (New-/Set-MigrationBatch parameters).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchSettings {
    #[serde(default)]
    pub exclude_folders: Vec<String>,
    #[serde(default)]
    pub include_folders: Vec<String>,
    #[serde(default)]
    pub start_after: Option<DateTime<Utc>>,
    #[serde(default)]
    pub complete_after: Option<DateTime<Utc>>,
    #[serde(default)]
    pub allow_unknown_columns: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchRow {
    pub name: String,
    pub endpoint: String,
    pub status: BatchStatus,
    pub settings: BatchSettings,
    pub created_at: DateTime<Utc>,
    /// The last Start/Stop/Complete/Set by an admin (for the 60-day rule).
    pub last_admin_action_at: DateTime<Utc>,
    pub status_since: DateTime<Utc>,
}

#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserRow {
    pub email_address: String,
    pub batch: String,
    pub line: u64,
    pub user_name: String,
    #[serde(skip)]
    pub password: String,
    pub user_root: Option<String>,
    pub status: UserStatus,
    pub error: Option<String>,
    pub items_synced: u64,
    pub items_skipped: u64,
    pub bytes_synced: u64,
    pub last_successful_sync_time: Option<DateTime<Utc>>,
    pub queued_at: Option<DateTime<Utc>>,
    pub sync_started_at: Option<DateTime<Utc>>,
    /// A sync task of this user is in flight (set when claimed, cleared when it ends).
    pub running: Option<SyncKind>,
    /// SyncNow asked for an incremental sync now.
    pub sync_now: bool,
    /// What the last sync moved, and how long it took.
    pub last_sync_items: u64,
    pub last_sync_bytes: u64,
    pub last_sync_ms: u64,
    /// The last sync's closing reconciliation: in source, not in target.
    pub missing_in_target: Option<u64>,
    /// A cutover recipient's kind (None for a CSV row of an IMAP batch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<DirectoryKind>,
    /// What the last sync's plan found to copy at the source (after the item cap and the size
    /// limit): Get-MigrationUserStatistics' TotalItemsInSourceMailboxCount, and its bytes.
    pub source_items: Option<u64>,
    pub source_bytes: Option<u64>,
}

impl UserRow {
    /// A new user of `batch`, Validating, with nothing copied yet.
    pub fn new(email: &str, batch: &str, line: u64) -> Self {
        Self {
            email_address: email.to_string(),
            batch: batch.to_string(),
            line,
            user_name: String::new(),
            password: String::new(),
            user_root: None,
            status: UserStatus::Validating,
            error: None,
            items_synced: 0,
            items_skipped: 0,
            bytes_synced: 0,
            last_successful_sync_time: None,
            queued_at: None,
            sync_started_at: None,
            running: None,
            sync_now: false,
            last_sync_items: 0,
            last_sync_bytes: 0,
            last_sync_ms: 0,
            missing_in_target: None,
            kind: None,
            source_items: None,
            source_bytes: None,
        }
    }
}

impl std::fmt::Debug for UserRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRow")
            .field("email_address", &self.email_address)
            .field("batch", &self.batch)
            .field("status", &self.status)
            .field("password", &"<hidden>")
            .field("error", &self.error)
            .field("running", &self.running)
            .finish_non_exhaustive()
    }
}

/// Version 1 stored IMAP endpoints only, without a type: they become `IMAP` endpoints.
fn migrate_from_v1(conn: &mut Connection) -> Result<(), Error> {
    let tx = conn.transaction()?;
    let has_kind = tx
        .prepare("SELECT 1 FROM pragma_table_info('endpoints') WHERE name = 'kind'")?
        .exists([])?;
    if !has_kind {
        tx.execute_batch("ALTER TABLE endpoints ADD COLUMN kind TEXT NOT NULL DEFAULT 'IMAP'")?;
    }
    let rows: Vec<(String, String)> = {
        let mut stmt = tx.prepare("SELECT name, json FROM endpoints")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    for (name, json) in rows {
        let mut value: serde_json::Value = serde_json::from_str(&json)
            .map_err(|e| Error::State(format!("endpoint {name}: {e}")))?;
        let Some(object) = value.as_object_mut() else {
            return Err(Error::State(format!("endpoint {name}: not a JSON object")));
        };
        object
            .entry("endpointType")
            .or_insert_with(|| EndpointType::Imap.as_str().into());
        let endpoint: Endpoint = serde_json::from_value(value)
            .map_err(|e| Error::State(format!("endpoint {name}: {e}")))?;
        tx.execute(
            "UPDATE endpoints SET kind = ?2, json = ?3 WHERE name = ?1",
            params![
                name,
                endpoint.endpoint_type().as_str(),
                serde_json::to_string(&endpoint).map_err(|e| Error::State(e.to_string()))?
            ],
        )?;
    }
    tx.execute(
        "UPDATE meta SET value = ?1 WHERE key = 'schema'",
        params![SCHEMA_VERSION.to_string()],
    )?;
    tx.commit()?;
    Ok(())
}

pub struct StateDb {
    conn: Mutex<Connection>,
    path: PathBuf,
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339()
}

/// A value the state database holds that this mailmig cannot read: the row is refused, never
/// replaced by a default.
#[derive(Debug)]
struct Unreadable(String);

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unreadable {}

fn unreadable(column: usize, what: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        column,
        rusqlite::types::Type::Text,
        Box::new(Unreadable(what)),
    )
}

/// An optional timestamp column: NULL is None, anything else must be RFC 3339.
fn opt_ts(r: &Row<'_>, column: usize, row: &str) -> rusqlite::Result<Option<DateTime<Utc>>> {
    let Some(s) = r.get::<_, Option<String>>(column)? else {
        return Ok(None);
    };
    DateTime::parse_from_rfc3339(&s)
        .map(|d| Some(d.to_utc()))
        .map_err(|e| {
            unreadable(
                column,
                format!("{row}: the time {s:?} is not RFC 3339 ({e})"),
            )
        })
}

fn req_ts(r: &Row<'_>, column: usize, row: &str) -> rusqlite::Result<DateTime<Utc>> {
    opt_ts(r, column, row)?.ok_or_else(|| unreadable(column, format!("{row}: a time is missing")))
}

/// Makes a file or folder private to its owner.
#[cfg(unix)]
fn private(path: &Path, mode: u32) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    if path.exists() {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

impl StateDb {
    /// Opens the state database in `dir`, creating it (and `dir`) when there is none yet: what
    /// the commands that set something up do.
    pub fn open(dir: &Path) -> Result<Self, Error> {
        std::fs::create_dir_all(dir).map_err(|e| Error::File {
            path: dir.to_path_buf(),
            message: format!("cannot create the state directory: {e}"),
        })?;
        private(dir, 0o700)?;
        let path = dir.join(DB_FILE);
        Self::open_file(dir, path)
    }

    /// Opens the state database that `dir` holds; refuses a directory without one, so a
    /// mistyped state directory is an error, not an empty migration.
    pub fn open_existing(dir: &Path) -> Result<Self, Error> {
        let path = dir.join(DB_FILE);
        if !path.exists() {
            return Err(Error::File {
                path: dir.to_path_buf(),
                message: "no mailmig state here: nothing has been set up in this state \
                          directory (check --state-dir or MAILMIG_STATE_DIR)"
                    .into(),
            });
        }
        Self::open_file(dir, path)
    }

    fn open_file(dir: &Path, path: PathBuf) -> Result<Self, Error> {
        let refuse = |message: String| Error::File {
            path: path.clone(),
            message,
        };
        if std::fs::metadata(&path).is_ok_and(|m| m.len() == 0) {
            // SQLite would take an empty file for a new database: every batch would be gone.
            return Err(refuse(
                "the state database is empty (0 bytes): it was truncated or replaced. Restore \
                 it from a backup; to start a new state, remove it first"
                    .into(),
            ));
        }
        Self::init(dir, &path).map_err(|e| match e {
            Error::State(m) if m.contains("not a database") => refuse(format!(
                "this is not a mailmig state database ({m}); restore it from a backup"
            )),
            other => other,
        })
    }

    fn init(dir: &Path, path: &Path) -> Result<Self, Error> {
        let path = path.to_path_buf();
        if !path.exists() {
            // Create it private before SQLite writes a single password into it.
            let mut open = std::fs::OpenOptions::new();
            open.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
            open.open(&path)?;
        }
        let mut conn = Connection::open(&path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // Every hot statement stays compiled (rusqlite keeps 16 by default).
        conn.set_prepared_statement_cache_capacity(128);
        // 32 MiB of page cache (SQLite's default is 2 MiB): a 50,000-user batch's users,
        // indexes and checkpoint stay in memory instead of being read back page by page on
        // every sync.
        conn.pragma_update(None, "cache_size", -32768)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS endpoints (name TEXT PRIMARY KEY COLLATE NOCASE,
                 kind TEXT NOT NULL DEFAULT 'IMAP', json TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS batches (
                 name TEXT PRIMARY KEY COLLATE NOCASE, endpoint TEXT NOT NULL, status TEXT NOT NULL,
                 settings TEXT NOT NULL, created_at TEXT NOT NULL,
                 last_admin_action_at TEXT NOT NULL, status_since TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS users (
                 email TEXT PRIMARY KEY COLLATE NOCASE, batch TEXT NOT NULL COLLATE NOCASE,
                 line INTEGER NOT NULL, user_name TEXT NOT NULL, password TEXT NOT NULL,
                 user_root TEXT, status TEXT NOT NULL, error TEXT,
                 items_synced INTEGER NOT NULL DEFAULT 0, items_skipped INTEGER NOT NULL DEFAULT 0,
                 bytes_synced INTEGER NOT NULL DEFAULT 0, last_successful_sync TEXT,
                 queued_at TEXT, sync_started_at TEXT, running TEXT,
                 sync_now INTEGER NOT NULL DEFAULT 0,
                 last_sync_items INTEGER NOT NULL DEFAULT 0,
                 last_sync_bytes INTEGER NOT NULL DEFAULT 0,
                 last_sync_ms INTEGER NOT NULL DEFAULT 0,
                 missing_in_target INTEGER, kind TEXT,
                 source_items INTEGER, source_bytes INTEGER);
             CREATE INDEX IF NOT EXISTS users_by_batch ON users (batch);
             CREATE INDEX IF NOT EXISTS users_by_status ON users (status);
             CREATE INDEX IF NOT EXISTS users_queued ON users (batch, status, queued_at, line);
             CREATE INDEX IF NOT EXISTS users_idle_due ON users (batch, status, last_successful_sync, line)
                 WHERE running IS NULL AND sync_now = 0;
             CREATE INDEX IF NOT EXISTS users_running ON users (batch, running);
             CREATE INDEX IF NOT EXISTS users_sync_now ON users (batch) WHERE sync_now = 1;
             CREATE TABLE IF NOT EXISTS source_ids (
                 email TEXT NOT NULL COLLATE NOCASE, folder TEXT NOT NULL, item_id TEXT NOT NULL,
                 uid INTEGER NOT NULL, PRIMARY KEY (email, folder, item_id));
             CREATE UNIQUE INDEX IF NOT EXISTS source_ids_by_uid ON source_ids (email, folder, uid);
             CREATE TABLE IF NOT EXISTS skipped_items (
                 email TEXT NOT NULL COLLATE NOCASE, folder TEXT NOT NULL, item TEXT NOT NULL,
                 reason TEXT NOT NULL, detail TEXT NOT NULL, at TEXT NOT NULL,
                 PRIMARY KEY (email, folder, item));
             CREATE TABLE IF NOT EXISTS copied (
                 email TEXT NOT NULL COLLATE NOCASE, folder TEXT NOT NULL,
                 uidvalidity INTEGER NOT NULL, uid INTEGER NOT NULL, flags TEXT NOT NULL,
                 fingerprint TEXT NOT NULL, target_folder TEXT NOT NULL,
                 source_key TEXT NOT NULL, size INTEGER NOT NULL, target_id TEXT,
                 PRIMARY KEY (email, folder, uidvalidity, uid));
             CREATE TABLE IF NOT EXISTS ews_sync (
                 email TEXT NOT NULL COLLATE NOCASE, folder TEXT NOT NULL, state TEXT NOT NULL,
                 PRIMARY KEY (email, folder));
             CREATE TABLE IF NOT EXISTS ews_items (
                 email TEXT NOT NULL COLLATE NOCASE, folder TEXT NOT NULL, item_id TEXT NOT NULL,
                 size INTEGER NOT NULL, read INTEGER NOT NULL, date TEXT,
                 PRIMARY KEY (email, folder, item_id));
             CREATE TABLE IF NOT EXISTS intents (
                 email TEXT NOT NULL COLLATE NOCASE, folder TEXT NOT NULL,
                 uidvalidity INTEGER NOT NULL, uid INTEGER NOT NULL, flags TEXT NOT NULL,
                 fingerprint TEXT NOT NULL, target_folder TEXT NOT NULL,
                 source_key TEXT NOT NULL, size INTEGER NOT NULL, wire_size INTEGER,
                 PRIMARY KEY (email, folder, uidvalidity, uid));
             CREATE TABLE IF NOT EXISTS folders_seen (
                 email TEXT NOT NULL COLLATE NOCASE, folder TEXT NOT NULL,
                 uidvalidity INTEGER NOT NULL, uidnext INTEGER NOT NULL,
                 messages INTEGER NOT NULL, highestmodseq INTEGER NOT NULL,
                 uids TEXT NOT NULL, PRIMARY KEY (email, folder));
             CREATE INDEX IF NOT EXISTS copied_by_fingerprint ON copied (email, fingerprint);
             CREATE INDEX IF NOT EXISTS copied_by_key ON copied (email, source_key, size);",
        )?;
        // Version 5's column, and version 6's, for a file an older mailmig created
        // (CREATE TABLE IF NOT EXISTS leaves an existing table as it is).
        // Version 7's: the target's id of each copy, an intent's size with CRLF line ends.
        for (table, column, ty) in [
            ("users", "kind", "TEXT"),
            ("users", "source_items", "INTEGER"),
            ("users", "source_bytes", "INTEGER"),
            ("copied", "target_id", "TEXT"),
            ("intents", "wire_size", "INTEGER"),
        ] {
            let has = conn
                .prepare(&format!(
                    "SELECT 1 FROM pragma_table_info('{table}') WHERE name = ?1"
                ))?
                .exists([column])?;
            if !has {
                conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {ty}"))?;
            }
        }
        let version: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| {
                r.get(0)
            })
            .optional()?;
        match version.as_deref().map(str::parse::<i64>) {
            None => {
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema', ?1)",
                    params![SCHEMA_VERSION.to_string()],
                )?;
            }
            Some(Ok(SCHEMA_VERSION)) => {}
            // Versions 3 and 4 only change indexes: the statements above created the new ones
            // (4: the due index without running users, the copied totals' covering index);
            // version 3's due index goes; 5 adds the users' kind, 6 what the source holds,
            // 7 the copies' target ids, 8 the folders seen (above).
            Some(Ok(2..=7)) => {
                conn.execute_batch("DROP INDEX IF EXISTS users_due")?;
                conn.execute(
                    "UPDATE meta SET value = ?1 WHERE key = 'schema'",
                    params![SCHEMA_VERSION.to_string()],
                )?;
            }
            Some(Ok(1)) => migrate_from_v1(&mut conn).map_err(|e| {
                Error::State(format!(
                    "{}: migrating the state from schema version 1: {e}",
                    path.display()
                ))
            })?,
            Some(other) => {
                return Err(Error::State(format!(
                    "{}: schema version {other:?}; this mailmig reads version {SCHEMA_VERSION}",
                    path.display()
                )));
            }
        }
        for suffix in ["-wal", "-shm"] {
            private(&dir.join(format!("{DB_FILE}{suffix}")), 0o600)?;
        }
        Ok(Self {
            conn: Mutex::new(conn),
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` in one transaction: all of it happens, or none. BEGIN and COMMIT are cached
    /// statements (rusqlite's `transaction()` parses them anew every time, which showed in the
    /// service loop's profile).
    pub fn transaction<T>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T, Error>) -> Result<T, Error> {
        let conn = self.lock();
        conn.prepare_cached("BEGIN")?.execute([])?;
        match f(&Tx(&conn)) {
            Ok(out) => match conn
                .prepare_cached("COMMIT")
                .and_then(|mut s| s.execute([]))
            {
                Ok(_) => Ok(out),
                Err(e) => {
                    let _ = conn.execute_batch("ROLLBACK");
                    Err(e.into())
                }
            },
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    pub fn read<T>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T, Error>) -> Result<T, Error> {
        self.transaction(f)
    }
}

/// `IN ('A', 'B')` for the user statuses `pick` chooses: SQL built from the status table, so
/// the two never disagree.
fn statuses(pick: impl Fn(UserStatus) -> bool) -> String {
    let names: Vec<String> = UserStatus::ALL
        .into_iter()
        .filter(|u| pick(*u))
        .map(|u| format!("'{}'", u.as_str()))
        .collect();
    format!("IN ({})", names.join(", "))
}

/// Existence facts about a batch's users, each an index probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Census {
    pub any: bool,
    /// A sync runs or is stopping.
    pub active: bool,
    /// Queued or Validating users.
    pub waiting: bool,
    pub failed: bool,
    /// Every user failed (true for a batch without users).
    pub all_failed: bool,
    pub warned: bool,
    /// Completing or Queued users (a Completing batch is not done).
    pub completing: bool,
}

/// Queries and updates inside a transaction.
pub struct Tx<'a>(&'a rusqlite::Connection);

const USER_COLUMNS: &str = "email, batch, line, user_name, password, user_root, status, error, \
    items_synced, items_skipped, bytes_synced, last_successful_sync, queued_at, sync_started_at, \
    running, sync_now, last_sync_items, last_sync_bytes, last_sync_ms, missing_in_target, kind, \
    source_items, source_bytes";

fn user_from_row(r: &Row<'_>) -> rusqlite::Result<UserRow> {
    let email: String = r.get(0)?;
    let row = format!("user {email}");
    let status: String = r.get(6)?;
    let status = UserStatus::parse(&status)
        .ok_or_else(|| unreadable(6, format!("{row}: unknown status {status:?}")))?;
    let running: Option<String> = r.get(14)?;
    let running = match running {
        None => None,
        Some(k) => Some(
            SyncKind::parse(&k)
                .ok_or_else(|| unreadable(14, format!("{row}: unknown sync kind {k:?}")))?,
        ),
    };
    Ok(UserRow {
        batch: r.get(1)?,
        line: r.get::<_, i64>(2)? as u64,
        user_name: r.get(3)?,
        password: r.get(4)?,
        user_root: r.get(5)?,
        status,
        error: r.get(7)?,
        items_synced: r.get::<_, i64>(8)? as u64,
        items_skipped: r.get::<_, i64>(9)? as u64,
        bytes_synced: r.get::<_, i64>(10)? as u64,
        last_successful_sync_time: opt_ts(r, 11, &row)?,
        queued_at: opt_ts(r, 12, &row)?,
        sync_started_at: opt_ts(r, 13, &row)?,
        running,
        sync_now: r.get::<_, i64>(15)? != 0,
        last_sync_items: r.get::<_, i64>(16)? as u64,
        last_sync_bytes: r.get::<_, i64>(17)? as u64,
        last_sync_ms: r.get::<_, i64>(18)? as u64,
        missing_in_target: r.get::<_, Option<i64>>(19)?.map(|v| v as u64),
        source_items: r.get::<_, Option<i64>>(21)?.map(|v| v as u64),
        source_bytes: r.get::<_, Option<i64>>(22)?.map(|v| v as u64),
        kind: match r.get::<_, Option<String>>(20)? {
            None => None,
            Some(k) => Some(
                DirectoryKind::parse(&k)
                    .ok_or_else(|| unreadable(20, format!("{row}: unknown kind {k:?}")))?,
            ),
        },
        email_address: email,
    })
}

fn batch_from_row(r: &Row<'_>) -> rusqlite::Result<BatchRow> {
    let name: String = r.get(0)?;
    let row = format!("batch {name}");
    let status: String = r.get(2)?;
    let status = BatchStatus::parse(&status)
        .ok_or_else(|| unreadable(2, format!("{row}: unknown status {status:?}")))?;
    let settings: String = r.get(3)?;
    let settings = serde_json::from_str(&settings)
        .map_err(|e| unreadable(3, format!("{row}: unreadable settings ({e})")))?;
    Ok(BatchRow {
        endpoint: r.get(1)?,
        status,
        settings,
        created_at: req_ts(r, 4, &row)?,
        last_admin_action_at: req_ts(r, 5, &row)?,
        status_since: req_ts(r, 6, &row)?,
        name,
    })
}

/// What the state keeps per user besides its row: checkpoint, skipped items, EWS item ids,
/// intents, folders seen and EWS sync states.
const PER_USER_TABLES: [&str; 7] = [
    "skipped_items",
    "source_ids",
    "copied",
    "intents",
    "folders_seen",
    "ews_sync",
    "ews_items",
];

impl Tx<'_> {
    pub fn meta(&self, key: &str) -> Result<Option<String>, Error> {
        Ok(self
            .0
            .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
                r.get(0)
            })
            .optional()?)
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), Error> {
        self.0
            .prepare_cached(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![key, value])?;
        Ok(())
    }

    pub fn put_endpoint(&self, e: &Endpoint) -> Result<(), Error> {
        let json = serde_json::to_string(e).map_err(|e| Error::State(e.to_string()))?;
        self.0
            .prepare_cached(
                "INSERT INTO endpoints (name, kind, json) VALUES (?1, ?2, ?3)
             ON CONFLICT(name) DO UPDATE SET kind = excluded.kind, json = excluded.json",
            )?
            .execute(params![e.name, e.endpoint_type().as_str(), json])?;
        Ok(())
    }

    pub fn endpoint(&self, name: &str) -> Result<Option<Endpoint>, Error> {
        let json: Option<String> = self
            .0
            .query_row(
                "SELECT json FROM endpoints WHERE name = ?1",
                params![name],
                |r| r.get(0),
            )
            .optional()?;
        json.map(|j| serde_json::from_str(&j).map_err(|e| Error::State(e.to_string())))
            .transpose()
    }

    pub fn endpoints(&self) -> Result<Vec<Endpoint>, Error> {
        let mut stmt = self
            .0
            .prepare_cached("SELECT json FROM endpoints ORDER BY name")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        rows.map(|j| serde_json::from_str(&j?).map_err(|e| Error::State(e.to_string())))
            .collect()
    }

    pub fn delete_endpoint(&self, name: &str) -> Result<bool, Error> {
        Ok(self
            .0
            .execute("DELETE FROM endpoints WHERE name = ?1", params![name])?
            > 0)
    }

    pub fn insert_batch(&self, b: &BatchRow) -> Result<(), Error> {
        self.0
            .prepare_cached(
                "INSERT INTO batches (name, endpoint, status, settings, created_at,
                                  last_admin_action_at, status_since)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                b.name,
                b.endpoint,
                b.status.as_str(),
                serde_json::to_string(&b.settings).expect("settings serialize"),
                ts(b.created_at),
                ts(b.last_admin_action_at),
                ts(b.status_since),
            ])?;
        Ok(())
    }

    pub fn batch(&self, name: &str) -> Result<Option<BatchRow>, Error> {
        Ok(self
            .0
            .query_row(
                "SELECT name, endpoint, status, settings, created_at, last_admin_action_at,
                        status_since FROM batches WHERE name = ?1",
                params![name],
                batch_from_row,
            )
            .optional()?)
    }

    pub fn batches(&self) -> Result<Vec<BatchRow>, Error> {
        let mut stmt = self.0.prepare_cached(
            "SELECT name, endpoint, status, settings, created_at, last_admin_action_at,
                    status_since FROM batches ORDER BY created_at, name",
        )?;
        let rows = stmt.query_map([], batch_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Moves a batch to a status (no-op when it is there already).
    pub fn set_batch_status(
        &self,
        name: &str,
        status: BatchStatus,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        self.0.prepare_cached("UPDATE batches SET status = ?2, status_since = ?3 WHERE name = ?1 AND status <> ?2")?.execute(params![name, status.as_str(), ts(now)])?;
        Ok(())
    }

    pub fn touch_batch(&self, name: &str, now: DateTime<Utc>) -> Result<(), Error> {
        self.0
            .prepare_cached("UPDATE batches SET last_admin_action_at = ?2 WHERE name = ?1")?
            .execute(params![name, ts(now)])?;
        Ok(())
    }

    pub fn set_batch_settings(&self, name: &str, settings: &BatchSettings) -> Result<(), Error> {
        self.0
            .prepare_cached("UPDATE batches SET settings = ?2 WHERE name = ?1")?
            .execute(params![
                name,
                serde_json::to_string(settings).expect("settings serialize")
            ])?;
        Ok(())
    }

    /// Deletes a batch and everything of its users.
    pub fn delete_batch(&self, name: &str) -> Result<(), Error> {
        // A cutover's EWS item ids go with its users (a later batch starts afresh).
        for table in PER_USER_TABLES {
            self.0
                .prepare_cached(&format!(
                    "DELETE FROM {table} WHERE email IN (SELECT email FROM users WHERE batch = ?1)"
                ))?
                .execute(params![name])?;
        }
        self.0
            .execute("DELETE FROM users WHERE batch = ?1", params![name])?;
        self.0
            .execute("DELETE FROM batches WHERE name = ?1", params![name])?;
        Ok(())
    }

    /// Deletes one user and everything of it (Remove-MigrationUser).
    pub fn delete_user(&self, email: &str) -> Result<(), Error> {
        for table in PER_USER_TABLES {
            self.0
                .prepare_cached(&format!("DELETE FROM {table} WHERE email = ?1"))?
                .execute(params![email])?;
        }
        self.0
            .prepare_cached("DELETE FROM users WHERE email = ?1")?
            .execute(params![email])?;
        Ok(())
    }

    /// A user's source login (Set-MigrationUser).
    pub fn set_user_login(
        &self,
        email: &str,
        user_name: &str,
        password: &str,
    ) -> Result<(), Error> {
        self.0
            .prepare_cached("UPDATE users SET user_name = ?2, password = ?3 WHERE email = ?1")?
            .execute(params![email, user_name, password])?;
        Ok(())
    }

    pub fn insert_user(&self, u: &UserRow) -> Result<(), Error> {
        self.0.execute(
            &format!(
                "INSERT INTO users ({USER_COLUMNS})
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                         0, 0, 0, NULL, ?17, NULL, NULL)"
            ),
            params![
                u.email_address,
                u.batch,
                u.line as i64,
                u.user_name,
                u.password,
                u.user_root,
                u.status.as_str(),
                u.error,
                u.items_synced as i64,
                u.items_skipped as i64,
                u.bytes_synced as i64,
                u.last_successful_sync_time.map(ts),
                u.queued_at.map(ts),
                u.sync_started_at.map(ts),
                u.running.map(SyncKind::as_str),
                i64::from(u.sync_now),
                u.kind.map(DirectoryKind::name),
            ],
        )?;
        Ok(())
    }

    pub fn user(&self, email: &str) -> Result<Option<UserRow>, Error> {
        Ok(self
            .0
            .prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM users WHERE email = ?1"
            ))?
            .query_row(params![email], user_from_row)
            .optional()?)
    }

    /// Users of one batch (or all), in CSV order.
    pub fn users(&self, batch: Option<&str>) -> Result<Vec<UserRow>, Error> {
        let sql = match batch {
            Some(_) => format!("SELECT {USER_COLUMNS} FROM users WHERE batch = ?1 ORDER BY line"),
            None => format!("SELECT {USER_COLUMNS} FROM users ORDER BY batch, line"),
        };
        let mut stmt = self.0.prepare_cached(&sql)?;
        let rows = match batch {
            Some(b) => stmt
                .query_map(params![b], user_from_row)?
                .collect::<Result<Vec<_>, _>>(),
            None => stmt
                .query_map([], user_from_row)?
                .collect::<Result<Vec<_>, _>>(),
        };
        Ok(rows?)
    }

    /// Users by a condition, through the named index: the scheduling queries pin their plans,
    /// so SQLite never picks a scan of every user (the state is never ANALYZEd).
    fn users_where(
        &self,
        index: &str,
        condition: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<UserRow>, Error> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users INDEXED BY {index} WHERE {condition}");
        let mut stmt = self.0.prepare_cached(&sql)?;
        let rows = stmt
            .query_map(args, user_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Users in one status, over all batches (an index lookup: the cost is what is found).
    pub fn users_in_status(&self, status: UserStatus) -> Result<Vec<UserRow>, Error> {
        self.users_where("users_by_status", "status = ?1", &[&status.as_str()])
    }

    /// Users with a sync in flight.
    pub fn running_users(&self) -> Result<Vec<UserRow>, Error> {
        let mut out = Vec::new();
        for b in self.batches()? {
            out.extend(self.users_where(
                "users_running",
                "batch = ?1 AND running IS NOT NULL",
                &[&b.name],
            )?);
        }
        Ok(out)
    }

    /// How many users of a batch run a sync, and how many of those are incremental or final.
    pub fn running_counts(&self, batch: &str) -> Result<(u32, u32), Error> {
        let mut stmt = self.0.prepare_cached(
            "SELECT count(*), coalesce(sum(running != 'Initial'), 0) FROM users \
             INDEXED BY users_running WHERE batch = ?1 AND running IS NOT NULL",
        )?;
        Ok(stmt.query_row(params![batch], |r| {
            Ok((r.get::<_, i64>(0)? as u32, r.get::<_, i64>(1)? as u32))
        })?)
    }

    /// Up to `limit` users of a batch waiting for their initial sync, in queue order.
    pub fn queued_users(&self, batch: &str, limit: u32) -> Result<Vec<UserRow>, Error> {
        self.users_where(
            "users_queued",
            "batch = ?1 AND status = 'Queued' AND running IS NULL \
             ORDER BY queued_at, line LIMIT ?2",
            &[&batch, &limit],
        )
    }

    /// Up to `limit` users of a batch in `status` with no sync running, in queue order (final
    /// syncs).
    pub fn idle_users_in_status(
        &self,
        batch: &str,
        status: UserStatus,
        limit: u32,
    ) -> Result<Vec<UserRow>, Error> {
        self.users_where(
            "users_queued",
            "batch = ?1 AND status = ?2 AND running IS NULL ORDER BY queued_at, line LIMIT ?3",
            &[&batch, &status.as_str(), &limit],
        )
    }

    /// Up to `limit` Synced users of a batch whose incremental sync is due: asked for now,
    /// or last synced at `cutoff` or before; the longest waiting first.
    pub fn due_users(
        &self,
        batch: &str,
        cutoff: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<UserRow>, Error> {
        let mut due = self.users_where(
            "users_sync_now",
            "batch = ?1 AND sync_now = 1 AND status = 'Synced' AND running IS NULL \
             ORDER BY line LIMIT ?2",
            &[&batch, &limit],
        )?;
        let left = limit.saturating_sub(due.len() as u32);
        if left > 0 {
            // The index keeps (status, last sync) in order: the due ones are a prefix.
            let more = self.users_where(
                "users_idle_due",
                "batch = ?1 AND status = 'Synced' AND running IS NULL AND sync_now = 0 \
                 AND (last_successful_sync IS NULL OR last_successful_sync <= ?2) \
                 ORDER BY last_successful_sync, line LIMIT ?3",
                &[&batch, &ts(cutoff), &left],
            )?;
            due.extend(more);
        }
        Ok(due)
    }

    /// Whether any user of a batch matches a condition (an index probe, not a scan).
    fn any_user(&self, batch: &str, condition: &str) -> Result<bool, Error> {
        let sql = format!("SELECT EXISTS (SELECT 1 FROM users WHERE batch = ?1 AND ({condition}))");
        let mut stmt = self.0.prepare_cached(&sql)?;
        Ok(stmt.query_row(params![batch], |r| r.get::<_, bool>(0))?)
    }

    /// What a batch's users say about the batch's status.
    pub fn census(&self, batch: &str) -> Result<Census, Error> {
        use UserStatus as U;
        let active = statuses(|u| u.is_active() || u == U::Stopping);
        let failed = statuses(|u| u == U::Failed);
        Ok(Census {
            any: self.any_user(batch, "1")?,
            // Two probes, not one OR: each can use its own index.
            active: self.any_user(batch, "running IS NOT NULL")?
                || self.any_user(batch, &format!("status {active}"))?,
            waiting: self.any_user(
                batch,
                &format!(
                    "status {}",
                    statuses(|u| matches!(
                        u,
                        U::Queued | U::Validating | U::Provisioning | U::ProvisionUpdating
                    ))
                ),
            )?,
            failed: self.any_user(batch, &format!("status {failed}"))?,
            all_failed: !self.any_user(batch, &format!("status NOT {failed}"))?,
            warned: self.any_user(
                batch,
                &format!("status {}", statuses(|u| u == U::CompletedWithWarnings)),
            )?,
            completing: self.any_user(
                batch,
                &format!(
                    "status {}",
                    statuses(|u| matches!(u, U::Completing | U::Queued))
                ),
            )?,
        })
    }

    /// How many string item ids a user's folders keep (EWS).
    pub fn item_id_count(&self, email: &str) -> Result<u64, Error> {
        Ok(self
            .0
            .prepare_cached("SELECT COUNT(*) FROM source_ids WHERE email = ?1")?
            .query_row(params![email], |r| r.get::<_, i64>(0))? as u64)
    }

    /// An EWS folder's listing as of its last sync state, if one is kept.
    pub fn ews_snapshot(
        &self,
        email: &str,
        folder: &str,
    ) -> Result<Option<crate::source::FolderSnapshot>, Error> {
        let state: Option<String> = self
            .0
            .prepare_cached("SELECT state FROM ews_sync WHERE email = ?1 AND folder = ?2")?
            .query_row(params![email, folder], |r| r.get(0))
            .optional()?;
        let Some(state) = state else {
            return Ok(None);
        };
        let mut stmt = self.0.prepare_cached(
            "SELECT item_id, size, read, date FROM ews_items WHERE email = ?1 AND folder = ?2",
        )?;
        let items = stmt
            .query_map(params![email, folder], |r| {
                let date: Option<String> = r.get(3)?;
                Ok(crate::source::ListedItem {
                    id: r.get(0)?,
                    size: r.get::<_, i64>(1)? as u64,
                    read: r.get::<_, i64>(2)? != 0,
                    date: date
                        .and_then(|d| DateTime::parse_from_rfc3339(&d).ok())
                        .map(|d| d.to_utc()),
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(crate::source::FolderSnapshot { state, items }))
    }

    /// Keeps an EWS folder's listing as of `change.state`: from scratch when `reset`, else
    /// the changed items written and the deleted ones removed.
    pub fn save_ews_snapshot(
        &self,
        email: &str,
        folder: &str,
        change: &crate::source::SnapshotChange<'_>,
    ) -> Result<(), Error> {
        if change.reset {
            self.0
                .prepare_cached("DELETE FROM ews_items WHERE email = ?1 AND folder = ?2")?
                .execute(params![email, folder])?;
        }
        let mut put = self.0.prepare_cached(
            "INSERT OR REPLACE INTO ews_items (email, folder, item_id, size, read, date)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for i in change.upserts {
            put.execute(params![
                email,
                folder,
                i.id,
                i.size as i64,
                i.read,
                i.date.map(|d| d.to_rfc3339())
            ])?;
        }
        let mut del = self.0.prepare_cached(
            "DELETE FROM ews_items WHERE email = ?1 AND folder = ?2 AND item_id = ?3",
        )?;
        for id in change.deletes {
            del.execute(params![email, folder, id])?;
        }
        self.0
            .prepare_cached(
                "INSERT OR REPLACE INTO ews_sync (email, folder, state) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![email, folder, change.state])?;
        Ok(())
    }

    /// The UIDs of a source folder's string item ids (EWS): known ids keep theirs, new ones get
    /// the next ones in the order given.
    pub fn item_uids(&self, email: &str, folder: &str, ids: &[String]) -> Result<Vec<u32>, Error> {
        let mut next: i64 = self
            .0
            .prepare_cached(
                "SELECT COALESCE(MAX(uid), 0) FROM source_ids WHERE email = ?1 AND folder = ?2",
            )?
            .query_row(params![email, folder], |r| r.get(0))?;
        let mut get = self.0.prepare_cached(
            "SELECT uid FROM source_ids WHERE email = ?1 AND folder = ?2 AND item_id = ?3",
        )?;
        let mut put = self.0.prepare_cached(
            "INSERT INTO source_ids (email, folder, item_id, uid) VALUES (?1, ?2, ?3, ?4)",
        )?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let known: Option<i64> = get
                .query_row(params![email, folder, id], |r| r.get(0))
                .optional()?;
            let uid = match known {
                Some(u) => u,
                None => {
                    next += 1;
                    if next > i64::from(u32::MAX) {
                        return Err(Error::State(format!(
                            "{email}: more items than UIDs in one folder"
                        )));
                    }
                    put.execute(params![email, folder, id, next])?;
                    next
                }
            };
            out.push(uid as u32);
        }
        Ok(out)
    }

    pub fn set_user_status(&self, email: &str, status: UserStatus) -> Result<(), Error> {
        self.0
            .prepare_cached("UPDATE users SET status = ?2 WHERE email = ?1")?
            .execute(params![email, status.as_str()])?;
        Ok(())
    }

    /// A user's password: the CSV's for an IMAP user; for a cutover recipient that signs in,
    /// the initial password chosen before its tenant object is created (cleared once the
    /// object is recorded as provisioned and the password is in the passwords file).
    pub fn set_user_password(&self, email: &str, password: &str) -> Result<(), Error> {
        self.0
            .prepare_cached("UPDATE users SET password = ?2 WHERE email = ?1")?
            .execute(params![email, password])?;
        Ok(())
    }

    pub fn set_user_error(&self, email: &str, error: Option<&str>) -> Result<(), Error> {
        self.0
            .prepare_cached("UPDATE users SET error = ?2 WHERE email = ?1")?
            .execute(params![email, error])?;
        Ok(())
    }

    pub fn set_user_queued(&self, email: &str, now: DateTime<Utc>) -> Result<(), Error> {
        self.0
            .prepare_cached(
                "UPDATE users SET status = 'Queued', queued_at = ?2, error = NULL WHERE email = ?1",
            )?
            .execute(params![email, ts(now)])?;
        Ok(())
    }

    pub fn set_user_running(
        &self,
        email: &str,
        running: Option<SyncKind>,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        match running {
            Some(kind) => self.0.prepare_cached("UPDATE users SET running = ?2, sync_started_at = ?3, sync_now = 0 WHERE email = ?1")?.execute(params![email, kind.as_str(), ts(now)])?,
            None => self
                .0
                .execute("UPDATE users SET running = NULL WHERE email = ?1", params![email])?,
        };
        Ok(())
    }

    pub fn set_sync_now(&self, email: &str) -> Result<(), Error> {
        self.0
            .prepare_cached("UPDATE users SET sync_now = 1 WHERE email = ?1")?
            .execute(params![email])?;
        Ok(())
    }

    /// Records a finished sync's statistics (totals, not increments: the data plane counts).
    /// Progress during a sync: a checkpointed chunk's new items and bytes added to the user's
    /// totals, so Get-MigrationUser moves while the sync runs (the sync's end writes the
    /// checkpoint's exact totals).
    /// What a sync's plan found to copy at the source.
    pub fn set_user_source_totals(&self, email: &str, items: u64, bytes: u64) -> Result<(), Error> {
        self.0
            .prepare_cached(
                "UPDATE users SET source_items = ?2, source_bytes = ?3 WHERE email = ?1",
            )?
            .execute(params![email, items as i64, bytes as i64])?;
        Ok(())
    }

    pub fn add_user_progress(&self, email: &str, items: u64, bytes: u64) -> Result<(), Error> {
        self.0
            .prepare_cached(
                "UPDATE users SET items_synced = items_synced + ?2,
                    bytes_synced = bytes_synced + ?3 WHERE email = ?1",
            )?
            .execute(params![email, items as i64, bytes as i64])?;
        Ok(())
    }

    pub fn set_user_stats(
        &self,
        email: &str,
        items_synced: u64,
        items_skipped: u64,
        bytes_synced: u64,
        success_at: Option<DateTime<Utc>>,
    ) -> Result<(), Error> {
        self.0
            .prepare_cached(
                "UPDATE users SET items_synced = ?2, items_skipped = ?3, bytes_synced = ?4,
                    last_successful_sync = COALESCE(?5, last_successful_sync)
             WHERE email = ?1",
            )?
            .execute(params![
                email,
                items_synced as i64,
                items_skipped as i64,
                bytes_synced as i64,
                success_at.map(ts)
            ])?;
        Ok(())
    }

    pub fn set_user_last_sync(
        &self,
        email: &str,
        stats: &crate::sync::SyncStats,
    ) -> Result<(), Error> {
        self.0
            .prepare_cached(
                "UPDATE users SET last_sync_items = ?2, last_sync_bytes = ?3, last_sync_ms = ?4,
                    missing_in_target = ?5 WHERE email = ?1",
            )?
            .execute(params![
                email,
                stats.items as i64,
                stats.bytes as i64,
                stats.elapsed_ms as i64,
                stats.missing_in_target.map(|m| m as i64)
            ])?;
        Ok(())
    }

    /// Skipped items of a user, counted by reason.
    pub fn skipped_by_reason(&self, email: &str) -> Result<Vec<(String, u64)>, Error> {
        let mut stmt = self.0.prepare_cached(
            "SELECT reason, count(*) FROM skipped_items WHERE email = ?1 AND item <> '(folder)'
             GROUP BY reason ORDER BY reason",
        )?;
        let rows = stmt.query_map(params![email], |r| {
            Ok((r.get(0)?, r.get::<_, i64>(1)? as u64))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Addresses in any batch (lower case) -> batch name.
    pub fn all_addresses(&self) -> Result<Vec<(String, String)>, Error> {
        let mut stmt = self
            .0
            .prepare_cached("SELECT lower(email), batch FROM users")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_is_private_and_versioned() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let db = StateDb::open(&state).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(db.path()).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            let dmode = std::fs::metadata(&state).unwrap().permissions().mode() & 0o777;
            assert_eq!(dmode, 0o700);
        }
        drop(db);
        let db = StateDb::open(&state).unwrap();
        db.transaction(|tx| tx.set_meta("schema", "99")).unwrap();
        drop(db);
        let err = StateDb::open(&state).err().unwrap().to_string();
        assert!(err.contains("schema version"), "{err}");
    }

    #[test]
    fn a_version_1_state_file_is_migrated_in_place() {
        let dir = tempfile::tempdir().unwrap();
        {
            // What mailmig 1 wrote: no endpoint type anywhere.
            let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
            conn.execute_batch(
                r#"CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                   INSERT INTO meta VALUES ('schema', '1');
                   CREATE TABLE endpoints (name TEXT PRIMARY KEY COLLATE NOCASE, json TEXT NOT NULL);
                   INSERT INTO endpoints VALUES ('src', '{"name":"src","remoteServer":"imap.contoso.edu",
                     "port":993,"security":"Ssl","authentication":"Plain",
                     "acceptUntrustedCertificates":false,"caFile":null,
                     "maxConcurrentMigrations":30,"maxConcurrentIncrementalSyncs":5,
                     "masterSeparator":"%"}');"#,
            )
            .unwrap();
        }
        let db = StateDb::open(dir.path()).unwrap();
        let e = db.read(|tx| tx.endpoint("src")).unwrap().unwrap();
        assert_eq!(e.endpoint_type(), EndpointType::Imap);
        assert_eq!(e.max_concurrent_migrations, 30);
        let imap = e.imap_settings().unwrap();
        assert_eq!(
            (imap.port, imap.master_separator, imap.authentication),
            (993, '%', crate::imap::Authentication::Plain)
        );
        let (kind, version): (String, Option<String>) = db
            .read(|tx| {
                let kind =
                    tx.0.query_row("SELECT kind FROM endpoints", [], |r| r.get(0))?;
                Ok((kind, tx.meta("schema")?))
            })
            .unwrap();
        assert_eq!(kind, "IMAP");
        assert_eq!(version, Some(SCHEMA_VERSION.to_string()));
        drop(db);
        // Opening again changes nothing.
        let db = StateDb::open(dir.path()).unwrap();
        assert_eq!(db.read(|tx| tx.endpoints()).unwrap(), vec![e]);
    }

    #[test]
    fn a_version_4_state_file_gains_the_users_kind_and_source_totals() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = StateDb::open(dir.path()).unwrap();
            db.transaction(|tx| {
                tx.insert_batch(&BatchRow {
                    name: "b".into(),
                    endpoint: "src".into(),
                    status: BatchStatus::Created,
                    settings: BatchSettings::default(),
                    created_at: Utc::now(),
                    last_admin_action_at: Utc::now(),
                    status_since: Utc::now(),
                })?;
                tx.insert_user(&UserRow::new("a@contoso.edu", "b", 2))?;
                tx.0.execute_batch(
                    "ALTER TABLE users DROP COLUMN kind; ALTER TABLE users DROP COLUMN source_items;
                     ALTER TABLE users DROP COLUMN source_bytes;",
                )?;
                tx.set_meta("schema", "4")
            })
            .unwrap();
        }
        let db = StateDb::open(dir.path()).unwrap();
        let (user, version) = db
            .read(|tx| Ok((tx.user("a@contoso.edu")?, tx.meta("schema")?)))
            .unwrap();
        assert_eq!(version, Some(SCHEMA_VERSION.to_string()));
        let user = user.expect("the row survives");
        assert_eq!(user.kind, None, "an IMAP row has no recipient kind");
        assert_eq!(
            (user.source_items, user.source_bytes),
            (None, None),
            "not planned yet"
        );
        db.transaction(|tx| tx.set_user_source_totals("a@contoso.edu", 7, 700))
            .unwrap();
        let user = db.read(|tx| tx.user("a@contoso.edu")).unwrap().unwrap();
        assert_eq!((user.source_items, user.source_bytes), (Some(7), Some(700)));
    }

    #[test]
    fn a_version_2_state_file_gains_the_scheduling_indexes() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = StateDb::open(dir.path()).unwrap();
            db.transaction(|tx| {
                tx.0.execute_batch(
                    "DROP INDEX users_by_status; DROP INDEX users_queued; DROP INDEX users_idle_due;
                     DROP INDEX users_running; DROP INDEX users_sync_now;",
                )?;
                tx.set_meta("schema", "2")
            })
            .unwrap();
        }
        let db = StateDb::open(dir.path()).unwrap();
        let (indexes, version): (Vec<String>, Option<String>) = db
            .read(|tx| {
                let mut stmt = tx.0.prepare(
                    "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'users' \
                     AND name NOT LIKE 'sqlite_%' ORDER BY name",
                )?;
                let names = stmt
                    .query_map([], |r| r.get(0))?
                    .collect::<Result<Vec<String>, _>>()?;
                Ok((names, tx.meta("schema")?))
            })
            .unwrap();
        assert_eq!(version, Some(SCHEMA_VERSION.to_string()));
        assert_eq!(
            indexes,
            [
                "users_by_batch",
                "users_by_status",
                "users_idle_due",
                "users_queued",
                "users_running",
                "users_sync_now"
            ]
        );
    }

    #[test]
    fn an_empty_or_foreign_state_file_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE);
        std::fs::write(&path, b"").unwrap();
        let e = StateDb::open(dir.path()).err().unwrap().to_string();
        assert!(e.starts_with(&path.display().to_string()), "{e}");
        assert!(e.contains("empty (0 bytes)"), "{e}");
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0, "left as it was");
        std::fs::write(
            &path,
            b"these are not the droids you are looking for, not SQLite",
        )
        .unwrap();
        let e = StateDb::open(dir.path()).err().unwrap().to_string();
        assert!(e.contains("not a mailmig state database"), "{e}");
        let empty = tempfile::tempdir().unwrap();
        let e = StateDb::open_existing(empty.path())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("no mailmig state here"), "{e}");
        assert!(
            !empty.path().join(DB_FILE).exists(),
            "reading creates nothing"
        );
    }

    #[test]
    fn unknown_values_are_errors_not_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let db = StateDb::open(dir.path()).unwrap();
        let now = Utc::now();
        db.transaction(|tx| {
            tx.insert_batch(&BatchRow {
                name: "B".into(),
                endpoint: "src".into(),
                status: BatchStatus::Created,
                settings: BatchSettings::default(),
                created_at: now,
                last_admin_action_at: now,
                status_since: now,
            })?;
            tx.0.execute("UPDATE batches SET status = 'Frobnicated'", [])?;
            Ok(())
        })
        .unwrap();
        let e = db.read(|tx| tx.batches()).unwrap_err().to_string();
        assert!(e.contains("batch B: unknown status \"Frobnicated\""), "{e}");
        db.transaction(|tx| {
            tx.0.execute(
                "UPDATE batches SET status = 'Created', settings = '{nope'",
                [],
            )?;
            Ok(())
        })
        .unwrap();
        let e = db.read(|tx| tx.batch("B")).unwrap_err().to_string();
        assert!(e.contains("batch B: unreadable settings"), "{e}");
    }

    #[test]
    fn a_failed_transaction_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = StateDb::open(dir.path()).unwrap();
        let e = Endpoint::imap("src", "imap.contoso.edu", 993, crate::imap::Security::Ssl);
        let r: Result<(), Error> = db.transaction(|tx| {
            tx.put_endpoint(&e)?;
            Err(Error::Invalid("boom".into()))
        });
        assert!(r.is_err());
        assert!(db.read(|tx| tx.endpoints()).unwrap().is_empty());
    }
}
