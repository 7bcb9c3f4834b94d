//! The tenant's directory, as a cutover provisions it, through both faces (in-process and
//! HTTP): each object kind, updates, the different-type conflict in Exchange's words,
//! security groups never created, links and members once the objects exist, directory
//! synchronisation, and calendar items and contacts in their folders.

use std::sync::Arc;

use bytes::Bytes;
use fake_target::http::{HttpServer, HttpTenant, serve};
use fake_target::{
    DirectoryKind, DirectoryLinks, DirectoryObject, DirectoryRefusal, Error, ImportOutcome,
    ImportRequest, ItemKind, PersonAttributes, ProvisionOutcome, Recipient, RecipientKind,
    Rejection, Settings, Tenant, TenantApi,
};

struct Fixture {
    tenant: Tenant,
    api: Arc<dyn TenantApi>,
    _server: Option<HttpServer>,
}

async fn fixture(http: bool) -> Fixture {
    let tenant = Tenant::new(Settings {
        accepted_domains: vec!["contoso.com".into()],
        ..Settings::default()
    });
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
        api,
        _server: server,
    }
}

fn object(kind: DirectoryKind, address: &str) -> DirectoryObject {
    let alias = address.split('@').next().unwrap();
    DirectoryObject {
        kind,
        address: address.into(),
        name: alias.into(),
        display_name: format!("{alias} (display)"),
        proxy_addresses: vec![
            format!("smtp:{alias}.alt@contoso.com"),
            format!(
                "X500:/o=Contoso/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn={alias}"
            ),
        ],
        external_address: None,
        initial_password: None,
        person: PersonAttributes {
            first_name: Some("First".into()),
            title: Some("Engineer".into()),
            ..Default::default()
        },
    }
}

fn refusal(e: Error) -> DirectoryRefusal {
    match e {
        Error::Directory(r) => r,
        other => panic!("expected a directory refusal, got {other}"),
    }
}

async fn each_object_kind_is_created_with_its_attributes(http: bool) {
    let f = fixture(http).await;
    for (kind, address, password) in [
        (DirectoryKind::UserMailbox, "alice@contoso.com", true),
        (DirectoryKind::RoomMailbox, "room1@contoso.com", false),
        (
            DirectoryKind::EquipmentMailbox,
            "projector@contoso.com",
            false,
        ),
        (DirectoryKind::MailUser, "frank@contoso.com", true),
        (DirectoryKind::DistributionGroup, "team@contoso.com", false),
    ] {
        let mut o = object(kind, address);
        if kind == DirectoryKind::MailUser {
            o.external_address = Some("SMTP:frank@fabrikam.com".into());
        }
        match f.api.provision(&o).await.unwrap() {
            ProvisionOutcome::Created { initial_password } => {
                assert_eq!(initial_password.is_some(), password, "{address}");
                if let Some(p) = initial_password {
                    assert_eq!(p.chars().count(), 16);
                    assert!(p.chars().filter(|c| !c.is_ascii_alphanumeric()).count() >= 3);
                    assert_eq!(f.tenant.initial_password(address), Some(p));
                }
            }
            other => panic!("{address}: {other:?}"),
        }
        let e = f
            .api
            .directory_entry(address)
            .await
            .unwrap()
            .expect("created");
        assert_eq!(e.kind, kind);
        assert_eq!(e.display_name.as_deref(), Some(o.display_name.as_str()));
        assert_eq!(e.aliases, [format!("{}.alt@contoso.com", o.name)]);
        assert!(e.proxy_addresses[0].starts_with("X500:/o=Contoso/"));
        assert_eq!(e.person.title.as_deref(), Some("Engineer"));
        assert_eq!(e.must_change_password, password);
        assert!(!e.licensed, "new users start unlicensed (30 days of grace)");
    }
    // A contact's address is outside the accepted domains, and that is fine.
    let mut contact = object(DirectoryKind::MailContact, "grace@fabrikam.com");
    contact.proxy_addresses.clear();
    contact.external_address = Some("SMTP:grace@fabrikam.com".into());
    assert!(matches!(
        f.api.provision(&contact).await.unwrap(),
        ProvisionOutcome::Created {
            initial_password: None
        }
    ));
    // The users list shows every kind; a resource mailbox holds items like a user's.
    let kinds: Vec<String> = f
        .api
        .users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.kind)
        .collect();
    for k in [
        "userMailbox",
        "roomMailbox",
        "equipmentMailbox",
        "mailUser",
        "distributionGroup",
        "mailContact",
    ] {
        assert!(kinds.iter().any(|x| x == k), "{k} in {kinds:?}");
    }
    let out = f
        .api
        .import("room1@contoso.com", &event("Calendar", "ev-1"), ics())
        .await
        .unwrap();
    assert!(matches!(out, ImportOutcome::Created(_)), "{out:?}");
}

async fn an_object_of_the_same_type_is_updated(http: bool) {
    let f = fixture(http).await;
    let mut o = object(DirectoryKind::UserMailbox, "bob@contoso.com");
    assert!(matches!(
        f.api.provision(&o).await.unwrap(),
        ProvisionOutcome::Created { .. }
    ));
    let first_password = f.tenant.initial_password("bob@contoso.com");
    o.display_name = "Bob Renamed".into();
    o.proxy_addresses = vec!["smtp:robert@contoso.com".into()];
    assert_eq!(
        f.api.provision(&o).await.unwrap(),
        ProvisionOutcome::Updated
    );
    let e = f
        .api
        .directory_entry("bob@contoso.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e.display_name.as_deref(), Some("Bob Renamed"));
    assert_eq!(e.aliases, ["robert@contoso.com"]);
    assert!(e.proxy_addresses.is_empty());
    assert_eq!(
        f.tenant.initial_password("bob@contoso.com"),
        first_password,
        "no new password"
    );
    // The new alias finds it; the dropped one does not.
    assert!(
        f.api
            .directory_entry("robert@contoso.com")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        f.api
            .directory_entry("bob.alt@contoso.com")
            .await
            .unwrap()
            .is_none()
    );
}

async fn a_different_type_holding_the_address_is_refused_in_exchanges_words(http: bool) {
    let f = fixture(http).await;
    f.api
        .provision(&object(DirectoryKind::MailUser, "carol@contoso.com"))
        .await
        .unwrap();
    let e = f
        .api
        .provision(&object(DirectoryKind::UserMailbox, "carol@contoso.com"))
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "A different type of Active Directory object already exists for \"carol@contoso.com\" in the target forest. Please verify that the SMTP address is correct."
    );
    // A proxy address held by another object counts too.
    let mut other = object(DirectoryKind::MailContact, "dave@fabrikam.com");
    other.proxy_addresses = vec!["smtp:carol.alt@contoso.com".into()];
    assert_eq!(
        refusal(f.api.provision(&other).await.unwrap_err()),
        DirectoryRefusal::DifferentTypeExists {
            address: "carol.alt@contoso.com".into()
        }
    );
    // A mailbox made by an admin beforehand is of another type than a mail user.
    let now = f.tenant.now();
    f.tenant
        .add_recipient(Recipient::mailbox("erin@contoso.com", true, now))
        .unwrap();
    assert!(matches!(
        refusal(
            f.api
                .provision(&object(DirectoryKind::MailUser, "erin@contoso.com"))
                .await
                .unwrap_err()
        ),
        DirectoryRefusal::DifferentTypeExists { .. }
    ));
}

async fn security_groups_are_never_created(http: bool) {
    let f = fixture(http).await;
    let o = object(DirectoryKind::MailEnabledSecurityGroup, "sec@contoso.com");
    assert_eq!(
        refusal(f.api.provision(&o).await.unwrap_err()),
        DirectoryRefusal::SecurityGroupMissing {
            address: "sec@contoso.com".into()
        }
    );
    assert!(
        f.api
            .directory_entry("sec@contoso.com")
            .await
            .unwrap()
            .is_none()
    );
    // Created (empty) by an admin beforehand, it is updated and gets its members.
    let now = f.tenant.now();
    let mut group = Recipient::mailbox("sec@contoso.com", false, now);
    group.kind = RecipientKind::MailEnabledSecurityGroup { members: vec![] };
    f.tenant.add_recipient(group).unwrap();
    assert_eq!(
        f.api.provision(&o).await.unwrap(),
        ProvisionOutcome::Updated
    );
    f.api
        .provision(&object(DirectoryKind::UserMailbox, "alice@contoso.com"))
        .await
        .unwrap();
    f.api
        .add_members("sec@contoso.com", &["alice@contoso.com".into()])
        .await
        .unwrap();
    let e = f
        .api
        .directory_entry("sec@contoso.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e.members, ["alice@contoso.com"]);
}

async fn members_in_any_order_in_chunks_of_a_hundred(http: bool) {
    let f = fixture(http).await;
    f.api
        .provision(&object(DirectoryKind::DistributionGroup, "all@contoso.com"))
        .await
        .unwrap();
    let mut users = Vec::new();
    for i in 0..150 {
        let a = format!("user{i:03}@contoso.com");
        let mut o = object(DirectoryKind::MailUser, &a);
        o.proxy_addresses.clear();
        f.api.provision(&o).await.unwrap();
        users.push(a);
    }
    // More than 100 at once is refused.
    assert_eq!(
        refusal(
            f.api
                .add_members("all@contoso.com", &users[..101])
                .await
                .unwrap_err()
        ),
        DirectoryRefusal::TooManyMembers { given: 101 }
    );
    // In two chunks, newest first, with a repeat: each member once.
    let mut reversed = users.clone();
    reversed.reverse();
    f.api
        .add_members("all@contoso.com", &reversed[..100])
        .await
        .unwrap();
    f.api
        .add_members("all@contoso.com", &reversed[90..])
        .await
        .unwrap();
    let e = f
        .api
        .directory_entry("all@contoso.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e.members, users);
    // A member that does not exist yet, and members for something that is no group.
    assert_eq!(
        refusal(
            f.api
                .add_members("all@contoso.com", &["ghost@contoso.com".into()])
                .await
                .unwrap_err()
        ),
        DirectoryRefusal::NoSuchObject {
            address: "ghost@contoso.com".into()
        }
    );
    assert!(matches!(
        refusal(
            f.api
                .add_members("user000@contoso.com", &users[1..2])
                .await
                .unwrap_err()
        ),
        DirectoryRefusal::NotAGroup { .. }
    ));
}

async fn links_resolve_to_existing_objects(http: bool) {
    let f = fixture(http).await;
    for a in ["alice@contoso.com", "bob@contoso.com", "carol@contoso.com"] {
        f.api
            .provision(&object(DirectoryKind::UserMailbox, a))
            .await
            .unwrap();
    }
    f.api
        .provision(&object(
            DirectoryKind::DistributionGroup,
            "team@contoso.com",
        ))
        .await
        .unwrap();
    // By an alias: stored as the primary address.
    f.api
        .set_links(
            "bob@contoso.com",
            &DirectoryLinks {
                manager: Some("alice.alt@contoso.com".into()),
                delegates: vec!["carol@contoso.com".into()],
                owners: vec![],
            },
        )
        .await
        .unwrap();
    let e = f
        .api
        .directory_entry("bob@contoso.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e.links.manager.as_deref(), Some("alice@contoso.com"));
    assert_eq!(e.links.delegates, ["carol@contoso.com"]);
    f.api
        .set_links(
            "team@contoso.com",
            &DirectoryLinks {
                owners: vec!["alice@contoso.com".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        f.api
            .directory_entry("team@contoso.com")
            .await
            .unwrap()
            .unwrap()
            .links
            .owners,
        ["alice@contoso.com"]
    );
    // A manager not migrated (absent from the tenant) is refused, naming it.
    let e = f
        .api
        .set_links(
            "carol@contoso.com",
            &DirectoryLinks {
                manager: Some("boss@contoso.com".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        refusal(e),
        DirectoryRefusal::NoSuchObject {
            address: "boss@contoso.com".into()
        }
    );
}

async fn directory_sync_and_domains_refuse_provisioning(http: bool) {
    let f = fixture(http).await;
    let org = f.api.organization().await.unwrap();
    assert_eq!(org.accepted_domains, ["contoso.com"]);
    assert!(!org.directory_sync);
    assert_eq!(
        refusal(
            f.api
                .provision(&object(DirectoryKind::UserMailbox, "x@fabrikam.com"))
                .await
                .unwrap_err()
        ),
        DirectoryRefusal::DomainNotAccepted {
            address: "x@fabrikam.com".into()
        }
    );
    f.tenant.set_directory_sync(true);
    assert!(f.api.organization().await.unwrap().directory_sync);
    assert_eq!(
        refusal(
            f.api
                .provision(&object(DirectoryKind::UserMailbox, "x@contoso.com"))
                .await
                .unwrap_err()
        ),
        DirectoryRefusal::DirectorySyncOn
    );
}

fn event(folder: &str, key: &str) -> ImportRequest {
    ImportRequest {
        kind: ItemKind::Calendar,
        folder: folder.into(),
        source_key: key.into(),
        received_time: None,
        flags: Default::default(),
    }
}

fn ics() -> Bytes {
    Bytes::from_static(b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:1\r\nSUMMARY:Review\r\nDTSTART:20261201T100000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
}

async fn calendar_items_and_contacts_live_in_their_folders(http: bool) {
    let f = fixture(http).await;
    f.api
        .provision(&object(DirectoryKind::UserMailbox, "alice@contoso.com"))
        .await
        .unwrap();
    let a = "alice@contoso.com";
    let folders: Vec<String> = f
        .api
        .folders(a)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.path)
        .collect();
    assert!(folders.contains(&"Calendar".to_string()) && folders.contains(&"Contacts".to_string()));
    let created = |o: ImportOutcome| matches!(o, ImportOutcome::Created(_));
    assert!(created(
        f.api
            .import(a, &event("Calendar", "e1"), ics())
            .await
            .unwrap()
    ));
    assert!(created(
        f.api
            .import(a, &event("calendar/Holidays", "e2"), ics())
            .await
            .unwrap()
    ));
    let mut contact = event("Contacts", "c1");
    contact.kind = ItemKind::Contact;
    assert!(created(
        f.api
            .import(
                a,
                &contact,
                Bytes::from_static(b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Grace\r\nEND:VCARD\r\n")
            )
            .await
            .unwrap()
    ));
    // Each kind only where its folder's class allows it.
    for (kind, folder) in [
        (ItemKind::Calendar, "Inbox"),
        (ItemKind::Contact, "Calendar"),
        (ItemKind::Mail, "Contacts"),
    ] {
        let mut r = event(folder, &format!("bad-{folder}"));
        r.kind = kind;
        let out = f.api.import(a, &r, ics()).await.unwrap();
        assert!(
            matches!(
                out,
                ImportOutcome::Rejected(Rejection::InvalidFolder { .. })
            ),
            "{kind:?} into {folder}: {out:?}"
        );
    }
    let items = f.api.items(a, Some("Calendar")).await.unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].kind, ItemKind::Calendar);
    let contacts = f.api.items(a, Some("Contacts")).await.unwrap();
    assert_eq!(contacts[0].kind, ItemKind::Contact);
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
    each_object_kind_is_created_with_its_attributes,
    an_object_of_the_same_type_is_updated,
    a_different_type_holding_the_address_is_refused_in_exchanges_words,
    security_groups_are_never_created,
    members_in_any_order_in_chunks_of_a_hundred,
    links_resolve_to_existing_objects,
    directory_sync_and_domains_refuse_provisioning,
    calendar_items_and_contacts_live_in_their_folders,
);

#[test]
fn provisioned_objects_survive_a_restart_of_an_on_disk_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tenant.sqlite");
    let settings = Settings {
        accepted_domains: vec!["contoso.com".into()],
        ..Settings::default()
    };
    {
        let t = Tenant::open_with(
            &path,
            Some(settings.clone()),
            Arc::new(fake_target::SystemClock),
        )
        .unwrap();
        t.provision(&object(DirectoryKind::UserMailbox, "alice@contoso.com"))
            .unwrap();
        t.provision(&object(
            DirectoryKind::DistributionGroup,
            "team@contoso.com",
        ))
        .unwrap();
        t.add_members("team@contoso.com", &["alice@contoso.com".into()])
            .unwrap();
    }
    let t = Tenant::open_with(&path, None, Arc::new(fake_target::SystemClock)).unwrap();
    let e = t.directory_entry("team@contoso.com").unwrap();
    assert_eq!(e.members, ["alice@contoso.com"]);
    let alice = t.directory_entry("alice.alt@contoso.com").unwrap();
    assert!(alice.must_change_password);
    assert!(t.initial_password("alice@contoso.com").is_some());
}
