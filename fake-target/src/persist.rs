//! The on-disk face of a tenant: SQLite, written through on every change so a run's target
//! survives the process. WAL with `synchronous = NORMAL`: a killed process loses nothing
//! (the WAL is in the OS's hands), and no import pays for an fsync of its own.

use std::path::Path;

use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, params};

use crate::error::Error;
use crate::model::{ItemFlags, ItemKind, Recipient};

const SCHEMA_VERSION: i64 = 1;

pub struct Db {
    conn: Connection,
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
                 mailbox TEXT NOT NULL, path TEXT NOT NULL, PRIMARY KEY (mailbox, path));
             CREATE TABLE IF NOT EXISTS items (
                 id TEXT PRIMARY KEY, mailbox TEXT NOT NULL, folder TEXT NOT NULL,
                 source_key TEXT NOT NULL, received TEXT NOT NULL, flags TEXT NOT NULL,
                 kind TEXT NOT NULL, size INTEGER NOT NULL, mime BLOB NOT NULL,
                 UNIQUE (mailbox, source_key));",
        )?;
        let version: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| {
                r.get(0)
            })
            .optional()?;
        match version.map(|v| v.parse::<i64>()) {
            None => {
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema', ?1)",
                    params![SCHEMA_VERSION.to_string()],
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
        Ok(Self { conn })
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
    /// transaction: a process killed half-way leaves either all of them or none.
    pub fn insert_items(
        &self,
        items: &[(&[String], &ItemRow, &[u8])],
        next_id: u64,
    ) -> Result<(), Error> {
        let tx = self.conn.unchecked_transaction()?;
        for (new_folders, row, mime) in items {
            for p in *new_folders {
                self.save_folder(&row.mailbox, p)?;
            }
            self.insert_item(row, mime)?;
        }
        self.set_meta("next_id", &next_id.to_string())?;
        tx.commit()?;
        Ok(())
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

    pub fn insert_item(&self, row: &ItemRow, mime: &[u8]) -> Result<(), Error> {
        self.conn
            .prepare_cached(
                "INSERT INTO items (id, mailbox, folder, source_key, received, flags, kind, size, mime)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
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
                mime
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
        let bytes: Vec<u8> = self
            .conn
            .query_row("SELECT mime FROM items WHERE id = ?1", params![id], |r| {
                r.get(0)
            })
            .optional()?
            .ok_or_else(|| Error::NoSuchItem(id.to_string()))?;
        Ok(Bytes::from(bytes))
    }
}
