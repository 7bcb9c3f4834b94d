//! The on-disk face of a tenant: SQLite, written through on every change so a run's target
//! survives the process. WAL with `synchronous = NORMAL`: a killed process loses nothing
//! (the WAL is in the OS's hands), and no import pays for an fsync of its own.
//!
//! Message bodies live beside the database, appended to `<db>-bodies`, and each item's row
//! holds where its body is: in the database they were written twice (the WAL, then the
//! checkpoint's copy of every page), which made SQLite the import's critical path. A batch's
//! bodies are written before the rows that point at them commit, so a process killed in
//! between leaves bytes no row names (skipped, never read), never a row without its body.
//! Items from schema 1 keep their body in the row, and are read from there.

use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, params};

use crate::error::Error;
use crate::model::{ItemFlags, ItemKind, Recipient};

/// 2: bodies in the body file (`body_at`, `body_len`); 1: in the `mime` column.
const SCHEMA_VERSION: i64 = 2;

/// Bodies are written to the body file in pieces of about this size.
const BODY_WRITE: usize = 1 << 20;

pub struct Db {
    conn: Connection,
    bodies: File,
    bodies_path: PathBuf,
    /// Where the next body goes: the body file's end.
    end: std::cell::Cell<u64>,
}

/// An item row without its bytes.
pub struct ItemRow {
    pub id: String,
    pub mailbox: String,
    pub folder: String,
    pub source_key: String,
    pub received: chrono::DateTime<chrono::Utc>,
    pub flags: ItemFlags,
    pub kind: ItemKind,
    pub size: u64,
}

/// The body file of the database at `db`.
pub fn bodies_path(db: &Path) -> PathBuf {
    PathBuf::from(format!("{}-bodies", db.display()))
}

impl Db {
    pub fn open(path: &Path) -> Result<Self, Error> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)?;
        }
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS recipients (address TEXT PRIMARY KEY, json TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS folders (
                 mailbox TEXT NOT NULL, path TEXT NOT NULL, PRIMARY KEY (mailbox, path));",
        )?;
        let version: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| {
                r.get(0)
            })
            .optional()?;
        match version.map(|v| v.parse::<i64>()) {
            None => {
                conn.execute_batch(
                    "CREATE TABLE IF NOT EXISTS items (
                         id TEXT PRIMARY KEY, mailbox TEXT NOT NULL, folder TEXT NOT NULL,
                         source_key TEXT NOT NULL, received TEXT NOT NULL, flags TEXT NOT NULL,
                         kind TEXT NOT NULL, size INTEGER NOT NULL, mime BLOB NOT NULL,
                         body_at INTEGER, body_len INTEGER,
                         UNIQUE (mailbox, source_key));",
                )?;
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema', ?1)",
                    params![SCHEMA_VERSION.to_string()],
                )?;
            }
            Some(Ok(1)) => {
                // Old items keep their bodies in the row; new ones go to the body file.
                conn.execute_batch(
                    "BEGIN;
                     ALTER TABLE items ADD COLUMN body_at INTEGER;
                     ALTER TABLE items ADD COLUMN body_len INTEGER;
                     UPDATE meta SET value = '2' WHERE key = 'schema';
                     COMMIT;",
                )?;
            }
            Some(Ok(SCHEMA_VERSION)) => {}
            Some(other) => {
                return Err(Error::Storage(format!(
                    "{}: schema version {other:?}, this build reads {SCHEMA_VERSION}",
                    path.display()
                )));
            }
        }
        let bodies_path = bodies_path(path);
        let bodies = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&bodies_path)
            .map_err(|e| Error::Storage(format!("{}: {e}", bodies_path.display())))?;
        let end = bodies.metadata()?.len();
        let needed: Option<i64> =
            conn.query_row("SELECT max(body_at + body_len) FROM items", [], |r| {
                r.get(0)
            })?;
        if let Some(needed) = needed
            && needed as u64 > end
        {
            return Err(Error::Storage(format!(
                "{}: holds {end} bytes, but its items' bodies need {needed}: the file was \
                 truncated or replaced",
                bodies_path.display()
            )));
        }
        Ok(Self {
            conn,
            bodies,
            bodies_path,
            end: std::cell::Cell::new(end),
        })
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>, Error> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
                r.get(0)
            })
            .optional()?)
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), Error> {
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    pub fn save_recipient(&self, r: &Recipient) -> Result<(), Error> {
        let json = serde_json::to_string(r).map_err(|e| Error::Storage(e.to_string()))?;
        self.conn.execute(
            "INSERT INTO recipients (address, json) VALUES (?1, ?2)
             ON CONFLICT(address) DO UPDATE SET json = excluded.json",
            params![r.address.to_ascii_lowercase(), json],
        )?;
        Ok(())
    }

    pub fn recipients(&self) -> Result<Vec<Recipient>, Error> {
        let mut stmt = self
            .conn
            .prepare("SELECT json FROM recipients ORDER BY address")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        rows.map(|json| {
            serde_json::from_str(&json?).map_err(|e| Error::Storage(format!("recipient row: {e}")))
        })
        .collect()
    }

    pub fn save_folder(&self, mailbox: &str, path: &str) -> Result<(), Error> {
        self.conn.execute(
            "INSERT OR IGNORE INTO folders (mailbox, path) VALUES (?1, ?2)",
            params![mailbox, path],
        )?;
        Ok(())
    }

    pub fn folders(&self) -> Result<Vec<(String, String)>, Error> {
        let mut stmt = self
            .conn
            .prepare("SELECT mailbox, path FROM folders ORDER BY rowid")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Writes new items, each with the folders it needed, and the next id, in one
    /// transaction: a process killed half-way leaves either all of them or none. Their
    /// bodies go to the body file first.
    pub fn insert_items(
        &self,
        items: &[(&[String], &ItemRow, &[u8])],
        next_id: u64,
    ) -> Result<(), Error> {
        let mut at = Vec::with_capacity(items.len());
        let mut pending = Vec::new();
        let mut written = self.end.get();
        for (_, _, mime) in items {
            at.push(written + pending.len() as u64);
            pending.extend_from_slice(mime);
            if pending.len() >= BODY_WRITE {
                written = self.write_bodies(&pending, written)?;
                pending.clear();
            }
        }
        self.write_bodies(&pending, written)?;
        let tx = self.conn.unchecked_transaction()?;
        for ((new_folders, row, mime), at) in items.iter().zip(at) {
            for p in *new_folders {
                self.save_folder(&row.mailbox, p)?;
            }
            self.insert_item(row, at, mime.len() as u64)?;
        }
        self.set_meta("next_id", &next_id.to_string())?;
        tx.commit()?;
        Ok(())
    }

    /// Writes `bytes` at `at`, the body file's end; returns the new end.
    fn write_bodies(&self, bytes: &[u8], at: u64) -> Result<u64, Error> {
        if bytes.is_empty() {
            return Ok(at);
        }
        self.bodies
            .write_all_at(bytes, at)
            .map_err(|e| Error::Storage(format!("{}: {e}", self.bodies_path.display())))?;
        let end = at + bytes.len() as u64;
        // Even if the rows do not commit: those bytes are taken (and never read).
        self.end.set(end);
        Ok(end)
    }

    /// The highest numeric part of any item id (ids are `AAMk<number>`).
    pub fn max_item_number(&self) -> Result<u64, Error> {
        let max: Option<i64> = self.conn.query_row(
            "SELECT max(CAST(substr(id, 5) AS INTEGER)) FROM items",
            [],
            |r| r.get(0),
        )?;
        Ok(max.unwrap_or(0).max(0) as u64)
    }

    fn insert_item(&self, row: &ItemRow, body_at: u64, body_len: u64) -> Result<(), Error> {
        self.conn
            .prepare_cached(
                "INSERT INTO items
                     (id, mailbox, folder, source_key, received, flags, kind, size, mime,
                      body_at, body_len)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, x'', ?9, ?10)",
            )?
            .execute(params![
                row.id,
                row.mailbox,
                row.folder,
                row.source_key,
                row.received.to_rfc3339(),
                serde_json::to_string(&row.flags).expect("flags serialize"),
                serde_json::to_string(&row.kind).expect("kind serializes"),
                row.size as i64,
                body_at as i64,
                body_len as i64,
            ])?;
        Ok(())
    }

    pub fn update_flags(&self, id: &str, flags: &ItemFlags) -> Result<(), Error> {
        self.conn.execute(
            "UPDATE items SET flags = ?2 WHERE id = ?1",
            params![id, serde_json::to_string(flags).expect("flags serialize")],
        )?;
        Ok(())
    }

    pub fn items(&self) -> Result<Vec<ItemRow>, Error> {
        let mut stmt = self.conn.prepare(
            "SELECT id, mailbox, folder, source_key, received, flags, kind, size
             FROM items ORDER BY rowid",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, i64>(7)?,
            ))
        })?;
        let bad =
            |what: &str, e: &dyn std::fmt::Display| Error::Storage(format!("item {what}: {e}"));
        rows.map(|row| {
            let (id, mailbox, folder, source_key, received, flags, kind, size) = row?;
            Ok(ItemRow {
                received: chrono::DateTime::parse_from_rfc3339(&received)
                    .map_err(|e| bad("received", &e))?
                    .to_utc(),
                flags: serde_json::from_str(&flags).map_err(|e| bad("flags", &e))?,
                kind: serde_json::from_str(&kind).map_err(|e| bad("kind", &e))?,
                size: size as u64,
                id,
                mailbox,
                folder,
                source_key,
            })
        })
        .collect()
    }

    pub fn mime(&self, id: &str) -> Result<Bytes, Error> {
        let (inline, at, len): (Vec<u8>, Option<i64>, Option<i64>) = self
            .conn
            .query_row(
                "SELECT mime, body_at, body_len FROM items WHERE id = ?1",
                params![id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?
            .ok_or_else(|| Error::NoSuchItem(id.to_string()))?;
        let (Some(at), Some(len)) = (at, len) else {
            // Written by schema 1: the body is in the row.
            return Ok(Bytes::from(inline));
        };
        let mut body = vec![0; len as usize];
        self.bodies
            .read_exact_at(&mut body, at as u64)
            .map_err(|e| {
                Error::Storage(format!(
                    "{}: the body of {id} ({len} bytes at {at}): {e}",
                    self.bodies_path.display()
                ))
            })?;
        Ok(Bytes::from(body))
    }
}
