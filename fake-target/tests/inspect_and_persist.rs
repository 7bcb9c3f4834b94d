//! Export to .eml files, and an on-disk tenant that survives a restart. (Reconciliation against
//! a fake-imap source lives in the harness crate, where both fakes meet.)

use std::sync::Arc;

use bytes::Bytes;
use fake_target::inspect::{export_mailbox, fingerprint};
use fake_target::{
    ImportOutcome, ImportRequest, ItemFlags, ManualClock, Recipient, Settings, Tenant, TenantApi,
};

fn tenant() -> Tenant {
    let t = Tenant::with_clock(
        Settings {
            accepted_domains: vec!["contoso.edu".into()],
            ..Settings::default()
        },
        Arc::new(ManualClock::at_epoch()),
    );
    t.add_recipient(Recipient::mailbox("terry@contoso.edu", true, t.now()))
        .unwrap();
    t
}

#[tokio::test]
async fn export_writes_eml_files_and_a_manifest() {
    let t = tenant();
    let body = Bytes::from_static(b"Subject: x\r\n\r\nbody\r\n");
    let request = ImportRequest {
        kind: Default::default(),
        folder: "Inbox/Sub".into(),
        source_key: "k".into(),
        received_time: None,
        flags: ItemFlags::from_imap(&["\\Seen"]),
    };
    t.import("terry@contoso.edu", &request, body.clone())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let manifest = export_mailbox(&t, "terry@contoso.edu", dir.path())
        .await
        .unwrap();
    assert_eq!(manifest.len(), 1);
    assert_eq!(
        std::fs::read(dir.path().join(&manifest[0].file)).unwrap(),
        body
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("manifest.json")).unwrap()).unwrap();
    assert_eq!(json[0]["folder"], "Inbox/Sub");
    assert_eq!(json[0]["sourceKey"], "k");
    assert_eq!(json[0]["sha256"], fingerprint(&body));
}

#[tokio::test]
async fn an_on_disk_tenant_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tenant.sqlite");
    let clock = Arc::new(ManualClock::at_epoch());
    let body = Bytes::from_static(b"Subject: kept\r\n\r\nkept\r\n");
    let first_id;
    {
        let t = Tenant::open_with(
            &db,
            Some(Settings {
                accepted_domains: vec!["contoso.edu".into()],
                max_message_size: 1000,
                ..Settings::default()
            }),
            clock.clone(),
        )
        .unwrap();
        t.add_recipient(Recipient::mailbox("terry@contoso.edu", false, t.now()))
            .unwrap();
        t.create_folder("terry@contoso.edu", "Inbox/Empty").unwrap();
        let request = ImportRequest {
            kind: Default::default(),
            folder: "Archive/2019".into(),
            source_key: "k1".into(),
            received_time: None,
            flags: ItemFlags::from_imap(&["\\Answered"]),
        };
        first_id = t
            .import("terry@contoso.edu", &request, body.clone())
            .await
            .unwrap()
            .id()
            .unwrap()
            .to_string();
    }
    let t = Tenant::open(&db, clock).unwrap();
    assert_eq!(t.settings().max_message_size, 1000);
    let r = t.recipient("terry@contoso.edu").unwrap();
    assert!(!r.licensed);
    let items = t.items("terry@contoso.edu", None).unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(
        (items[0].id.as_str(), items[0].folder.as_str()),
        (first_id.as_str(), "Archive/2019")
    );
    assert_eq!(items[0].flags, vec!["\\Answered"]);
    assert_eq!(t.item_bytes("terry@contoso.edu", &first_id).unwrap(), body);
    let folders = t.folders("terry@contoso.edu").unwrap();
    assert!(folders.iter().any(|f| f.path == "Inbox/Empty"));
    // Idempotence survives the restart, and new ids do not collide with old ones.
    let again = ImportRequest {
        kind: Default::default(),
        folder: "Archive/2019".into(),
        source_key: "k1".into(),
        received_time: None,
        flags: ItemFlags::default(),
    };
    assert_eq!(
        t.import("terry@contoso.edu", &again, body.clone())
            .await
            .unwrap(),
        ImportOutcome::AlreadyPresent(first_id.clone())
    );
    let new = ImportRequest {
        kind: Default::default(),
        source_key: "k2".into(),
        ..again
    };
    let id2 = t.import("terry@contoso.edu", &new, body).await.unwrap();
    assert!(
        matches!(&id2, ImportOutcome::Created(id) if *id != first_id),
        "{id2:?}"
    );
    assert_eq!(TenantApi::users(&t).await.unwrap()[0].item_count, 2);
}

fn keyed(key: &str, folder: &str) -> (ImportRequest, Bytes) {
    (
        ImportRequest {
            kind: Default::default(),
            folder: folder.into(),
            source_key: key.into(),
            received_time: None,
            flags: ItemFlags::default(),
        },
        Bytes::from(format!("Subject: {key}\r\n\r\n{key}\r\n")),
    )
}

#[tokio::test]
async fn a_batch_is_written_whole_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tenant.sqlite");
    let clock = Arc::new(ManualClock::at_epoch());
    let settings = Settings {
        accepted_domains: vec!["contoso.edu".into()],
        ..Settings::default()
    };
    let t = Tenant::open_with(&db, Some(settings), clock.clone()).unwrap();
    t.add_recipient(Recipient::mailbox("terry@contoso.edu", true, t.now()))
        .unwrap();
    let batch = vec![keyed("k1", "Archive/2020"), keyed("k2", "Archive/2020")];
    // Another writer took the id the batch's second item gets: its transaction fails there.
    let raw = rusqlite::Connection::open(&db).unwrap();
    raw.execute(
        "INSERT INTO items (id, mailbox, folder, source_key, received, flags, kind, size, mime)
         VALUES ('AAMk0000000002', 'x', 'Inbox', 'other', '2020-01-01T00:00:00Z', '{}',
                 '\"mail\"', 0, x'')",
        [],
    )
    .unwrap();
    let outcomes = t.import_many("terry@contoso.edu", &batch).await;
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, ImportOutcome::Transient(m) if m.contains("storage error"))),
        "nothing of a failed batch is acknowledged: {outcomes:?}"
    );
    assert!(
        t.items("terry@contoso.edu", None).unwrap().is_empty(),
        "nor kept in memory"
    );
    let count: i64 = raw
        .query_row(
            "SELECT count(*) FROM items WHERE mailbox = 'terry@contoso.edu'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(count, 0, "the first item's row went with the second's");
    raw.execute("DELETE FROM items WHERE id = 'AAMk0000000002'", [])
        .unwrap();
    let outcomes = t.import_many("terry@contoso.edu", &batch).await;
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, ImportOutcome::Created(_))),
        "the retry lands: {outcomes:?}"
    );
    drop(t);
    let t = Tenant::open(&db, clock).unwrap();
    let items = t.items("terry@contoso.edu", None).unwrap();
    let keys: Vec<&str> = items.iter().map(|i| i.source_key.as_str()).collect();
    assert_eq!(keys, ["k1", "k2"]);
    // The failed batch's bodies were written before its rows failed: the retry's bodies come
    // after them in the body file, and each row still names its own.
    for (item, (_, body)) in items.iter().zip(&batch) {
        assert_eq!(t.item_bytes("terry@contoso.edu", &item.id).unwrap(), body);
    }
    assert!(items.iter().all(|i| i.folder == "Archive/2020"));
    assert!(
        t.folders("terry@contoso.edu")
            .unwrap()
            .iter()
            .any(|f| f.path == "Archive/2020"),
        "the folder the batch made is saved with it"
    );
}

#[tokio::test]
async fn a_tenant_written_by_schema_1_keeps_its_bodies_and_takes_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tenant.sqlite");
    {
        // What schema 1 wrote: the body in the row.
        let raw = rusqlite::Connection::open(&db).unwrap();
        raw.execute_batch(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE recipients (address TEXT PRIMARY KEY, json TEXT NOT NULL);
             CREATE TABLE folders (
                 mailbox TEXT NOT NULL, path TEXT NOT NULL, PRIMARY KEY (mailbox, path));
             CREATE TABLE items (
                 id TEXT PRIMARY KEY, mailbox TEXT NOT NULL, folder TEXT NOT NULL,
                 source_key TEXT NOT NULL, received TEXT NOT NULL, flags TEXT NOT NULL,
                 kind TEXT NOT NULL, size INTEGER NOT NULL, mime BLOB NOT NULL,
                 UNIQUE (mailbox, source_key));
             INSERT INTO meta VALUES ('schema', '1'), ('next_id', '2');",
        )
        .unwrap();
        raw.execute(
            "INSERT INTO items VALUES ('AAMk0000000001', 'terry@contoso.edu', 'Inbox', 'old',
                 '2020-01-01T00:00:00+00:00', ?1, '\"mail\"', 10, ?2)",
            rusqlite::params![
                serde_json::to_string(&ItemFlags::default()).unwrap(),
                &b"Old body\r\n"[..]
            ],
        )
        .unwrap();
    }
    let clock = Arc::new(ManualClock::at_epoch());
    let settings = Settings {
        accepted_domains: vec!["contoso.edu".into()],
        ..Settings::default()
    };
    let t = Tenant::open_with(&db, Some(settings), clock.clone()).unwrap();
    t.add_recipient(Recipient::mailbox("terry@contoso.edu", true, t.now()))
        .unwrap();
    let (request, body) = keyed("new", "Inbox");
    let id = t
        .import("terry@contoso.edu", &request, body.clone())
        .await
        .unwrap()
        .id()
        .unwrap()
        .to_string();
    drop(t);
    let t = Tenant::open(&db, clock).unwrap();
    assert_eq!(
        t.item_bytes("terry@contoso.edu", "AAMk0000000001").unwrap(),
        &b"Old body\r\n"[..]
    );
    assert_eq!(t.item_bytes("terry@contoso.edu", &id).unwrap(), body);
    let raw = rusqlite::Connection::open(&db).unwrap();
    let schema: String = raw
        .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(schema, "2");
}

#[tokio::test]
async fn a_truncated_body_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tenant.sqlite");
    let clock = Arc::new(ManualClock::at_epoch());
    let settings = Settings {
        accepted_domains: vec!["contoso.edu".into()],
        ..Settings::default()
    };
    {
        let t = Tenant::open_with(&db, Some(settings), clock.clone()).unwrap();
        t.add_recipient(Recipient::mailbox("terry@contoso.edu", true, t.now()))
            .unwrap();
        let outcomes = t
            .import_many(
                "terry@contoso.edu",
                &[keyed("k1", "Inbox"), keyed("k2", "Inbox")],
            )
            .await;
        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o, ImportOutcome::Created(_)))
        );
    }
    let bodies = dir.path().join("tenant.sqlite-bodies");
    let len = std::fs::metadata(&bodies).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&bodies)
        .unwrap()
        .set_len(len - 1)
        .unwrap();
    let Err(e) = Tenant::open(&db, clock) else {
        panic!("a tenant whose bodies are cut short opened");
    };
    let e = e.to_string();
    assert!(
        e.contains(&bodies.display().to_string()) && e.contains("truncated"),
        "{e}"
    );
}
