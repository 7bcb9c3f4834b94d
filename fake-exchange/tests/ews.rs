//! EWS, operation by operation, permission by permission, fault by fault: SOAP requests as a
//! client sends them, answers read as a client reads them.

mod common;

use base64::Engine as _;
use common::*;
use std::time::Duration;

fn folder_ids(doc: &mailmig_xml::Element) -> Vec<String> {
    all(doc, "FolderId")
        .iter()
        .map(|e| e.attr("Id").unwrap().to_string())
        .collect()
}

fn item_ids(doc: &mailmig_xml::Element) -> Vec<String> {
    all(doc, "ItemId")
        .iter()
        .map(|e| e.attr("Id").unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn every_response_carries_server_version_info_and_convert_id_probes() {
    let ex = start("").await;
    let (status, doc) = ews(
        &ex,
        ADMIN,
        "",
        r#"<m:ConvertId DestinationFormat="EntryId"><m:SourceIds><t:AlternateId Format="EwsId" Id="DUMMY" Mailbox="DUMMY"/></m:SourceIds></m:ConvertId>"#,
    )
    .await;
    assert_eq!(status, 200);
    let info = doc.find("ServerVersionInfo").expect("ServerVersionInfo");
    assert_eq!(info.attr("MajorVersion"), Some("15"));
    assert_eq!(info.attr("Version"), Some("V2017_07_11"));
    assert_eq!(codes(&doc), ["ErrorInvalidIdMalformed"]);
    // Faults carry it too.
    let (status, doc) = ews(&ex, ADMIN, "", "<m:Bogus/>").await;
    assert_eq!(status, 500);
    assert!(doc.find("ServerVersionInfo").is_some());
    assert_eq!(fault_code(&doc).as_deref(), Some("ErrorInvalidRequest"));
}

#[tokio::test]
async fn basic_authentication_is_required_and_checked() {
    let ex = start("").await;
    let c = client(&ex);
    let url = "https://mail.contoso.com/EWS/Exchange.asmx";
    let body = envelope("", &get_folder(&distinguished("inbox", None)));
    let none = c.post(url).body(body.clone()).send().await.unwrap();
    assert_eq!(none.status(), 401);
    assert!(none.headers.contains_key("www-authenticate"));
    let wrong = c
        .post(url)
        .basic_auth("administrator@contoso.com", Some("nope"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let netbios = c
        .post(url)
        .basic_auth("CONTOSO\\administrator", Some("P@ssw0rd"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(netbios.status(), 200);
    // A password changed mid-batch: the old one stops working at once.
    ex.org()
        .set_password("administrator@contoso.com", "N3w-P@ss")
        .unwrap();
    let (status, _) = {
        let r = c
            .post(url)
            .basic_auth("administrator@contoso.com", Some("P@ssw0rd"))
            .body(body)
            .send()
            .await
            .unwrap();
        (r.status(), ())
    };
    assert_eq!(status, 401);
}

#[tokio::test]
async fn get_folder_by_well_known_name_and_by_id_with_each_right() {
    let ex = start("").await;
    // Domain Admins: any mailbox, named in the folder id.
    let (_, doc) = ews(
        &ex,
        ADMIN,
        "",
        &get_folder(&format!(
            "{}{}{}",
            distinguished("inbox", Some("alice@contoso.com")),
            distinguished("calendar", Some("bob@contoso.com")),
            distinguished("adminauditlogs", Some("alice@contoso.com"))
        )),
    )
    .await;
    assert_eq!(codes(&doc), ["NoError", "NoError", "ErrorFolderNotFound"]);
    assert_eq!(all(&doc, "DisplayName")[0].text, "Inbox");
    assert_eq!(all(&doc, "TotalCount")[0].text, "6");
    assert_eq!(all(&doc, "FolderClass")[1].text, "IPF.Appointment");
    assert!(doc.find("CalendarFolder").is_some());
    // The id names its mailbox: GetFolder by id gives the same folder.
    let inbox = folder_ids(&doc)[0].clone();
    let (_, again) = ews(
        &ex,
        ADMIN,
        "",
        &get_folder(&format!("<t:FolderId Id=\"{inbox}\"/>")),
    )
    .await;
    assert_eq!(codes(&again), ["NoError"]);
    assert_eq!(folder_ids(&again)[0], inbox);
    // FullAccess on alice only; Receive As on DB02 (bob's database) only.
    for (who, mailbox, expected) in [
        (HELPDESK, "alice@contoso.com", "NoError"),
        (HELPDESK, "bob@contoso.com", "ErrorAccessDenied"),
        (DBADMIN, "bob@contoso.com", "NoError"),
        (DBADMIN, "alice@contoso.com", "ErrorAccessDenied"),
        (ADMIN, "frank@contoso.com", "ErrorNonExistentMailbox"),
        (ADMIN, "nobody@contoso.com", "ErrorNonExistentMailbox"),
    ] {
        let (_, doc) = ews(
            &ex,
            who,
            "",
            &get_folder(&distinguished("inbox", Some(mailbox))),
        )
        .await;
        assert_eq!(codes(&doc), [expected], "{} on {mailbox}", who.0);
    }
    // A folder id of a mailbox without rights is refused too, and a damaged id is malformed.
    let (_, doc) = ews(
        &ex,
        HELPDESK,
        "",
        &get_folder(&format!(
            "<t:FolderId Id=\"{inbox}\"/><t:FolderId Id=\"AAAA\"/>"
        )),
    )
    .await;
    assert_eq!(codes(&doc), ["NoError", "ErrorInvalidIdMalformed"]);
    let (_, bob) = ews(
        &ex,
        ADMIN,
        "",
        &get_folder(&distinguished("inbox", Some("bob@contoso.com"))),
    )
    .await;
    let bob_inbox = folder_ids(&bob)[0].clone();
    let (_, doc) = ews(
        &ex,
        HELPDESK,
        "",
        &get_folder(&format!("<t:FolderId Id=\"{bob_inbox}\"/>")),
    )
    .await;
    assert_eq!(codes(&doc), ["ErrorAccessDenied"]);
}

#[tokio::test]
async fn find_folder_deep_lists_the_tree_in_pages() {
    let ex = start("").await;
    let find = |offset: usize, max: usize| {
        format!(
            "<m:FindFolder Traversal=\"Deep\"><m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape><m:IndexedPageFolderView MaxEntriesReturned=\"{max}\" Offset=\"{offset}\" BasePoint=\"Beginning\"/><m:ParentFolderIds>{}</m:ParentFolderIds></m:FindFolder>",
            distinguished("msgfolderroot", Some("alice@contoso.com"))
        )
    };
    let mut names = Vec::new();
    let mut offset = 0;
    loop {
        let (_, doc) = ews(&ex, ADMIN, "", &find(offset, 4)).await;
        assert_eq!(codes(&doc), ["NoError"]);
        let root = doc.find("RootFolder").unwrap();
        let page: Vec<String> = all(root, "DisplayName")
            .iter()
            .map(|e| e.text.clone())
            .collect();
        assert!(page.len() <= 4);
        names.extend(page);
        offset = root.attr("IndexedPagingOffset").unwrap().parse().unwrap();
        if root.attr("IncludesLastItemInRange") == Some("true") {
            assert_eq!(
                root.attr("TotalItemsInView").unwrap(),
                names.len().to_string()
            );
            break;
        }
    }
    // Ten well-known folders plus Projects and Projects/2026, depth first.
    assert_eq!(names.len(), 12, "{names:?}");
    let projects = names.iter().position(|n| n == "Projects").unwrap();
    assert_eq!(names[projects + 1], "2026");
    // Shallow: only the direct children.
    let shallow = find(0, 100).replace("Deep", "Shallow");
    let (_, doc) = ews(&ex, ADMIN, "", &shallow).await;
    assert_eq!(all(&doc, "DisplayName").len(), 11);
}

#[tokio::test]
async fn sync_folder_hierarchy_returns_new_folders_once() {
    let ex = start("").await;
    let sync = |state: Option<&str>| {
        let state = state
            .map(|s| format!("<m:SyncState>{s}</m:SyncState>"))
            .unwrap_or_default();
        format!(
            "<m:SyncFolderHierarchy><m:FolderShape><t:BaseShape>AllProperties</t:BaseShape></m:FolderShape><m:SyncFolderId>{}</m:SyncFolderId>{state}</m:SyncFolderHierarchy>",
            distinguished("msgfolderroot", Some("alice@contoso.com"))
        )
    };
    let (_, first) = ews(&ex, ADMIN, "", &sync(None)).await;
    assert_eq!(all(&first, "Create").len(), 12);
    let state = first.find("SyncState").unwrap().text.clone();
    ex.org()
        .create_folder("alice@contoso.com", "Projects/New")
        .unwrap();
    let (_, second) = ews(&ex, ADMIN, "", &sync(Some(&state))).await;
    let created: Vec<_> = all(&second, "DisplayName")
        .iter()
        .map(|e| e.text.clone())
        .collect();
    assert_eq!(created, ["New"]);
    let (_, bad) = ews(&ex, ADMIN, "", &sync(Some("garbage"))).await;
    assert_eq!(codes(&bad), ["ErrorInvalidSyncStateData"]);
}

#[tokio::test]
async fn sync_folder_items_pages_replays_and_reports_each_kind_of_change() {
    let ex = start("").await;
    let inbox = distinguished("inbox", Some("alice@contoso.com"));
    // 6 items, 4 per call: two calls, the second includes the last.
    let (_, p1) = ews(&ex, ADMIN, "", &sync_items(&inbox, None, 4)).await;
    assert_eq!(all(&p1, "Create").len(), 4);
    assert_eq!(p1.find("IncludesLastItemInRange").unwrap().text, "false");
    let s1 = p1.find("SyncState").unwrap().text.clone();
    let (_, p2) = ews(&ex, ADMIN, "", &sync_items(&inbox, Some(&s1), 4)).await;
    assert_eq!(all(&p2, "Create").len(), 2);
    assert_eq!(p2.find("IncludesLastItemInRange").unwrap().text, "true");
    let s2 = p2.find("SyncState").unwrap().text.clone();
    // Replaying a state gives the same page.
    let (_, again) = ews(&ex, ADMIN, "", &sync_items(&inbox, Some(&s1), 4)).await;
    assert_eq!(item_ids(&again), item_ids(&p2));
    // Nothing changed: nothing returned.
    let (_, idle) = ews(&ex, ADMIN, "", &sync_items(&inbox, Some(&s2), 512)).await;
    assert!(all(&idle, "Changes")[0].children.is_empty());
    // One of each change.
    let org = ex.org();
    let ids = org.item_ids("alice@contoso.com", "Inbox").unwrap();
    org.set_read("alice@contoso.com", ids[0], false).unwrap();
    org.set_subject("alice@contoso.com", ids[1], "Edited")
        .unwrap();
    org.delete_item("alice@contoso.com", ids[2]).unwrap();
    org.deliver("alice@contoso.com", "Inbox", b"Subject: New\r\n\r\nx\r\n")
        .unwrap();
    let (_, changes) = ews(&ex, ADMIN, "", &sync_items(&inbox, Some(&s2), 512)).await;
    let kinds: Vec<&str> = all(&changes, "Changes")[0]
        .children
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(kinds, ["ReadFlagChange", "Update", "Delete", "Create"]);
    assert_eq!(
        changes.find("ReadFlagChange").unwrap().child_text("IsRead"),
        Some("false")
    );
    // Out-of-range MaxChangesReturned, and a state of another folder.
    for max in [0, 513] {
        let (_, doc) = ews(&ex, ADMIN, "", &sync_items(&inbox, None, max)).await;
        assert_eq!(codes(&doc), ["ErrorInvalidArgument"], "{max}");
    }
    let sent = distinguished("sentitems", Some("alice@contoso.com"));
    let (_, doc) = ews(&ex, ADMIN, "", &sync_items(&sent, Some(&s2), 10)).await;
    assert_eq!(codes(&doc), ["ErrorInvalidSyncStateData"]);
}

#[tokio::test]
async fn a_moved_item_is_a_delete_in_its_old_folder_and_a_create_with_a_new_id_in_the_new_one() {
    let ex = start("").await;
    let inbox = distinguished("inbox", Some("alice@contoso.com"));
    let sent = distinguished("sentitems", Some("alice@contoso.com"));
    let state = |doc: &mailmig_xml::Element| doc.find("SyncState").unwrap().text.clone();
    let (_, i1) = ews(&ex, ADMIN, "", &sync_items(&inbox, None, 512)).await;
    let (_, s1) = ews(&ex, ADMIN, "", &sync_items(&sent, None, 512)).await;
    let org = ex.org();
    let id = org.item_ids("alice@contoso.com", "Inbox").unwrap()[0];
    let moved = org
        .move_item("alice@contoso.com", id, "Sent Items")
        .unwrap();
    assert_ne!(moved, id, "EWS gives a moved item a new id");
    let (_, i2) = ews(&ex, ADMIN, "", &sync_items(&inbox, Some(&state(&i1)), 512)).await;
    let (_, s2) = ews(&ex, ADMIN, "", &sync_items(&sent, Some(&state(&s1)), 512)).await;
    let kinds = |doc: &mailmig_xml::Element| -> Vec<String> {
        all(doc, "Changes")[0]
            .children
            .iter()
            .map(|c| c.name.clone())
            .collect()
    };
    assert_eq!(kinds(&i2), ["Delete"]);
    assert_eq!(kinds(&s2), ["Create"]);
    assert_ne!(item_ids(&s2), item_ids(&i2));
    // Into a calendar: refused (Outlook can't either).
    assert!(
        org.move_item("alice@contoso.com", moved, "Calendar")
            .is_err()
    );
}

#[tokio::test]
async fn invalidated_sync_states_are_refused_and_an_empty_state_starts_again() {
    let ex = start("").await;
    let inbox = distinguished("inbox", Some("alice@contoso.com"));
    let (_, first) = ews(&ex, ADMIN, "", &sync_items(&inbox, None, 512)).await;
    let state = first.find("SyncState").unwrap().text.clone();
    assert_eq!(ex.ews_item_changes(), 6, "the inbox's six items");
    ex.org()
        .invalidate_sync_states("alice@contoso.com")
        .unwrap();
    let (_, stale) = ews(&ex, ADMIN, "", &sync_items(&inbox, Some(&state), 512)).await;
    assert_eq!(codes(&stale), ["ErrorInvalidSyncStateData"]);
    let (_, again) = ews(&ex, ADMIN, "", &sync_items(&inbox, None, 512)).await;
    assert_eq!(all(&again, "Create").len(), 6);
    assert_eq!(ex.ews_item_changes(), 12);
}

#[tokio::test]
async fn get_item_gives_mime_ical_and_vcard_and_export_items_the_same_bytes() {
    let ex = start("").await;
    let mut ids = Vec::new();
    for folder in ["inbox", "calendar", "contacts"] {
        let (_, doc) = ews(
            &ex,
            ADMIN,
            "",
            &sync_items(&distinguished(folder, Some("alice@contoso.com")), None, 1),
        )
        .await;
        ids.push(item_ids(&doc)[0].clone());
    }
    let (_, doc) = ews(&ex, ADMIN, "", &get_item(&ids, true)).await;
    assert_eq!(codes(&doc), ["NoError"; 3]);
    let mime: Vec<Vec<u8>> = all(&doc, "MimeContent")
        .iter()
        .map(|m| {
            base64::engine::general_purpose::STANDARD
                .decode(m.text.trim())
                .unwrap()
        })
        .collect();
    assert!(mime[0].starts_with(b"From: "));
    assert!(mime[1].starts_with(b"BEGIN:VCALENDAR\r\n"));
    assert!(mime[2].starts_with(b"BEGIN:VCARD\r\n"));
    assert!(
        doc.find("Message").is_some()
            && doc.find("CalendarItem").is_some()
            && doc.find("Contact").is_some()
    );
    // Without IncludeMimeContent, no MIME.
    let (_, plain) = ews(&ex, ADMIN, "", &get_item(&ids, false)).await;
    assert!(plain.find("MimeContent").is_none());
    // ExportItems: the same bytes.
    let export = format!(
        "<m:ExportItems><m:ItemIds>{}</m:ItemIds></m:ExportItems>",
        ids.iter()
            .map(|i| format!("<t:ItemId Id=\"{i}\"/>"))
            .collect::<String>()
    );
    let (_, doc) = ews(&ex, ADMIN, "", &export).await;
    let data: Vec<Vec<u8>> = all(&doc, "Data")
        .iter()
        .map(|m| {
            base64::engine::general_purpose::STANDARD
                .decode(m.text.trim())
                .unwrap()
        })
        .collect();
    assert_eq!(data, mime);
    // No right to the mailbox reads as "not found" for an item.
    let (_, doc) = ews(&ex, DBADMIN, "", &get_item(&ids[..1], true)).await;
    assert_eq!(codes(&doc), ["ErrorItemNotFound"]);
    // A deleted item is not found either.
    let first = ex.org().item_ids("alice@contoso.com", "Inbox").unwrap()[0];
    ex.org().delete_item("alice@contoso.com", first).unwrap();
    let (_, doc) = ews(&ex, ADMIN, "", &get_item(&ids[..1], true)).await;
    assert_eq!(codes(&doc), ["ErrorItemNotFound"]);
}

#[tokio::test]
async fn impersonation_needs_the_role_and_a_mailbox() {
    let ex = start("").await;
    let body = get_folder(&distinguished("inbox", None));
    let (status, doc) = ews(&ex, ADMIN, &impersonating("bob@contoso.com"), &body).await;
    assert_eq!(status, 200);
    assert_eq!(codes(&doc), ["NoError"]);
    assert_eq!(
        all(&doc, "TotalCount")[0].text,
        "5",
        "bob's inbox, not the admin's"
    );
    // Impersonating bob gives bob's rights: alice's mailbox is not his.
    let (_, doc) = ews(
        &ex,
        ADMIN,
        &impersonating("bob@contoso.com"),
        &get_folder(&distinguished("inbox", Some("alice@contoso.com"))),
    )
    .await;
    assert_eq!(codes(&doc), ["ErrorAccessDenied"]);
    let (status, doc) = ews(&ex, HELPDESK, &impersonating("alice@contoso.com"), &body).await;
    assert_eq!(status, 500);
    assert_eq!(
        fault_code(&doc).as_deref(),
        Some("ErrorImpersonateUserDenied")
    );
    let (_, doc) = ews(&ex, ADMIN, &impersonating("grace@fabrikam.com"), &body).await;
    assert_eq!(fault_code(&doc).as_deref(), Some("ErrorNonExistentMailbox"));
}

#[tokio::test]
async fn throttling_faults_answer_as_exchange_does() {
    let ex = start("[faults.ews]\nbusy_first = 1\nback_off_ms = 1500\nhttp_503_every = 3\nclose_mid_response_every = 4\n").await;
    let body = get_folder(&distinguished("inbox", Some("alice@contoso.com")));
    let (status, doc) = ews(&ex, ADMIN, "", &body).await;
    assert_eq!(status, 500);
    assert_eq!(fault_code(&doc).as_deref(), Some("ErrorServerBusy"));
    let back_off = all(&doc, "Value")[0];
    assert_eq!(back_off.attr("Name"), Some("BackOffMilliseconds"));
    assert_eq!(back_off.text, "1500");
    let (status, _) = ews(&ex, ADMIN, "", &body).await;
    assert_eq!(status, 200);
    let c = client(&ex);
    let send = || {
        c.post("https://mail.contoso.com/EWS/Exchange.asmx")
            .basic_auth(ADMIN.0, Some(ADMIN.1))
            .body(envelope("", &body))
            .send()
    };
    assert_eq!(send().await.unwrap().status(), 503);
    let cut = send().await.unwrap();
    assert_eq!(cut.status(), 200);
    assert!(cut.bytes().await.is_err(), "the response stops halfway");
}

#[tokio::test]
async fn concurrent_requests_past_the_limit_get_exceeded_connection_count() {
    let ex = start("[faults.ews]\ndelay_ms = 300\n").await;
    // Exchange 2016 allows 27 at once per account; 30 at once gets some refused.
    let body = get_folder(&distinguished("inbox", Some("alice@contoso.com")));
    let tasks: Vec<_> = (0..30).map(|_| ews(&ex, ADMIN, "", &body)).collect();
    let results = futures::future::join_all(tasks).await;
    let refused = results
        .iter()
        .filter(|(_, d)| fault_code(d).as_deref() == Some("ErrorExceededConnectionCount"))
        .count();
    let served = results.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(refused + served, 30);
    assert!(
        refused >= 3 && served >= 1,
        "refused {refused}, served {served}"
    );
}

#[tokio::test]
async fn requests_abandoned_by_their_client_give_their_slot_back() {
    // A client killed mid-request (kill -9 of a migration) closes its connections; the server
    // must not count those requests against the account's limit forever.
    let ex = start("[faults.ews]\ndelay_ms = 300\n").await;
    let body = get_folder(&distinguished("inbox", Some("alice@contoso.com")));
    // Two rounds of 20 (each under the limit of 27, together over it).
    for _ in 0..2 {
        let abandoned: Vec<_> = (0..20)
            .map(|_| tokio::time::timeout(Duration::from_millis(50), ews(&ex, ADMIN, "", &body)))
            .collect();
        for r in futures::future::join_all(abandoned).await {
            assert!(
                r.is_err(),
                "answered before the 300 ms delay: refused, the abandoned requests still count"
            );
        }
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (status, doc) = ews(&ex, ADMIN, "", &body).await;
    assert_eq!(fault_code(&doc), None, "{doc:?}");
    assert_eq!(status, 200);
}

#[tokio::test]
async fn moves_stores_and_broken_items_fail_with_their_codes() {
    let ex = start(
        "[faults.ews]\nmoving = [\"bob@contoso.com\"]\nbroken_items = [{ mailbox = \"alice@contoso.com\", folder = \"Inbox\", index = 1, code = \"ErrorItemCorrupt\" }, { mailbox = \"alice@contoso.com\", folder = \"Calendar\", index = 0, code = \"ErrorContentConversionFailed\" }]\n",
    )
    .await;
    let (_, doc) = ews(
        &ex,
        ADMIN,
        "",
        &get_folder(&distinguished("inbox", Some("bob@contoso.com"))),
    )
    .await;
    assert_eq!(codes(&doc), ["ErrorMailboxMoveInProgress"]);
    ex.org().set_moving("bob@contoso.com", false).unwrap();
    // The move is over: the mailbox opens again.
    let (_, doc) = ews(
        &ex,
        ADMIN,
        "",
        &get_folder(&distinguished("inbox", Some("bob@contoso.com"))),
    )
    .await;
    assert_eq!(codes(&doc), ["NoError"]);
    let (_, inbox) = ews(
        &ex,
        ADMIN,
        "",
        &sync_items(&distinguished("inbox", Some("alice@contoso.com")), None, 10),
    )
    .await;
    let (_, cal) = ews(
        &ex,
        ADMIN,
        "",
        &sync_items(
            &distinguished("calendar", Some("alice@contoso.com")),
            None,
            10,
        ),
    )
    .await;
    let mut ids = item_ids(&inbox)[..2].to_vec();
    ids.push(item_ids(&cal)[0].clone());
    let (_, doc) = ews(&ex, ADMIN, "", &get_item(&ids, true)).await;
    assert_eq!(
        codes(&doc),
        [
            "NoError",
            "ErrorItemCorrupt",
            "ErrorContentConversionFailed"
        ]
    );
    ex.org().set_store_unavailable(true);
    let (_, doc) = ews(
        &ex,
        ADMIN,
        "",
        &get_folder(&distinguished("inbox", Some("alice@contoso.com"))),
    )
    .await;
    assert_eq!(codes(&doc), ["ErrorMailboxStoreUnavailable"]);
}

#[tokio::test]
async fn malformed_soap_is_a_schema_fault_not_a_crash() {
    let ex = start("").await;
    let c = client(&ex);
    for body in ["<not xml", "<a/>", ""] {
        let r = c
            .post("https://mail.contoso.com/EWS/Exchange.asmx")
            .basic_auth(ADMIN.0, Some(ADMIN.1))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 500, "{body:?}");
        let text = r.text().await.unwrap();
        assert!(text.contains("ErrorSchemaValidation"), "{text}");
    }
}

#[tokio::test]
async fn convert_id_keeps_our_ids_and_sync_ignores_what_it_is_told_to() {
    let ex = start("").await;
    let inbox = distinguished("inbox", Some("alice@contoso.com"));
    let (_, first) = ews(&ex, ADMIN, "", &sync_items(&inbox, None, 512)).await;
    let ids = item_ids(&first);
    let convert = format!(
        "<m:ConvertId DestinationFormat=\"EwsId\"><m:SourceIds><t:AlternateId Format=\"EwsId\" Id=\"{}\" Mailbox=\"alice@contoso.com\"/></m:SourceIds></m:ConvertId>",
        ids[0]
    );
    let (_, doc) = ews(&ex, ADMIN, "", &convert).await;
    assert_eq!(codes(&doc), ["NoError"]);
    let alt = doc.find("AlternateId").unwrap();
    assert_eq!(alt.attr("Id"), Some(ids[0].as_str()));
    assert_eq!(alt.attr("Mailbox"), Some("alice@contoso.com"));
    // Ignore: changes of the listed items are left out.
    let state = first.find("SyncState").unwrap().text.clone();
    let org = ex.org();
    let all_ids = org.item_ids("alice@contoso.com", "Inbox").unwrap();
    org.set_subject("alice@contoso.com", all_ids[0], "a")
        .unwrap();
    org.set_subject("alice@contoso.com", all_ids[1], "b")
        .unwrap();
    let body = sync_items(&inbox, Some(&state), 512).replace(
        "<m:MaxChangesReturned>",
        &format!(
            "<m:Ignore><t:ItemId Id=\"{}\"/></m:Ignore><m:MaxChangesReturned>",
            ids[0]
        ),
    );
    let (_, doc) = ews(&ex, ADMIN, "", &body).await;
    let updated = item_ids(doc.find("Changes").unwrap());
    assert_eq!(updated, [ids[1].clone()]);
}

#[tokio::test]
async fn find_folder_pages_from_the_end_too() {
    let ex = start("").await;
    let find = |offset: usize| {
        format!(
            "<m:FindFolder Traversal=\"Shallow\"><m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape><m:IndexedPageFolderView MaxEntriesReturned=\"3\" Offset=\"{offset}\" BasePoint=\"End\"/><m:ParentFolderIds>{}</m:ParentFolderIds></m:FindFolder>",
            distinguished("msgfolderroot", Some("alice@contoso.com"))
        )
    };
    let (_, doc) = ews(&ex, ADMIN, "", &find(0)).await;
    let names: Vec<String> = all(&doc, "DisplayName")
        .iter()
        .map(|e| e.text.clone())
        .collect();
    // The last three of the eleven children.
    assert_eq!(names, ["Tasks", "Notes", "Projects"]);
    assert_eq!(
        doc.find("RootFolder")
            .unwrap()
            .attr("IncludesLastItemInRange"),
        Some("false")
    );
    let (_, doc) = ews(&ex, ADMIN, "", &find(9)).await;
    assert_eq!(all(&doc, "DisplayName").len(), 2);
    assert_eq!(
        doc.find("RootFolder")
            .unwrap()
            .attr("IncludesLastItemInRange"),
        Some("true")
    );
}
