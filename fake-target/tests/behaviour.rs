//! Every tenant rule, checked through both faces: the in-process handle and the HTTP client
//! (over real HTTP on 127.0.0.1). Each rule is one async function run twice.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fake_target::http::{HttpServer, HttpTenant, serve};
use fake_target::{
    FlagUpdate, ImportOutcome, ImportRequest, ItemFlags, ManualClock, Recipient, RecipientKind,
    Rejection, Settings, Tenant, TenantApi,
};

const DOMAIN: &str = "contoso.edu";

/// A tenant on a manual clock, and the face under test.
struct Fixture {
    tenant: Tenant,
    clock: ManualClock,
    api: Arc<dyn TenantApi>,
    _server: Option<HttpServer>,
}

async fn fixture(http: bool, settings: Settings) -> Fixture {
    let clock = ManualClock::at_epoch();
    let tenant = Tenant::with_clock(
        Settings {
            accepted_domains: vec![DOMAIN.into()],
            ..settings
        },
        Arc::new(clock.clone()),
    );
    let now = tenant.now();
    tenant
        .add_recipient(Recipient::mailbox("terry@contoso.edu", true, now))
        .unwrap();
    let (api, server): (Arc<dyn TenantApi>, _) = if http {
        let server = serve(tenant.clone(), "t0ken".into()).await.unwrap();
        (
            Arc::new(HttpTenant::new(&server.url(), "t0ken")),
            Some(server),
        )
    } else {
        (Arc::new(tenant.clone()), None)
    };
    Fixture {
        tenant,
        clock,
        api,
        _server: server,
    }
}

fn req(key: &str) -> ImportRequest {
    ImportRequest {
        kind: Default::default(),
        folder: "Inbox".into(),
        source_key: key.into(),
        received_time: None,
        flags: ItemFlags::default(),
    }
}

fn mime(text: &str) -> Bytes {
    Bytes::from(format!("Subject: {text}\r\n\r\n{text}\r\n"))
}

async fn import(f: &Fixture, addr: &str, key: &str) -> ImportOutcome {
    f.api.import(addr, &req(key), mime(key)).await.unwrap()
}

macro_rules! both_faces {
    ($($name:ident),* $(,)?) => {
        mod in_process {
            $(#[tokio::test] async fn $name() { super::$name(false).await; })*
        }
        mod over_http {
            $(#[tokio::test] async fn $name() { super::$name(true).await; })*
        }
    };
}

both_faces!(
    import_round_trips_bytes_flags_and_time,
    unknown_and_non_mailbox_recipients_are_not_found,
    unlicensed_mailbox_works_thirty_days,
    disabled_mailbox_refuses_imports,
    message_size_limit,
    a_batch_is_judged_message_by_message,
    quota_limit,
    same_source_key_never_makes_a_second_item,
    concurrent_duplicate_imports_make_one_item,
    throttling_gives_a_retry_after_on_the_clock,
    tenant_wide_throttle,
    transient_faults_then_success_without_duplicates,
    lost_acknowledgements_are_found_by_the_retry,
    folders_well_known_and_created,
    flags_update_by_source_key,
    accepted_domains_and_aliases,
    slow_responses,
);

async fn slow_responses(http: bool) {
    let f = fixture(
        http,
        Settings {
            delay_ms: 120,
            ..Settings::default()
        },
    )
    .await;
    let started = std::time::Instant::now();
    assert!(matches!(
        import(&f, "terry@contoso.edu", "a").await,
        ImportOutcome::Created(_)
    ));
    assert!(
        started.elapsed() >= Duration::from_millis(120),
        "{:?}",
        started.elapsed()
    );
}

async fn import_round_trips_bytes_flags_and_time(http: bool) {
    let f = fixture(http, Settings::default()).await;
    let when = chrono::DateTime::parse_from_rfc3339("2019-05-06T07:08:09Z")
        .unwrap()
        .to_utc();
    let request = ImportRequest {
        kind: Default::default(),
        folder: "Inbox/Projects".into(),
        source_key: "u|INBOX.Projects|17|3".into(),
        received_time: Some(when),
        flags: ItemFlags::from_imap(&["\\Seen", "\\Answered", "$Work"]),
    };
    let body = Bytes::from_static(b"Subject: caf\xe9\r\n\r\n8-bit body\r\n");
    let id = match f
        .api
        .import("terry@contoso.edu", &request, body.clone())
        .await
        .unwrap()
    {
        ImportOutcome::Created(id) => id,
        other => panic!("{other:?}"),
    };
    let items = f
        .api
        .items("terry@contoso.edu", Some("inbox/projects"))
        .await
        .unwrap();
    assert_eq!(items.len(), 1);
    let item = &items[0];
    assert_eq!(
        (item.id.as_str(), item.folder.as_str()),
        (id.as_str(), "Inbox/Projects")
    );
    assert_eq!(item.source_key, "u|INBOX.Projects|17|3");
    assert_eq!(item.received_time, when);
    assert_eq!(item.size, body.len() as u64);
    assert_eq!(item.flags, vec!["\\Seen", "\\Answered", "$Work"]);
    assert_eq!(
        f.api.item_bytes("terry@contoso.edu", &id).await.unwrap(),
        body
    );
}

async fn unknown_and_non_mailbox_recipients_are_not_found(http: bool) {
    let f = fixture(http, Settings::default()).await;
    let mut contact = Recipient::mailbox("ext@contoso.edu", false, f.tenant.now());
    contact.kind = RecipientKind::MailContact;
    f.tenant.add_recipient(contact).unwrap();
    for addr in ["nobody@contoso.edu", "ext@contoso.edu"] {
        assert_eq!(
            import(&f, addr, "k").await,
            ImportOutcome::Rejected(Rejection::NoSuchRecipient),
            "{addr}"
        );
    }
    let msg = Rejection::NoSuchRecipient.message("nobody@contoso.edu");
    assert!(msg.starts_with("A recipient wasn't found for nobody@contoso.edu on the target."));
    assert!(f.api.items("nobody@contoso.edu", None).await.is_err());
}

async fn unlicensed_mailbox_works_thirty_days(http: bool) {
    let f = fixture(http, Settings::default()).await;
    f.tenant
        .add_recipient(Recipient::mailbox("new@contoso.edu", false, f.tenant.now()))
        .unwrap();
    assert!(matches!(
        import(&f, "new@contoso.edu", "a").await,
        ImportOutcome::Created(_)
    ));
    f.clock
        .advance(chrono::Duration::days(29) + chrono::Duration::hours(23));
    assert!(matches!(
        import(&f, "new@contoso.edu", "b").await,
        ImportOutcome::Created(_)
    ));
    f.clock.advance(chrono::Duration::hours(1));
    assert_eq!(
        import(&f, "new@contoso.edu", "c").await,
        ImportOutcome::Rejected(Rejection::MailboxDisabled)
    );
    let users = f.api.users().await.unwrap();
    let new = users
        .iter()
        .find(|u| u.address == "new@contoso.edu")
        .unwrap();
    assert!(!new.enabled && !new.licensed);
    // A licence brings it back.
    f.tenant.set_licensed("new@contoso.edu", true).unwrap();
    assert!(matches!(
        import(&f, "new@contoso.edu", "c").await,
        ImportOutcome::Created(_)
    ));
    // Removing the licence starts a new grace period from now.
    f.tenant.set_licensed("new@contoso.edu", false).unwrap();
    assert!(matches!(
        import(&f, "new@contoso.edu", "d").await,
        ImportOutcome::Created(_)
    ));
}

async fn disabled_mailbox_refuses_imports(http: bool) {
    let f = fixture(http, Settings::default()).await;
    f.tenant.set_enabled("terry@contoso.edu", false).unwrap();
    assert_eq!(
        import(&f, "terry@contoso.edu", "a").await,
        ImportOutcome::Rejected(Rejection::MailboxDisabled)
    );
}

async fn a_batch_is_judged_message_by_message(http: bool) {
    let f = fixture(
        http,
        Settings {
            max_message_size: 100,
            ..Settings::default()
        },
    )
    .await;
    let earlier = import(&f, "terry@contoso.edu", "old").await;
    let small = |k: &str| (req(k), mime(k));
    let batch = vec![
        small("a"),
        (req("big"), Bytes::from(vec![b'x'; 101])),
        small("old"),
        small("a"),
        (
            ImportRequest {
                folder: "Inbox/".into(),
                ..req("bad folder")
            },
            mime("bad folder"),
        ),
        small("c"),
    ];
    let outcomes: Vec<ImportOutcome> = f
        .api
        .import_many("terry@contoso.edu", &batch)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(outcomes.len(), batch.len());
    let ImportOutcome::Created(a) = &outcomes[0] else {
        panic!("{outcomes:?}");
    };
    assert_eq!(
        outcomes[1],
        ImportOutcome::Rejected(Rejection::TooLarge {
            size: 101,
            max: 100
        })
    );
    assert_eq!(
        Some(outcomes[2].clone()),
        earlier
            .id()
            .map(|id| ImportOutcome::AlreadyPresent(id.to_string()))
    );
    assert_eq!(
        outcomes[3],
        ImportOutcome::AlreadyPresent(a.clone()),
        "a key twice in one batch is one item"
    );
    assert!(
        matches!(
            &outcomes[4],
            ImportOutcome::Rejected(Rejection::InvalidFolder { .. })
        ),
        "{:?}",
        outcomes[4]
    );
    assert!(matches!(outcomes[5], ImportOutcome::Created(_)));
    let keys: Vec<String> = f
        .tenant
        .items("terry@contoso.edu", None)
        .unwrap()
        .into_iter()
        .map(|i| i.source_key)
        .collect();
    assert_eq!(keys, ["old", "a", "c"], "in order, each once");
}

async fn message_size_limit(http: bool) {
    let f = fixture(
        http,
        Settings {
            max_message_size: 100,
            ..Settings::default()
        },
    )
    .await;
    let exact = Bytes::from(vec![b'x'; 100]);
    let over = Bytes::from(vec![b'x'; 101]);
    assert!(matches!(
        f.api
            .import("terry@contoso.edu", &req("a"), exact)
            .await
            .unwrap(),
        ImportOutcome::Created(_)
    ));
    assert_eq!(
        f.api
            .import("terry@contoso.edu", &req("b"), over)
            .await
            .unwrap(),
        ImportOutcome::Rejected(Rejection::TooLarge {
            size: 101,
            max: 100
        })
    );
    assert_eq!(Settings::default().max_message_size, 36_700_160);
}

async fn quota_limit(http: bool) {
    let f = fixture(http, Settings::default()).await;
    f.tenant.set_quota("terry@contoso.edu", Some(60)).unwrap();
    let m = Bytes::from(vec![b'x'; 30]);
    for key in ["a", "b"] {
        assert!(matches!(
            f.api
                .import("terry@contoso.edu", &req(key), m.clone())
                .await
                .unwrap(),
            ImportOutcome::Created(_)
        ));
    }
    assert_eq!(
        f.api
            .import("terry@contoso.edu", &req("c"), m)
            .await
            .unwrap(),
        ImportOutcome::Rejected(Rejection::QuotaExceeded)
    );
    assert!(
        Rejection::QuotaExceeded
            .message("x")
            .starts_with("This mailbox is full.")
    );
}

async fn same_source_key_never_makes_a_second_item(http: bool) {
    let f = fixture(http, Settings::default()).await;
    let ImportOutcome::Created(id) = import(&f, "terry@contoso.edu", "k1").await else {
        panic!()
    };
    // Even into another folder, with other bytes: the key decides.
    let mut other = req("k1");
    other.folder = "Archive".into();
    let again = f
        .api
        .import("terry@contoso.edu", &other, mime("other"))
        .await
        .unwrap();
    assert_eq!(again, ImportOutcome::AlreadyPresent(id));
    assert_eq!(
        f.api.items("terry@contoso.edu", None).await.unwrap().len(),
        1
    );
}

async fn concurrent_duplicate_imports_make_one_item(http: bool) {
    let f = fixture(http, Settings::default()).await;
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let api = f.api.clone();
            tokio::spawn(async move {
                api.import("terry@contoso.edu", &req("same"), mime("same"))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut created = 0;
    let mut ids = std::collections::BTreeSet::new();
    for t in tasks {
        let outcome = t.await.unwrap();
        if matches!(outcome, ImportOutcome::Created(_)) {
            created += 1;
        }
        ids.insert(
            outcome
                .id()
                .expect("created or already present")
                .to_string(),
        );
    }
    assert_eq!(created, 1);
    assert_eq!(ids.len(), 1, "every caller got the same id");
    assert_eq!(
        f.api.items("terry@contoso.edu", None).await.unwrap().len(),
        1
    );
}

async fn throttling_gives_a_retry_after_on_the_clock(http: bool) {
    let f = fixture(
        http,
        Settings {
            messages_per_second: 2.0,
            ..Settings::default()
        },
    )
    .await;
    assert!(matches!(
        import(&f, "terry@contoso.edu", "a").await,
        ImportOutcome::Created(_)
    ));
    assert!(matches!(
        import(&f, "terry@contoso.edu", "b").await,
        ImportOutcome::Created(_)
    ));
    let ImportOutcome::Throttled(wait) = import(&f, "terry@contoso.edu", "c").await else {
        panic!("third import in the same instant must be throttled")
    };
    assert_eq!(wait, Duration::from_millis(500));
    // A retry of a landed import is not throttled.
    assert!(matches!(
        import(&f, "terry@contoso.edu", "a").await,
        ImportOutcome::AlreadyPresent(_)
    ));
    f.clock.advance(chrono::Duration::milliseconds(500));
    assert!(matches!(
        import(&f, "terry@contoso.edu", "c").await,
        ImportOutcome::Created(_)
    ));
}

async fn tenant_wide_throttle(http: bool) {
    let f = fixture(
        http,
        Settings {
            tenant_messages_per_second: 1.0,
            ..Settings::default()
        },
    )
    .await;
    f.tenant
        .add_recipient(Recipient::mailbox("ann@contoso.edu", true, f.tenant.now()))
        .unwrap();
    assert!(matches!(
        import(&f, "terry@contoso.edu", "a").await,
        ImportOutcome::Created(_)
    ));
    assert!(matches!(
        import(&f, "ann@contoso.edu", "a").await,
        ImportOutcome::Throttled(_)
    ));
}

async fn transient_faults_then_success_without_duplicates(http: bool) {
    let f = fixture(
        http,
        Settings {
            transient_error_rate: 0.5,
            seed: 7,
            ..Settings::default()
        },
    )
    .await;
    let mut transient = 0;
    for n in 0..20 {
        let key = format!("m{n}");
        loop {
            match import(&f, "terry@contoso.edu", &key).await {
                ImportOutcome::Transient(_) => transient += 1,
                ImportOutcome::Created(_) => break,
                other => panic!("{other:?}"),
            }
        }
    }
    assert!(
        transient > 3,
        "a 50% fault rate showed only {transient} faults"
    );
    assert_eq!(
        f.api.items("terry@contoso.edu", None).await.unwrap().len(),
        20
    );
}

async fn lost_acknowledgements_are_found_by_the_retry(http: bool) {
    let f = fixture(
        http,
        Settings {
            lost_ack_rate: 1.0,
            ..Settings::default()
        },
    )
    .await;
    assert!(matches!(
        import(&f, "terry@contoso.edu", "a").await,
        ImportOutcome::Transient(_)
    ));
    assert!(matches!(
        import(&f, "terry@contoso.edu", "a").await,
        ImportOutcome::AlreadyPresent(_)
    ));
    assert_eq!(
        f.api.items("terry@contoso.edu", None).await.unwrap().len(),
        1
    );
}

async fn folders_well_known_and_created(http: bool) {
    let f = fixture(http, Settings::default()).await;
    let path = f
        .api
        .create_folder("terry@contoso.edu", "sent items/2019/Q1")
        .await
        .unwrap();
    assert_eq!(path, "Sent Items/2019/Q1");
    assert!(
        f.api
            .create_folder("terry@contoso.edu", "a//b")
            .await
            .is_err()
    );
    import(&f, "terry@contoso.edu", "x").await;
    let folders = f.api.folders("terry@contoso.edu").await.unwrap();
    let get = |p: &str| {
        folders
            .iter()
            .find(|x| x.path == p)
            .unwrap_or_else(|| panic!("{p}"))
    };
    for (p, wk) in [
        ("Inbox", "inbox"),
        ("Drafts", "drafts"),
        ("Sent Items", "sentitems"),
        ("Deleted Items", "deleteditems"),
        ("Junk Email", "junkemail"),
        ("Archive", "archive"),
        ("Outbox", "outbox"),
    ] {
        assert_eq!(get(p).well_known_name.as_deref(), Some(wk));
    }
    assert_eq!(get("Inbox").item_count, 1);
    assert_eq!(get("Sent Items/2019").well_known_name, None);
    assert_eq!(get("Sent Items/2019/Q1").item_count, 0);
}

async fn flags_update_by_source_key(http: bool) {
    let f = fixture(http, Settings::default()).await;
    import(&f, "terry@contoso.edu", "k").await;
    let seen = ItemFlags::from_imap(&["\\Seen", "\\Flagged"]);
    let api = &f.api;
    assert_eq!(
        api.update_flags("terry@contoso.edu", "k", &seen)
            .await
            .unwrap(),
        FlagUpdate::Updated
    );
    assert_eq!(
        api.update_flags("terry@contoso.edu", "k", &seen)
            .await
            .unwrap(),
        FlagUpdate::Unchanged
    );
    assert_eq!(
        api.update_flags("terry@contoso.edu", "nope", &seen)
            .await
            .unwrap(),
        FlagUpdate::NotFound
    );
    let items = api.items("terry@contoso.edu", None).await.unwrap();
    assert_eq!(items[0].flags, vec!["\\Seen", "\\Flagged"]);
}

async fn accepted_domains_and_aliases(http: bool) {
    let f = fixture(http, Settings::default()).await;
    let err = f
        .tenant
        .add_recipient(Recipient::mailbox("x@fabrikam.com", true, f.tenant.now()))
        .unwrap_err();
    assert!(err.to_string().contains("not an accepted domain"), "{err}");
    let mut r = Recipient::mailbox("ann@contoso.edu", true, f.tenant.now());
    r.aliases = vec!["ann.smith@contoso.edu".into()];
    f.tenant.add_recipient(r).unwrap();
    assert!(matches!(
        import(&f, "Ann.Smith@contoso.edu", "a").await,
        ImportOutcome::Created(_)
    ));
    assert_eq!(f.api.items("ann@contoso.edu", None).await.unwrap().len(), 1);
    let users = f.api.users().await.unwrap();
    assert_eq!(users.len(), 2);
    assert!(users.iter().all(|u| u.kind == "userMailbox"));
}
